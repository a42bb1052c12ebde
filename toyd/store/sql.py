"""One small async SQL interface over SQLite and PostgreSQL, for state written once for both.

The memory store has an implementation per engine because its write path differs (queued
retries on PostgreSQL). State that must stay *consistent across gateways* — an activation
code that only one claim may take — is better written once: the caller hands a unit of
work to :meth:`Database.run`, which runs it in one transaction (``BEGIN IMMEDIATE`` on
SQLite, a transaction on a pooled asyncpg connection on PostgreSQL). Statements use ``?``
placeholders and the SQL both engines speak (``ON CONFLICT``, ``RETURNING``, ``DOUBLE
PRECISION``); :meth:`Tx.lock` serialises units that must not interleave across processes.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = tuple[Any, ...]
CLOSE_WAIT_S = 5.0
_CREATES = re.compile(r"CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I)


class Tx(abc.ABC):
    """One open transaction: statements with ``?`` placeholders."""

    engine = ""  # "sqlite" or "postgresql", for the rare statement that differs

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        """Run one statement (a SELECT, or a change with RETURNING); every row as a tuple."""

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        """The first row, or None."""
        rows = await self.fetchall(sql, *args)
        return rows[0] if rows else None

    @abc.abstractmethod
    async def lock(self, name: str) -> None:
        """Hold the lock ``name`` until this transaction ends, in every process using the database."""


class Database(abc.ABC):
    """A SQLite file or a PostgreSQL server, with ``schema`` created on first use."""

    def __init__(self, url: str, schema: str, migrate: Callable[[Tx], Awaitable[None]] | None):
        self.url = url
        self.schema = schema
        self.migrate = migrate
        self._units: set[asyncio.Task[Any]] = set()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect; create the tables (after ``migrate``) unless the server is not up yet."""

    async def close(self) -> None:
        """Let units still running finish (bounded), then disconnect."""
        if self._units:
            await asyncio.wait(set(self._units), timeout=CLOSE_WAIT_S)
            for task in self._units:
                task.cancel()
        await self._disconnect()

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    @abc.abstractmethod
    async def _transaction(self, work: Callable[[Tx], Awaitable[T]]) -> T: ...

    async def run(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """``work`` in one transaction: committed if it returns, rolled back if it raises.

        Shielded: a cancelled caller does not cut a transaction in half (aiosqlite would
        still run a statement it was waiting for); the unit finishes on its own and
        :meth:`close` waits for it.
        """
        unit = asyncio.ensure_future(self._transaction(work))
        self._units.add(unit)
        unit.add_done_callback(self._finished)
        return await asyncio.shield(unit)

    def _finished(self, unit: asyncio.Task[Any]) -> None:
        self._units.discard(unit)
        if not unit.cancelled() and unit.exception() is not None:
            log.debug("store: unit ended with %r", unit.exception())

    async def _prepare(self, tx: Tx) -> None:
        """Migrate, then create what is missing (one transaction, one process at a time).

        On PostgreSQL a table or index that exists is not created again: even ``IF NOT
        EXISTS`` locks the table, and held to the end of this transaction that lock
        deadlocks with another process's unit already writing to it (two ``toyd cloud
        claim`` started at once did).
        """
        await tx.lock("toyd-schema")
        if self.migrate is not None:
            await self.migrate(tx)
        for statement in statements(self.schema):
            created = _CREATES.match(statement)
            if created and tx.engine == "postgresql":
                (found,) = await tx.fetchone("SELECT to_regclass(?) IS NOT NULL", created[1]) or (
                    False,
                )
                if found:
                    continue
            await tx.execute(statement)


def statements(script: str) -> list[str]:
    """The statements of a schema script (no ``;`` inside them)."""
    return [s.strip() for s in script.split(";") if s.strip()]
