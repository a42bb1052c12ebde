"""The outbox keeps an event whose write was cancelled mid-transaction (daemon shutdown)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from toyd.outbox import Outbox


async def test_close_after_an_add_cancelled_mid_write_keeps_the_event(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = await Outbox(path).open()
    db = outbox._db
    assert db is not None
    caught = False
    for attempt in range(200):  # cancel an add() while its transaction is open (timing varies per machine)
        task = asyncio.ensure_future(outbox.add("transcript", {"text": f"hello {attempt}"}))
        while not task.done() and not db.in_transaction:
            await asyncio.sleep(0)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            caught = db.in_transaction
            if caught:
                break
    assert caught, "could not cancel an add() in the middle of its transaction"
    await asyncio.wait_for(outbox.close(), 5)
    reopened = await Outbox(path).open()
    texts = [item.payload["text"] for item in await reopened.pending(1000)]
    assert f"hello {attempt}" in texts, "the cancelled event was written at close, not lost"
    await reopened.close()
