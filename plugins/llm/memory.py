"""Conversation memory per toy in SQLite: the recent exchanges plus a bounded running summary."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import aiosqlite

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
"""


class Memory:
    """Keeps ``turns`` recent exchanges per device; older ones are folded into a summary."""

    def __init__(self, path: Path, turns: int, summary_chars: int) -> None:
        self.path = path
        self.turns = turns
        self.summary_chars = summary_chars
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Open (and create) the database; WAL so a power cut never corrupts it."""
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.executescript(SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def recall(self, device_id: str) -> tuple[str, list[tuple[str, str]]]:
        """The summary and the recent ``(child, toy)`` exchanges, oldest first."""
        db = self._require()
        async with db.execute("SELECT summary FROM summaries WHERE device_id = ?", (device_id,)) as cur:
            row = await cur.fetchone()
        async with db.execute("SELECT child, toy FROM exchanges WHERE device_id = ? ORDER BY id DESC LIMIT ?",
                              (device_id, self.turns)) as cur:
            recent = [(r[0], r[1]) for r in await cur.fetchall()]
        return (row[0] if row else ""), list(reversed(recent))

    async def remember(self, device_id: str, child: str, toy: str) -> None:
        """Store one exchange; fold what falls out of the window into the summary."""
        db = self._require()
        await db.execute("INSERT INTO exchanges (device_id, at, child, toy) VALUES (?, ?, ?, ?)",
                         (device_id, time.time(), child, toy))
        async with db.execute("SELECT id, child, toy FROM exchanges WHERE device_id = ? ORDER BY id DESC LIMIT -1 OFFSET ?",
                              (device_id, self.turns)) as cur:
            old = list(reversed(await cur.fetchall()))
        if old:
            async with db.execute("SELECT summary FROM summaries WHERE device_id = ?", (device_id,)) as cur:
                row = await cur.fetchone()
            summary = fold(row[0] if row else "", [(r[1], r[2]) for r in old], self.summary_chars)
            await db.execute("INSERT INTO summaries (device_id, summary, updated) VALUES (?, ?, ?) "
                             "ON CONFLICT(device_id) DO UPDATE SET summary = excluded.summary, updated = excluded.updated",
                             (device_id, summary, time.time()))
            await db.execute("DELETE FROM exchanges WHERE device_id = ? AND id <= ?", (device_id, old[-1][0]))
        await db.commit()

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("memory is not open")
        return self._db


def fold(summary: str, exchanges: list[tuple[str, str]], limit: int) -> str:
    """Append one short line per exchange; keep only the newest ``limit`` characters, at line bounds."""
    lines = [line for line in summary.split("\n") if line]
    for child, _toy in exchanges:
        topic = " ".join(child.split())[:120]
        if topic:
            lines.append(f"The child said: {topic}")
    while lines and len("\n".join(lines)) > limit:
        lines.pop(0)
    return "\n".join(lines)
