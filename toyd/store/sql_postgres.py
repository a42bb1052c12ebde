"""The :class:`~toyd.store.sql.Database` on PostgreSQL (asyncpg), shared by every gateway.

Each unit is one transaction at READ COMMITTED: an ``UPDATE … WHERE … RETURNING`` that
two gateways run at once on the same row is applied by one, and the other, re-checking
its ``WHERE`` after the first commits, changes nothing. :meth:`Tx.lock` is a transaction
advisory lock. A server that is down is a :class:`StoreError` naming it (password
hidden), never a crash; a pooled connection the server dropped is retried once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .base import StoreError
from .postgres import (
    QUERY_TIMEOUT,
    connection_lost,
    create_pool,
    describe,
    redact,
    unreachable,
)
from .sql import Database, Row, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1, $2, …`` (our statements hold no literal ``?``)."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


class _PgTx(Tx):
    engine = "postgresql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self.conn.execute(numbered(sql), *args)
        last = status.rsplit(" ", 1)[-1]  # "UPDATE 1", "INSERT 0 1", "CREATE TABLE"
        return int(last) if last.isdigit() else 0

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(row) for row in await self.conn.fetch(numbered(sql), *args)]

    async def lock(self, name: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", name)


class PostgresDatabase(Database):
    """A small asyncpg pool; no connection is needed to start."""

    def __init__(
        self,
        url: str,
        schema: str,
        migrate: Callable[[Tx], Awaitable[None]] | None = None,
        pool_size: int = 4,
    ) -> None:
        super().__init__(url, schema, migrate)
        self.pool_size = pool_size
        self._pool: Any = None
        self._ready = False

    async def open(self) -> None:
        self._pool = await create_pool(self.url, self.pool_size)
        try:
            await self.run(lambda tx: asyncio.sleep(0))
        except StoreError as exc:
            cause = exc.__cause__ or exc
            if not unreachable(cause):  # a wrong user, password or database: say so now
                await self._disconnect()
                raise StoreError(
                    f"cannot use the store {redact(self.url)}: {describe(cause)}"
                ) from cause
            log.warning("store: %s not reachable yet (%s)", redact(self.url), describe(cause))

    async def _disconnect(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), QUERY_TIMEOUT)
            except Exception:  # noqa: BLE001 - a dead server: drop the connections
                pool.terminate()

    async def _transaction(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        import asyncpg

        if self._pool is None:
            raise StoreError(f"the store {redact(self.url)} is not open")
        for attempt in (1, 2):
            committing = False
            try:
                if not self._ready:
                    await self._attempt(self._prepare)
                    self._ready = True
                return await self._attempt(work)
            except _Committing as exc:
                committing, failure = True, exc.__cause__
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                failure = exc
            assert failure is not None
            if attempt == 1 and not committing and connection_lost(failure):
                # the server dropped its connections (a restart): nothing was written, so
                # try again on a fresh one, not on the next stale one in the pool
                await self._pool.expire_connections()
                continue
            raise StoreError(
                f"the store {redact(self.url)} is unavailable: {describe(failure)}"
            ) from failure
        raise AssertionError("unreachable")

    async def _attempt(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._pool.acquire(timeout=QUERY_TIMEOUT) as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                result = await work(_PgTx(conn))
            except BaseException:
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except Exception as exc:  # the outcome is unknown: never run the unit again
                raise _Committing() from exc
            return result


class _Committing(Exception):
    """The commit itself failed (its cause says why)."""
