"""The shared store: PostgreSQL through asyncpg, for several gateway processes.

Writes are never dropped when the server goes away: a write that fails is kept in a
bounded queue (in order) and a background task retries it with backoff until the server
is back; a unique id per write makes a retry after a lost acknowledgement harmless.
Reads that fail return what is known locally, so a turn still goes on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .base import Alert, Store, StoreError, fold

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS toyd_exchanges (
    id BIGSERIAL PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    child TEXT NOT NULL,
    toy TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS toyd_exchanges_device ON toyd_exchanges (device_id, id);
CREATE TABLE IF NOT EXISTS toyd_summaries (
    device_id TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS toyd_alerts (
    id BIGSERIAL PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    excerpt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS toyd_alerts_device ON toyd_alerts (device_id, id);
"""

MAX_PENDING = 10_000  # writes held while the server is away; beyond it the oldest exchange goes
RETRY_INITIAL = 0.2
RETRY_MAX = 5.0
QUERY_TIMEOUT = 3.0
CLOSE_FLUSH_S = 3.0
KNOWN_TOYS = 5000  # toys whose last memory this process keeps for outages


class PostgresStore(Store):
    """Memory and alerts in PostgreSQL; every gateway process opens the same URL."""

    def __init__(
        self, url: str, *, turns: int = 6, summary_chars: int = 600, pool_size: int = 4
    ) -> None:
        super().__init__(turns, summary_chars)
        self.url = url
        self.pool_size = pool_size
        self._pool: Any = None
        self._schema_ready = False
        # ("exchange", uid, device_id, at, child, toy) or ("alert", uid, Alert)
        self._pending: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.retried = 0  # writes that needed more than one attempt (for benchmarks and tests)
        # what this process last knew of each toy's memory, so an outage does not make it forget
        self._known: collections.OrderedDict[str, tuple[str, list[tuple[str, str]]]] = (
            collections.OrderedDict()
        )

    async def open(self) -> None:
        """Create the pool; an unreachable server is not fatal, the store catches up later."""
        self._pool = await create_pool(self.url, self.pool_size)
        try:
            await self._ensure_schema()
        except Exception as exc:  # noqa: BLE001 - the server may simply not be up yet
            if not unreachable(exc):  # a wrong URL, user, password or database: say so now
                await self.close()
                raise StoreError(
                    f"cannot use the store {redact(self.url)}: {describe(exc)}"
                ) from exc
            log.warning(
                "store: %s not reachable yet (%s); memory and alerts wait for it",
                redact(self.url),
                describe(exc),
            )
        self._flusher = asyncio.create_task(self._flush_forever(), name="store-flush")

    async def close(self) -> None:
        """Try to write what is pending (bounded), then close the pool."""
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
            self._flusher = None
        if self._pending:
            try:
                await asyncio.wait_for(self._flush_once(), CLOSE_FLUSH_S)
            except Exception as exc:  # noqa: BLE001 - report what is lost, then go on closing
                log.error(
                    "store: %d write(s) not saved at shutdown: %s",
                    len(self._pending),
                    describe(exc),
                )
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), CLOSE_FLUSH_S)
            except Exception:  # noqa: BLE001 - a dead server: drop the connections
                self._pool.terminate()
            self._pool = None

    @property
    def pending(self) -> int:
        """Writes waiting for the server."""
        return len(self._pending)

    # -- reads ------------------------------------------------------------------------

    async def recall(self, device_id: str) -> tuple[str, list[tuple[str, str]]]:
        try:
            summary, recent = await self._run(lambda c: self._recall(c, device_id))
        except Exception as exc:  # noqa: BLE001 - a turn goes on without the server
            log.warning(
                "store: memory of %s not read (%s); the turn goes on with what this gateway knows",
                device_id,
                describe(exc),
            )
            return self._known.get(device_id, ("", []))
        held = [
            (item[4], item[5])
            for item in self._pending
            if item[0] == "exchange" and item[2] == device_id
        ]
        known = summary, (recent + held)[-self.turns :] if self.turns else []
        self._learn(device_id, known)
        return known

    def _learn(self, device_id: str, known: tuple[str, list[tuple[str, str]]]) -> None:
        self._known[device_id] = known
        self._known.move_to_end(device_id)
        while len(self._known) > KNOWN_TOYS:
            self._known.popitem(last=False)

    async def _recall(self, conn: Any, device_id: str) -> tuple[str, list[tuple[str, str]]]:
        row = await conn.fetchrow(
            "SELECT summary FROM toyd_summaries WHERE device_id = $1", device_id
        )
        rows = await conn.fetch(
            "SELECT child, toy FROM toyd_exchanges WHERE device_id = $1 ORDER BY id DESC LIMIT $2",
            device_id,
            self.turns,
        )
        return (row["summary"] if row else ""), [(r["child"], r["toy"]) for r in reversed(rows)]

    async def alerts(self, device_id: str, limit: int = 50) -> list[Alert]:
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT device_id, at, category, severity, excerpt FROM toyd_alerts WHERE device_id = $1 "
                "ORDER BY id DESC LIMIT $2",
                device_id,
                limit,
            )
        )
        return [
            Alert(r["device_id"], r["at"], r["category"], r["severity"], r["excerpt"])
            for r in reversed(rows)
        ]

    # -- writes -----------------------------------------------------------------------

    async def remember(self, device_id: str, child: str, toy: str) -> None:
        summary, recent = self._known.get(device_id, ("", []))
        self._learn(
            device_id, (summary, (recent + [(child, toy)])[-self.turns :] if self.turns else [])
        )
        await self._write(("exchange", uuid.uuid4().hex, device_id, time.time(), child, toy))

    async def record_alert(self, alert: Alert) -> None:
        await self._write(("alert", uuid.uuid4().hex, alert))

    async def _write(self, item: tuple[Any, ...]) -> None:
        """Write now if nothing is queued ahead of it; otherwise (or on failure) queue it in order."""
        if not self._pending:
            try:
                await self._run(lambda c: self._apply(c, item))
                return
            except Exception as exc:  # noqa: BLE001 - keep it and retry in the background
                log.warning("store: write deferred, server unavailable (%s)", describe(exc))
        if len(self._pending) >= MAX_PENDING:
            dropped = next((i for i in self._pending if i[0] == "exchange"), None)
            if dropped is not None:  # alerts are never the ones to go
                self._pending.remove(dropped)
                log.error("store: pending queue full; oldest memory exchange dropped")
        self._pending.append(item)
        self._wake.set()

    async def _apply(self, conn: Any, item: tuple[Any, ...]) -> None:
        if item[0] == "alert":
            _, uid, alert = item
            await conn.execute(
                "INSERT INTO toyd_alerts (uid, device_id, at, category, severity, excerpt) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (uid) DO NOTHING",
                uid,
                alert.device_id,
                alert.at,
                alert.category,
                alert.severity,
                alert.excerpt,
            )
            return
        _, uid, device_id, at, child, toy = item
        async with conn.transaction():
            # one writer per toy at a time, whichever gateway it is on
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", device_id)
            await conn.execute(
                "INSERT INTO toyd_exchanges (uid, device_id, at, child, toy) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uid) DO NOTHING",
                uid,
                device_id,
                at,
                child,
                toy,
            )
            old = await conn.fetch(
                "SELECT id, child, toy FROM toyd_exchanges WHERE device_id = $1 "
                "ORDER BY id DESC OFFSET $2",
                device_id,
                self.turns,
            )
            if not old:
                return
            old = list(reversed(old))
            row = await conn.fetchrow(
                "SELECT summary FROM toyd_summaries WHERE device_id = $1", device_id
            )
            summary = fold(
                row["summary"] if row else "",
                [(r["child"], r["toy"]) for r in old],
                self.summary_chars,
            )
            await conn.execute(
                "INSERT INTO toyd_summaries (device_id, summary, updated) VALUES ($1, $2, $3) "
                "ON CONFLICT (device_id) DO UPDATE SET summary = EXCLUDED.summary, "
                "updated = EXCLUDED.updated",
                device_id,
                summary,
                time.time(),
            )
            await conn.execute(
                "DELETE FROM toyd_exchanges WHERE device_id = $1 AND id <= $2",
                device_id,
                old[-1]["id"],
            )

    async def _flush_once(self) -> None:
        """Write the queue in order; stops at the first failure (raised)."""
        while self._pending:
            item = self._pending[0]
            await self._run(lambda c, item=item: self._apply(c, item))
            self._pending.popleft()
            self.retried += 1
        log.info("store: caught up with %s", redact(self.url))

    async def _flush_forever(self) -> None:
        delay = RETRY_INITIAL
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                delay = RETRY_INITIAL
            try:
                await self._flush_once()
            except Exception as exc:  # noqa: BLE001 - the server is still away
                log.debug(
                    "store: still unavailable (%s); %d write(s) pending",
                    describe(exc),
                    len(self._pending),
                )
                await asyncio.sleep(delay * random.uniform(0.75, 1.25))
                delay = min(delay * 2, RETRY_MAX)

    # -- plumbing ---------------------------------------------------------------------

    async def _run(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """One unit of work on a pooled connection; a connection the server dropped is retried once."""
        if self._pool is None:
            raise StoreError("the store is not open")
        for attempt in (1, 2):
            try:
                if not self._schema_ready:
                    await self._ensure_schema()
                async with self._pool.acquire(timeout=QUERY_TIMEOUT) as conn:
                    return await work(conn)
            except (TimeoutError, OSError) as exc:
                raise StoreError(describe(exc)) from exc
            except Exception as exc:
                if attempt == 2 or not connection_lost(exc):
                    raise
        raise AssertionError("unreachable")

    async def _ensure_schema(self) -> None:
        async with self._pool.acquire(timeout=QUERY_TIMEOUT) as conn:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(7336741)"
                )  # gateways start together
                await conn.execute(SCHEMA)
        self._schema_ready = True


