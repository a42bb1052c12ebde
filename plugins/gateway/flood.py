"""Flood defence: connections that have not authenticated yet are few, short-lived and quiet.

A toy authenticates in its WebSocket upgrade request, so a connection is *unauthenticated*
from the TCP accept until the upgrade is accepted. At most ``max_unauthenticated`` of them
are held; a new one beyond that drops the *oldest* waiting one (an idle or half-open
socket) if that one has had its grace second, else the new one is dropped. So a stream
of junk connections cannot lock a real toy out: the toy's own upgrade takes
milliseconds, and every connection gets its grace before a newer one can push it out.
Each is held at most ``handshake_timeout`` seconds.

Floods must not flood the log either: refusals, dropped connections and an exhausted
file limit (EMFILE on accept) are counted and logged as one summary line per kind and
interval, never one line (or traceback) each.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource
from typing import Any

from websockets.asyncio.server import ServerConnection

log = logging.getLogger(__name__)

SUMMARY_INTERVAL_S = 10.0
DROPPED = "dropped connections that had not authenticated (too many waiting)"
GRACE_S = 1.0  # a new connection is never pushed out by a newer one sooner than this
FD_RESERVE = 64  # files the process needs besides toy connections (models, databases, logs)


class LogSummary:
    """The first event of a kind is logged at once; the rest are counted into one line per interval."""

    def __init__(self, logger: logging.Logger, interval: float = SUMMARY_INTERVAL_S) -> None:
        self.logger = logger
        self.interval = interval
        self._counts: collections.Counter[str] = collections.Counter()
        self._details: dict[str, set[str]] = collections.defaultdict(set)
        self._quiet_until: dict[str, float] = {}
        self._flush: asyncio.TimerHandle | None = None

    def note(self, kind: str, detail: str = "", level: int = logging.WARNING) -> None:
        """One event of ``kind`` (e.g. "refused: bad credentials"); ``detail`` is the client address."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._quiet_until.get(kind, 0.0):
            self._quiet_until[kind] = now + self.interval
            self.logger.log(
                level, "%s (%s); more are summarised every %g s", kind, detail or "-", self.interval
            )
            return
        self._counts[kind] += 1
        if len(self._details[kind]) < 5:
            self._details[kind].add(detail)
        if self._flush is None:
            self._flush = loop.call_at(self._quiet_until[kind], self.flush)

    def flush(self) -> None:
        """Log what was counted (the timer calls this; so does shutdown)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for kind, count in self._counts.items():
            details = ", ".join(sorted(d for d in self._details[kind] if d)) or "-"
            self.logger.warning(
                "%s: %d more in the last %g s (from %s)", kind, count, self.interval, details
            )
        self._counts.clear()
        self._details.clear()


class Unauthenticated:
    """The connections between accept and a successful upgrade, oldest first."""

    def __init__(self, limit: int, summary: LogSummary, grace: float = GRACE_S) -> None:
        self.limit = limit
        self.summary = summary
        self.grace = grace
        self._waiting: collections.OrderedDict[ServerConnection, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """A TCP connection was accepted: False when it must go at once (all waiting are within grace)."""
        if len(self._waiting) < self.limit:
            return True
        oldest, since = next(iter(self._waiting.items()))
        if asyncio.get_running_loop().time() - since >= self.grace:
            return True
        self.summary.note(DROPPED, _address(transport))
        return False

    def arrived(self, conn: ServerConnection) -> None:
        """An admitted connection; over the limit, the oldest (past its grace) goes."""
        now = asyncio.get_running_loop().time()
        while len(self._waiting) >= self.limit:
            oldest, _ = self._waiting.popitem(last=False)
            oldest.transport.abort()
            self.summary.note(DROPPED, _address(oldest.transport))
        self._waiting[conn] = now

    def done(self, conn: ServerConnection) -> None:
        """Upgraded (authenticated) or gone."""
        self._waiting.pop(conn, None)


def connection_class(waiting: Unauthenticated) -> type[ServerConnection]:
    """A ServerConnection that registers with ``waiting`` from accept to upgrade."""

    class CountedConnection(ServerConnection):
        _admitted = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if not waiting.admit(transport):
                transport.abort()  # before any WebSocket state exists: a dropped newcomer costs little
                return
            self._admitted = True
            super().connection_made(transport)
            waiting.arrived(self)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._admitted:
                waiting.done(self)
                super().connection_lost(exc)

    return CountedConnection


def _address(transport: asyncio.BaseTransport) -> str:
    try:
        return str(transport.get_extra_info("peername")[0])
    except (TypeError, IndexError):
        return "?"


def open_file_limit() -> int:
    """The soft limit of open files, raised to the hard limit when allowed (a socket per toy)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def accept_errors_summarised(summary: LogSummary) -> Any:
    """A loop exception handler: 'out of system resource' on accept becomes a summary line."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message", "").startswith("socket.accept() out of system resource"):
            summary.note(
                "cannot accept connections: out of files (raise LimitNOFILE)",
                str(context.get("exception")),
                logging.ERROR,
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return previous
