"""The outbox keeps every acknowledged event when ``add()`` is cancelled at any point (shutdown)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter
from pathlib import Path

from toyd import events as ev
from toyd.outbox import Outbox
from toyd.testing import running_daemon

RUNS = 300


def stored_uids(path: Path) -> Counter[str]:
    with sqlite3.connect(path) as db:
        return Counter(row[0] for row in db.execute("SELECT uid FROM outbox"))


async def one_run(path: Path, rng: random.Random) -> tuple[set[str], set[str], Counter[str]]:
    """Adds, cancels adds after a random number of loop turns, then closes or goes on first.

    Returns the acknowledged uids, the uids a transport acked (delivered) and what is stored.
    """
    outbox = await Outbox(path).open()
    acknowledged: set[str] = set()
    delivered: set[str] = set()

    async def add(n: int) -> None:
        acknowledged.add(await outbox.add("safety_alert", {"n": n}, critical=rng.random() < 0.5))

    tasks = [asyncio.create_task(add(n)) for n in range(rng.randint(1, 6))]
    for _ in range(rng.randint(0, 40)):  # every await point of add() is hit across the runs
        await asyncio.sleep(0)
    for task in rng.sample(tasks, rng.randint(1, len(tasks))):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if rng.random() < 0.5:  # keep going: more events, a transport delivers some
        for n in range(rng.randint(1, 4)):
            await add(100 + n)
        items = await outbox.pending(limit=rng.randint(1, 5))
        await outbox.ack(i.id for i in items)
        delivered = {i.uid for i in items}
    closing = asyncio.create_task(outbox.close())
    if rng.random() < 0.3:  # the shutdown itself is cancelled (a stop deadline) and retried
        await asyncio.sleep(0)
        closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)
        await asyncio.wait_for(outbox.close(), 5)
    else:
        await asyncio.wait_for(closing, 5)
    return acknowledged, delivered, stored_uids(path)


async def test_cancelled_adds_lose_and_repeat_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    for run in range(RUNS):
        path = tmp_path / f"run{run}.db"
        acknowledged, delivered, stored = await asyncio.wait_for(one_run(path, rng), 10)
        assert not [uid for uid, n in stored.items() if n > 1], f"run {run}: an event stored twice"
        missing = acknowledged - delivered - set(stored)
        assert not missing, (
            f"run {run}: {len(missing)} of {len(acknowledged)} acknowledged events lost"
        )
        assert not delivered & set(stored), f"run {run}: a delivered event came back"
        path.unlink()


async def test_memory_held_items_are_pending_last_and_ackable(tmp_path: Path) -> None:
    outbox = await Outbox(tmp_path / "o.db").open()
    first = await outbox.add("transcript", {"text": "on disk"})
    assert outbox._db is not None
    (pages,) = outbox._db.execute("PRAGMA page_count").fetchone()
    outbox._db.execute(f"PRAGMA max_page_count={pages}")  # the disk is now "full"
    held = [await outbox.add("transcript", {"text": "x" * 20000, "n": n}) for n in range(3)]
    items = await outbox.pending(limit=10)
    assert [i.uid for i in items] == [first, *held]
    assert items[0].id > 0 and all(i.id < 0 for i in items[1:])
    await outbox.ack([items[1].id])  # delivered straight from memory
    outbox._db.execute("PRAGMA max_page_count=1073741823")  # space again
    assert [i.uid for i in await outbox.pending(limit=10)] == [first, *held[1:]]
    await outbox.close()


async def test_daemon_stopping_right_after_alerts_keeps_them_all(tmp_path: Path) -> None:
    for attempt in range(5):
        state = tmp_path / f"state{attempt}"
        async with running_daemon({"role": "device", "plugins": []}, state_dir=state) as app:
            for n in range(20):
                app.bus.publish(
                    ev.SafetyAlert(category="self_harm", severity="high", excerpt=f"alert {n}")
                )
                if n % 7 == attempt:
                    await asyncio.sleep(0)
        box = await Outbox(state / "outbox.db").open()
        excerpts = sorted(i.payload["excerpt"] for i in await box.pending(limit=100))
        await box.close()
        assert excerpts == sorted(f"alert {n}" for n in range(20)), f"attempt {attempt}"
