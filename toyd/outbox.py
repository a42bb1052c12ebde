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
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ToydError

log = logging.getLogger(__name__)

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


class OutboxError(ToydError):
    """The outbox database cannot be opened at all."""


@dataclasses.dataclass(frozen=True)
class OutboxItem:
    """One stored event awaiting delivery."""

    id: int
    uid: str
    kind: str
    payload: dict[str, Any]
    created: float
    critical: bool = False


class Outbox:
    """Durable, bounded queue of parent-facing events (aiosqlite)."""

    def __init__(self, path: Path, *, max_items: int = 10000) -> None:
        self.path = path
        self.max_items = max_items
        self.changed = asyncio.Event()
        self._db: Any = None
        self._spill: list[tuple[str, str, str, int, float]] = []
        self._lock = asyncio.Lock()

    async def open(self) -> Outbox:
        """Open (or create) the database; a corrupt file is moved aside."""
        import aiosqlite

        for attempt in (1, 2):
            try:
                self._db = await aiosqlite.connect(self.path, isolation_level=None)
                await self._db.execute("PRAGMA journal_mode=WAL")
                await self._db.execute("PRAGMA synchronous=FULL")
                await self._db.execute(SCHEMA)
                async with self._db.execute("PRAGMA quick_check") as cur:
                    (verdict,) = await cur.fetchone()
                if verdict != "ok":
                    raise sqlite3.DatabaseError(f"integrity check: {verdict}")
                break
            except sqlite3.DatabaseError as exc:
                await self._close_db()
                if attempt == 2 or not self.path.exists():
                    raise OutboxError(f"cannot open outbox {self.path}: {exc}") from None
                aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
                log.error("outbox %s is corrupt (%s); moved aside to %s, starting a new one", self.path, exc, aside)
                self.path.rename(aside)
                for suffix in ("-wal", "-shm"):
                    side = self.path.with_name(self.path.name + suffix)
                    if side.exists():
                        side.rename(aside.with_name(aside.name + suffix))
        if await self.count():
            self.changed.set()
        return self

    async def add(self, kind: str, payload: dict[str, Any], *, critical: bool = False) -> str:
        """Store one event; durable on disk when this returns (or held in memory if the disk refuses)."""
        uid = uuid.uuid4().hex
        row = (uid, kind, json.dumps(payload, ensure_ascii=False, default=str), int(critical), time.time())
        async with self._lock:
            self._spill.append(row)
            await self._flush_spill()
        self.changed.set()
        return uid

    async def _flush_spill(self) -> None:
        if not self._spill or self._db is None:
            return
        if self._db.in_transaction:
            # an add() cancelled mid-write (shutdown) left its transaction open; its rows are
            # still in the spill, so roll back and write them again
            await self._rollback()
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            await self._db.executemany(
                "INSERT OR IGNORE INTO outbox (uid, kind, payload, critical, created) VALUES (?, ?, ?, ?, ?)", self._spill)
            await self._trim()
            await self._db.execute("COMMIT")
            self._spill.clear()
        except sqlite3.Error as exc:
            await self._rollback()
            log.error("outbox %s cannot be written (%s); %d events held in memory until it can",
                      self.path, exc, len(self._spill))

    async def _trim(self) -> None:
        async with self._db.execute("SELECT COUNT(*) FROM outbox") as cur:
            (count,) = await cur.fetchone()
        excess = count - self.max_items
        if excess <= 0:
            return
        await self._db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE critical = 0 ORDER BY id LIMIT ?)", (excess,))
        async with self._db.execute("SELECT changes()") as cur:
            (dropped,) = await cur.fetchone()
        if dropped:
            log.warning("outbox full (%d items): dropped the %d oldest ordinary events", self.max_items, dropped)
        if dropped < excess:
            log.warning("outbox holds %d critical events beyond its limit of %d; none are dropped",
                        excess - dropped, self.max_items)

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    async def pending(self, limit: int = 100) -> list[OutboxItem]:
        """The oldest undelivered items, oldest first (memory-held ones last)."""
        async with self._lock:
            await self._flush_spill()
            async with self._db.execute(
                "SELECT id, uid, kind, payload, created, critical FROM outbox ORDER BY id LIMIT ?", (limit,)) as cur:
                rows = await cur.fetchall()
        items = [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], bool(r[5])) for r in rows]
        if not items:
            self.changed.clear()
        return items

    async def ack(self, ids: Iterable[int]) -> None:
        """Forget items a transport has delivered."""
        ids = list(ids)
        if not ids:
            return
        async with self._lock:
            await self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    async def count(self) -> int:
        """Items waiting (on disk and in memory)."""
        async with self._db.execute("SELECT COUNT(*) FROM outbox") as cur:
            (count,) = await cur.fetchone()
        return count + len(self._spill)

    async def close(self) -> None:
        """Try a last write of memory-held items, then close."""
        async with self._lock:
            await self._flush_spill()
        if self._spill:
            log.error("outbox closed with %d events that could not be written", len(self._spill))
        await self._close_db()

    async def _close_db(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
