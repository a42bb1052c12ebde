"""The outbox: durable, bounded, never drops safety alerts, survives SIGKILL and bad disks."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toyd import events as ev
from toyd.outbox import Outbox
from toyd.testing import running_daemon

WRITER = Path(__file__).with_name("outbox_writer.py")


async def test_add_pending_ack_round_trip(tmp_path: Path) -> None:
    outbox = await Outbox(tmp_path / "o.db").open()
    uids = [await outbox.add("transcript", {"text": f"t{i}"}) for i in range(5)]
    items = await outbox.pending(limit=3)
    assert [i.uid for i in items] == uids[:3]
    assert items[0].payload == {"text": "t0"} and items[0].kind == "transcript"
    await outbox.ack(i.id for i in items)
    assert [i.uid for i in await outbox.pending()] == uids[3:]
    await outbox.close()
    reopened = await Outbox(tmp_path / "o.db").open()
    assert [i.uid for i in await reopened.pending()] == uids[3:]
    assert reopened.changed.is_set()
    await reopened.close()


async def test_overflow_drops_oldest_ordinary_never_critical(tmp_path: Path) -> None:
    outbox = await Outbox(tmp_path / "o.db", max_items=10).open()
    alerts = [await outbox.add("safety_alert", {"n": i}, critical=True) for i in range(8)]
    for i in range(20):
        await outbox.add("transcript", {"n": i})
    items = await outbox.pending(limit=1000)
    assert len(items) == 10
    assert [i.uid for i in items if i.critical] == alerts
    assert [i.payload["n"] for i in items if not i.critical] == [18, 19]
    for i in range(5):  # only critical left to drop: the outbox grows instead
        await outbox.add("safety_alert", {"n": 100 + i}, critical=True)
    items = await outbox.pending(limit=1000)
    assert sum(i.critical for i in items) == 13
    await outbox.close()


async def test_corrupt_database_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    outbox = await Outbox(path).open()
    await outbox.add("transcript", {"text": "still works"})
    assert len(await outbox.pending()) == 1
    await outbox.close()
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")


async def test_full_disk_holds_events_in_memory_until_writable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = await Outbox(tmp_path / "o.db").open()
    await outbox.add("transcript", {"text": "before"})
    assert outbox._db is not None
    (pages,) = outbox._db.execute("PRAGMA page_count").fetchone()
    outbox._db.execute(f"PRAGMA max_page_count={pages}")  # the disk is now "full"
    for i in range(50):
        await outbox.add("transcript", {"text": "x" * 500, "n": i})
    assert "cannot be written" in caplog.text
    assert await outbox.count() == 51
    outbox._db.execute("PRAGMA max_page_count=1073741823")  # space again
    items = await outbox.pending(limit=100)
    assert [i.payload.get("n") for i in items] == [None, *range(50)]
    await outbox.close()


def test_sigkill_at_random_points_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """A writer is SIGKILLed at random points; every uid it printed (acknowledged) is stored exactly once."""
    path = tmp_path / "crash.db"
    rng = random.Random(1234)
    acknowledged: list[str] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _ in range(20):
        with subprocess.Popen(
            [sys.executable, str(WRITER), str(path), "7"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # running: now kill it at a random point
            time.sleep(rng.uniform(0.0, 0.25))
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()
            proc.wait(10)
        lines = [first, *rest.splitlines()]
        acknowledged += [line.strip() for line in lines if len(line.strip()) == 32]
        with sqlite3.connect(path) as db:  # opens cleanly after every crash
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with sqlite3.connect(path) as db:
        stored = [row[0] for row in db.execute("SELECT uid FROM outbox")]
    assert len(acknowledged) > 20
    assert len(stored) == len(set(stored))
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"


async def test_daemon_records_parent_events_before_transports(state_dir: Path) -> None:
    async with running_daemon({"role": "device", "plugins": []}, state_dir=state_dir) as app:
        assert app.outbox is not None
        app.bus.publish(ev.Transcript(text="partial", final=False))
        app.bus.publish(ev.Transcript(text="tell me a story", final=True, turn_id="t1"))
        app.bus.publish(ev.ResponseText(delta="Once upon ", turn_id="t1"))
        app.bus.publish(ev.ResponseText(delta="a time.", final=True, turn_id="t1"))
        app.bus.publish(ev.SafetyAlert(category="self_harm", severity="high", excerpt="..."))
        outbox = app.outbox

        async def three() -> list:
            while len(found := await outbox.pending()) < 3:
                await outbox.changed.wait()
                await asyncio.sleep(0)
            return found

        found = await asyncio.wait_for(three(), 5)
    assert [(i.kind, i.critical) for i in found] == [
        ("transcript", False),
        ("reply", False),
        ("safety_alert", True),
    ]
    assert (
        found[0].payload["text"] == "tell me a story"
        and found[0].payload["device_id"] == "demo-toy"
    )
    assert found[1].payload["text"] == "Once upon a time."
    # an alert published without a device id (the toy's own, from the cloud's alert) is recorded under this toy
    assert (
        found[2].payload["device_id"] == "demo-toy" and found[2].payload["category"] == "self_harm"
    )
