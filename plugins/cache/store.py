"""The response cache on disk: one SQLite file (aiosqlite, WAL), LRU-bounded, never lost.

A file that is not a database or fails its integrity check is moved aside (never
deleted) and a fresh one is created. A full disk turns the cache read-only: it keeps
answering from what it has. Every failure is one clear log line; lookups then miss.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from pathlib import Path

import aiosqlite

from toyd.errors import ToydError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,          -- the phrase, normalised, without spaces
    phrase TEXT NOT NULL,          -- as configured / as the cloud heard it
    reply TEXT NOT NULL,
    audio BLOB,
    codec TEXT NOT NULL DEFAULT 'opus',
    language TEXT NOT NULL DEFAULT '',
    persona TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,          -- config | cloud
    cache_key TEXT NOT NULL DEFAULT '',
    hits INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    expires REAL,                  -- unix time, NULL = never
    size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS responses_lru ON responses (source, last_used);
"""


class CacheStoreError(ToydError):
    """The response cache file cannot be opened or written."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One cached reply."""

    key: str
    phrase: str
    reply: str
    audio: bytes | None
    codec: str
    source: str
    hits: int = 0
    language: str = ""
    persona: str = ""


def is_full(exc: BaseException) -> bool:
    """SQLITE_FULL: the disk (or the configured page cap) has no room."""
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


