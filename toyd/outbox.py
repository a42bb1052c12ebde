"""The outbox: events a parent must see, stored durably before anything else happens.

Transcripts, safety alerts and usage reports are written to SQLite (WAL,
``synchronous=FULL``) and only then offered to transports (MQTT). A transport
acknowledges an item after its broker confirmed it; unacknowledged items are offered
again after a reconnect or a reboot, so delivery is at least once and every item has
a ``uid`` the receiver uses to drop duplicates.

Overflow policy: at most ``max_items`` are kept. When full, the oldest *ordinary*
item is dropped (logged). Critical items (safety alerts) are never dropped: if only
critical items remain, the outbox grows past the limit and says so.

If the database cannot be written (disk full, I/O error), items wait in memory and
are written as soon as the disk accepts them; a corrupt database file is moved aside
(never deleted) and a new one is started.

Cancellation: every database operation is one call on the outbox's own thread (a
whole transaction at a time) and is always waited for, even when the caller is
cancelled meanwhile; the cancellation is raised once the operation has ended. So a
shutdown that cancels an ``add()`` never leaves a transaction half done behind the
event loop's back, and the in-memory state always agrees with the file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .errors import ToydError

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    critical INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
)
"""
INSERT = (
    "INSERT OR IGNORE INTO outbox (uid, kind, payload, critical, created) VALUES (?, ?, ?, ?, ?)"
)
SELECT = "SELECT id, uid, kind, payload, created, critical FROM outbox ORDER BY id LIMIT ?"

Row = tuple[str, str, str, int, float]  # uid, kind, payload JSON, critical, created


class OutboxError(ToydError):
    """The outbox database cannot be opened at all."""


@dataclasses.dataclass(frozen=True)
class OutboxItem:
    """One stored event awaiting delivery (a negative ``id``: held in memory, not yet on disk)."""

    id: int
    uid: str
    kind: str
    payload: dict[str, Any]
    created: float
    critical: bool = False


class Outbox:
    """Durable, bounded queue of parent-facing events (SQLite on one thread of its own)."""

    def __init__(self, path: Path, *, max_items: int = 10000) -> None:
        self.path = path
        self.max_items = max_items
        self.changed = asyncio.Event()
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        # events not yet on disk, by a negative id of their own (what pending() hands out)
        self._spill: dict[int, Row] = {}
        self._spill_ids = itertools.count(-1, -1)
        self._lock = asyncio.Lock()

    async def open(self) -> Outbox:
        """Open (or create) the database; a corrupt file is moved aside."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toyd-outbox")
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise
        if await self.count():
            self.changed.set()
        return self

    def _open_sync(self) -> None:
        for attempt in (1, 2):
            try:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute(SCHEMA)
                (verdict,) = self._db.execute("PRAGMA quick_check").fetchone()
                if verdict != "ok":
                    raise sqlite3.DatabaseError(f"integrity check: {verdict}")
                return
            except sqlite3.DatabaseError as exc:
                self._close_sync()
                if attempt == 2 or not self.path.exists():
                    raise OutboxError(f"cannot open outbox {self.path}: {exc}") from None
                self._move_aside(exc)

    def _move_aside(self, exc: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error(
            "outbox %s is corrupt (%s); moved aside to %s, starting a new one",
            self.path,
            exc,
            aside,
        )
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(aside.with_name(aside.name + suffix))

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the outbox thread to its end, even if the caller is cancelled meanwhile.

        A statement handed to the thread runs whatever happens to the awaiting task, so
        the task waits for it and only then raises its cancellation.
        """
        if self._thread is None:
            raise OutboxError(f"outbox {self.path} is closed")
        future = asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        cancelled = False
        while not future.done():
            try:
                await asyncio.wait([future])
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            if not future.cancelled():
                future.exception()  # looked at, so a failure is not reported as never retrieved
            raise asyncio.CancelledError
        return future.result()

    async def add(self, kind: str, payload: dict[str, Any], *, critical: bool = False) -> str:
        """Store one event; durable on disk when this returns (or held in memory if the disk refuses)."""
        uid = uuid.uuid4().hex
        row = (
            uid,
            kind,
            json.dumps(payload, ensure_ascii=False, default=str),
            int(critical),
            time.time(),
        )
        self._spill[next(self._spill_ids)] = row
        self.changed.set()
        async with self._lock:
            await self._flush_spill()
        return uid

    async def _flush_spill(self) -> None:
        """Write the memory-held events in one transaction; the lock is held."""
        if not self._spill or self._db is None:
            return
        batch = dict(self._spill)
        written = await self._call(self._write_sync, list(batch.values()))
        if written:
            for spill_id in batch:
                self._spill.pop(spill_id, None)

    def _write_sync(self, rows: list[Row]) -> bool:
        assert self._db is not None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(INSERT, rows)
            self._trim_sync()
            self._db.execute("COMMIT")
            return True
        except sqlite3.Error as exc:
            if self._db.in_transaction:  # this thread's own connection: the check is exact here
                self._db.execute("ROLLBACK")
            log.error(
                "outbox %s cannot be written (%s); %d events held in memory until it can",
                self.path,
                exc,
                len(self._spill),
            )
            return False

    def _trim_sync(self) -> None:
        assert self._db is not None
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        excess = count - self.max_items
        if excess <= 0:
            return
        dropped = self._db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE critical = 0 ORDER BY id LIMIT ?)",
            (excess,),
        ).rowcount
        if dropped:
            log.warning(
                "outbox full (%d items): dropped the %d oldest ordinary events",
                self.max_items,
                dropped,
            )
        if dropped < excess:
            log.warning(
                "outbox holds %d critical events beyond its limit of %d; none are dropped",
                excess - dropped,
                self.max_items,
            )

    async def pending(self, limit: int = 100) -> list[OutboxItem]:
        """The oldest undelivered items, oldest first (memory-held ones last)."""
        async with self._lock:
            await self._flush_spill()
            rows = await self._call(self._select_sync, limit)
            held = list(self._spill.items())[: max(limit - len(rows), 0)]
        items = [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], bool(r[5])) for r in rows]
        items += [OutboxItem(i, r[0], r[1], json.loads(r[2]), r[4], bool(r[3])) for i, r in held]
        if not items:
            self.changed.clear()
        return items

    def _select_sync(self, limit: int) -> list[tuple[Any, ...]]:
        assert self._db is not None
        return self._db.execute(SELECT, (limit,)).fetchall()

    async def ack(self, ids: Iterable[int]) -> None:
        """Forget items a transport has delivered."""
        ids = list(ids)
        uids = [self._spill.pop(i)[0] for i in ids if i < 0 and i in self._spill]
        stored = [i for i in ids if i > 0]
        if not stored and not uids:
            return
        async with self._lock:
            await self._call(self._delete_sync, stored, uids)

    def _delete_sync(self, ids: list[int], uids: list[str]) -> None:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._db.executemany("DELETE FROM outbox WHERE uid = ?", [(u,) for u in uids])
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def count(self) -> int:
        """Items waiting (on disk and in memory)."""
        async with self._lock:
            count = await self._call(self._count_sync)
        return count + len(self._spill)

    def _count_sync(self) -> int:
        assert self._db is not None
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return count

    async def close(self) -> None:
        """Try a last write of memory-held items, then close."""
        if self._thread is None:
            return
        async with self._lock:
            try:
                await self._flush_spill()
            finally:
                if self._spill:
                    log.error(
                        "outbox closed with %d events that could not be written", len(self._spill)
                    )
                await self._call(self._close_sync)
                thread, self._thread = self._thread, None
                thread.shutdown(wait=False)

    def _close_sync(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