async def create_pool(url: str, size: int) -> Any:
    """An asyncpg pool that needs no connection to start (``min_size=0``: dead ones are
    replaced on demand); a missing driver or a malformed URL is a :class:`StoreError`."""
    try:
        import asyncpg
    except ImportError as exc:
        raise StoreError(
            "a postgresql:// store needs asyncpg: pip install 'toyd[postgres]'"
        ) from exc
    try:
        return await asyncpg.create_pool(
            url, min_size=0, max_size=size, command_timeout=QUERY_TIMEOUT, timeout=QUERY_TIMEOUT
        )
    except Exception as exc:  # noqa: BLE001 - asyncpg raises many kinds for a bad URL
        raise StoreError(f"cannot use the store {redact(url)}: {describe(exc)}") from exc


def unreachable(exc: BaseException) -> bool:
    """The server is down or restarting (worth waiting for), as opposed to a wrong setting."""
    import asyncpg

    if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
        return False
    return (
        isinstance(exc, (OSError, asyncio.TimeoutError, StoreError))
        or connection_lost(exc)
        or isinstance(exc, (asyncpg.exceptions.TooManyConnectionsError,))
    )


def connection_lost(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(
        exc,
        (
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.InterfaceError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.AdminShutdownError,
        ),
    )


def describe(exc: BaseException) -> str:
    """A one-line reason without a traceback."""
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
