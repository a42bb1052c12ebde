"""The :class:`~toyd.store.sql.Database` on a SQLite file (aiosqlite, WAL).

Several processes on one machine may open the same file (the cloud and ``toyd cloud
claim`` on its shell): every unit is a ``BEGIN IMMEDIATE`` transaction, so it holds the
file's write lock from its first statement, and a busy timeout makes the others wait.
That also makes :meth:`Tx.lock` a no-op here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .base import StoreError
from .sql import Database, Row, Tx

T = TypeVar("T")
BUSY_TIMEOUT_S = 10.0


class _SqliteTx(Tx):
    engine = "sqlite"

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, *args: Any) -> int:
        async with self.db.execute(sql, args) as cur:
            return cur.rowcount

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        async with self.db.execute(sql, args) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def lock(self, name: str) -> None:
        """Nothing to do: a ``BEGIN IMMEDIATE`` transaction already excludes every other writer."""


class SqliteDatabase(Database):
    """One connection; units take turns on it (and on the file's lock with other processes)."""

    def __init__(
        self, path: Path, schema: str, migrate: Callable[[Tx], Awaitable[None]] | None = None
    ) -> None:
        super().__init__(str(path), schema, migrate)
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._turn = asyncio.Lock()

    async def open(self) -> None:
        if not self.path.parent.is_dir():
            raise StoreError(
                f"cannot open the store {self.path}: the folder {self.path.parent} does not exist"
            )
        try:
            self._db = await aiosqlite.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
            await self._db.execute("PRAGMA journal_mode=WAL")
        except (sqlite3.Error, OSError) as exc:
            await self._disconnect()
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        try:
            await self.run(self._prepare)
        except StoreError:
            await self._disconnect()
            raise

    async def _disconnect(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def _transaction(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._turn:
            if self._db is None:
                raise StoreError(f"the store {self.path} is not open")
            db = self._db
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self.path} cannot be written: {exc}") from exc
            try:
                result = await work(_SqliteTx(db))
            except BaseException as exc:
                await _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"the store {self.path} failed: {exc}") from exc
                raise
            try:
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                await _rollback(db)
                raise StoreError(f"the store {self.path} cannot be written: {exc}") from exc
            return result


async def _rollback(db: aiosqlite.Connection) -> None:
    """Roll back; SQLite may already have done so itself (after a full disk, say)."""
    with contextlib.suppress(sqlite3.Error):
        await db.execute("ROLLBACK")
