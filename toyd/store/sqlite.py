"""The one-machine store: a SQLite file in WAL mode (survives power cuts and restarts)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiosqlite

from .base import Alert, Store, StoreError, fold

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    at REAL NOT NULL,
    child TEXT NOT NULL,
    toy TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exchanges_device ON exchanges (device_id, id);
CREATE TABLE IF NOT EXISTS summaries (
    device_id TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    at REAL NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    excerpt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_device ON alerts (device_id, id);
"""


class SqliteStore(Store):
    """Memory and alerts in one SQLite file, for a single ``toyd cloud`` process."""

    def __init__(self, path: Path, *, turns: int = 6, summary_chars: int = 600) -> None:
        super().__init__(turns, summary_chars)
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Open (and create) the database; WAL so a power cut never corrupts it."""
        if not self.path.parent.is_dir():
            raise StoreError(
                f"cannot open the store {self.path}: the folder {self.path.parent} does not exist"
            )
        try:
            self._db = await aiosqlite.connect(self.path)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.executescript(SCHEMA)
            await self._db.commit()
        except BaseException as exc:
            # an open that fails or is cancelled closes what it opened: aiosqlite's thread
            # would otherwise keep the process from ever exiting
            await asyncio.shield(self.close())
            if isinstance(exc, Exception):  # sqlite3 and OSError both mean "cannot use this file"
                raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
            raise

    async def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def recall(self, device_id: str) -> tuple[str, list[tuple[str, str]]]:
        db = self._require()
        async with db.execute(
            "SELECT summary FROM summaries WHERE device_id = ?", (device_id,)
        ) as cur:
            row = await cur.fetchone()
        async with db.execute(
            "SELECT child, toy FROM exchanges WHERE device_id = ? ORDER BY id DESC LIMIT ?",
            (device_id, self.turns),
        ) as cur:
            recent = [(r[0], r[1]) for r in await cur.fetchall()]
        return (row[0] if row else ""), list(reversed(recent))

    async def remember(self, device_id: str, child: str, toy: str) -> None:
        db = self._require()
        await db.execute(
            "INSERT INTO exchanges (device_id, at, child, toy) VALUES (?, ?, ?, ?)",
            (device_id, time.time(), child, toy),
        )
        async with db.execute(
            "SELECT id, child, toy FROM exchanges WHERE device_id = ? "
            "ORDER BY id DESC LIMIT -1 OFFSET ?",
            (device_id, self.turns),
        ) as cur:
            old = list(reversed(await cur.fetchall()))
        if old:
            async with db.execute(
                "SELECT summary FROM summaries WHERE device_id = ?", (device_id,)
            ) as cur:
                row = await cur.fetchone()
            summary = fold(row[0] if row else "", [(r[1], r[2]) for r in old], self.summary_chars)
            await db.execute(
                "INSERT INTO summaries (device_id, summary, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET summary = excluded.summary, "
                "updated = excluded.updated",
                (device_id, summary, time.time()),
            )
            await db.execute(
                "DELETE FROM exchanges WHERE device_id = ? AND id <= ?", (device_id, old[-1][0])
            )
        await db.commit()

    async def record_alert(self, alert: Alert) -> None:
        db = self._require()
        await db.execute(
            "INSERT INTO alerts (device_id, at, category, severity, excerpt) VALUES (?, ?, ?, ?, ?)",
            (alert.device_id, alert.at, alert.category, alert.severity, alert.excerpt),
        )
        await db.commit()

    async def alerts(self, device_id: str, limit: int = 50) -> list[Alert]:
        db = self._require()
        async with db.execute(
            "SELECT device_id, at, category, severity, excerpt FROM alerts "
            "WHERE device_id = ? ORDER BY id DESC LIMIT ?",
            (device_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [Alert(*row) for row in reversed(rows)]

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db