class ResponseStore:
    """Async access to the cache file; ``writable`` drops to False when the disk is full."""

    def __init__(self, path: Path, *, max_bytes: int, max_pages: int = 0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.db: aiosqlite.Connection | None = None
        self.writable = True
        self.moved_aside: Path | None = None

    async def open(self) -> None:
        """Open (or create) the file; a corrupt one is moved aside and replaced."""
        try:
            await self._open_checked()
        except sqlite3.DatabaseError as exc:
            await self._close_quietly()
            self.moved_aside = self._move_aside()
            log.error(
                "response cache %s is corrupt (%s); moved it to %s and started an empty cache",
                self.path,
                exc,
                self.moved_aside,
            )
            try:
                await self._open_checked()
            except sqlite3.Error as exc2:
                await self._close_quietly()
                raise CacheStoreError(
                    f"cannot create a new response cache at {self.path}: {exc2}"
                ) from None
        except OSError as exc:
            raise CacheStoreError(f"cannot open the response cache {self.path}: {exc}") from None

    async def _open_checked(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = await aiosqlite.connect(str(self.path))
        row = await (await self.db.execute("PRAGMA quick_check")).fetchone()
        if not row or row[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else 'no answer'}")
        try:
            await self.db.execute("PRAGMA journal_mode=WAL")
            await self.db.execute("PRAGMA synchronous=NORMAL")
            if self.max_pages:
                await self.db.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
            await self.db.executescript(SCHEMA)
            await self.db.commit()
        except sqlite3.OperationalError as exc:
            if not is_full(exc) and "readonly" not in str(exc).lower():
                raise
            self._read_only(exc)

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.replace(Path(str(target) + suffix))
        return target

    async def _close_quietly(self) -> None:
        if self.db is not None:
            try:
                await self.db.close()
            except sqlite3.Error:
                pass
            self.db = None

    def _read_only(self, exc: BaseException) -> None:
        if self.writable:
            log.error(
                "response cache %s is read-only from now on (%s); it keeps answering from what it has",
                self.path,
                exc,
            )
        self.writable = False

    async def close(self) -> None:
        """Close the file (checkpointing the WAL)."""
        await self._close_quietly()

    # --- reads --------------------------------------------------------------------------

    async def keys(self) -> dict[str, str]:
        """Every live key → its phrase (the grammar and the fuzzy-match candidates)."""
        assert self.db is not None
        rows = await (
            await self.db.execute(
                "SELECT key, phrase FROM responses WHERE expires IS NULL OR expires > ?",
                (time.time(),),
            )
        ).fetchall()
        return {k: p for k, p in rows}

    async def get(self, key: str) -> Entry | None:
        """The live entry for ``key``; counts a hit (when writable)."""
        assert self.db is not None
        row = await (
            await self.db.execute(
                "SELECT key, phrase, reply, audio, codec, source, hits, language, persona FROM responses "
                "WHERE key = ? AND (expires IS NULL OR expires > ?)",
                (key, time.time()),
            )
        ).fetchone()
        if row is None:
            return None
        await self._write(
            "UPDATE responses SET hits = hits + 1, last_used = ? WHERE key = ?", (time.time(), key)
        )
        return Entry(*row)

    async def entry_meta(self, key: str) -> tuple[str, bool] | None:
        """(reply, has_audio) of ``key`` — lets a config refill skip unchanged entries."""
        assert self.db is not None
        row = await (
            await self.db.execute(
                "SELECT reply, audio IS NOT NULL FROM responses WHERE key = ?", (key,)
            )
        ).fetchone()
        return (row[0], bool(row[1])) if row else None

    async def stats(self) -> dict[str, int]:
        """Entries and stored bytes per source."""
        assert self.db is not None
        rows = await (
            await self.db.execute(
                "SELECT source, COUNT(*), COALESCE(SUM(size), 0) FROM responses GROUP BY source"
            )
        ).fetchall()
        return {f"{s}_{k}": v for s, n, b in rows for k, v in (("entries", n), ("bytes", b))}

    # --- writes -------------------------------------------------------------------------

    async def put(self, entry: Entry, *, cache_key: str = "", ttl: float = 0.0) -> bool:
        """Insert or replace one reply, then evict LRU cloud entries over the size cap."""
        now = time.time()
        size = len(entry.audio or b"") + len(entry.reply.encode()) + len(entry.phrase.encode())
        ok = await self._write(
            "INSERT OR REPLACE INTO responses (key, phrase, reply, audio, codec, language, persona, source, "
            "cache_key, hits, created, last_used, expires, size) VALUES (?,?,?,?,?,?,?,?,?, "
            "COALESCE((SELECT hits FROM responses WHERE key = ?), 0), ?, ?, ?, ?)",
            (
                entry.key,
                entry.phrase,
                entry.reply,
                entry.audio,
                entry.codec,
                entry.language,
                entry.persona,
                entry.source,
                cache_key,
                entry.key,
                now,
                now,
                now + ttl if ttl > 0 else None,
                size,
            ),
        )
        if ok:
            await self.evict()
        return ok

    async def delete_config_except(self, keep: set[str]) -> int:
        """Drop config entries no longer in the config (the maker removed the phrase)."""
        assert self.db is not None
        rows = await (
            await self.db.execute("SELECT key FROM responses WHERE source = 'config'")
        ).fetchall()
        gone = [r[0] for r in rows if r[0] not in keep]
        for key in gone:
            await self._write("DELETE FROM responses WHERE key = ?", (key,), commit=False)
        if gone:
            await self._commit()
        return len(gone)

    async def evict(self) -> int:
        """Least recently used cloud entries (and expired ones) go first; config entries stay."""
        assert self.db is not None
        if not self.writable:
            return 0
        removed = 0
        await self._write(
            "DELETE FROM responses WHERE expires IS NOT NULL AND expires <= ?", (time.time(),)
        )
        (total,) = await (
            await self.db.execute("SELECT COALESCE(SUM(size), 0) FROM responses")
        ).fetchone()
        if total <= self.max_bytes:
            return 0
        rows = await (
            await self.db.execute(
                "SELECT key, size FROM responses WHERE source != 'config' ORDER BY last_used ASC"
            )
        ).fetchall()
        for key, size in rows:
            if total <= self.max_bytes:
                break
            await self._write("DELETE FROM responses WHERE key = ?", (key,), commit=False)
            total -= size
            removed += 1
        await self._commit()
        if total > self.max_bytes:
            log.warning(
                "response cache: the configured phrases alone (%d bytes) exceed max_bytes", total
            )
        return removed

    async def _write(self, sql: str, params: tuple[object, ...], *, commit: bool = True) -> bool:
        """One write; a full disk makes the cache read-only instead of failing the turn."""
        if not self.writable or self.db is None:
            return False
        try:
            await self.db.execute(sql, params)
            if commit:
                await self.db.commit()
            return True
        except sqlite3.OperationalError as exc:
            if not is_full(exc) and "readonly" not in str(exc).lower():
                raise
            await self._rollback()
            self._read_only(exc)
            return False

    async def _commit(self) -> None:
        if self.db is None or not self.writable:
            return
        try:
            await self.db.commit()
        except sqlite3.OperationalError as exc:
            if not is_full(exc):
                raise
            await self._rollback()
            self._read_only(exc)

    async def _rollback(self) -> None:
        assert self.db is not None
        try:
            await self.db.rollback()
        except sqlite3.Error:
            pass
