"""Flood defence: connections that have not authenticated yet are few, short-lived and quiet.

A toy authenticates in its WebSocket upgrade request, sent at once after it connects, so
a connection is *unauthenticated* from the TCP accept until the upgrade is accepted. At
most ``max_unauthenticated`` of them are held, each at most ``handshake_timeout``
seconds. One whose whole request has arrived is answered within milliseconds and is
never pushed out; to make room for it the oldest *silent* one (idle, half-open) goes at
once. A silent newcomer only pushes out a silent one that has had its grace second,
else the newcomer goes (see accept.py). So junk cannot lock a real toy out however fast
it reconnects.

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
GRACE_S = 1.0  # a silent connection is not pushed out by a silent newcomer sooner than this
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
    """The connections between accept and a successful upgrade: at most ``limit``.

    A *silent* one has not sent a complete upgrade request yet (idle, half-open); a
    *ready* one has, and is answered within milliseconds, so it is never pushed out.
    Over the limit a ready newcomer pushes out the oldest silent one at once; a silent
    newcomer only one that has had its grace (else the newcomer goes).
    """

    def __init__(self, limit: int, summary: LogSummary, grace: float = GRACE_S) -> None:
        self.limit = limit
        self.summary = summary
        self.grace = grace
        self._silent: collections.OrderedDict[ServerConnection, float] = collections.OrderedDict()
        self._ready: set[ServerConnection] = set()
        self._reserved: set[object] = set()  # places promised to silent sockets being set up

    def __len__(self) -> int:
        return len(self._silent) + len(self._ready) + len(self._reserved)

    def reserve(self) -> object:
        """Promise a place (``has_room`` said yes) to a socket whose connection is not made yet."""
        place = object()
        self._reserved.add(place)
        return place

    def release(self, place: object) -> None:
        """The connection was made (the place is taken) or failed (the place is free)."""
        self._reserved.discard(place)

    def has_room(self, ready: bool) -> bool:
        """Whether a newcomer would be admitted (without pushing anyone out yet)."""
        if len(self) < self.limit:
            return True
        if not self._silent:
            return False
        since = next(iter(self._silent.values()))
        return ready or asyncio.get_running_loop().time() - since >= self.grace

    def arrived(self, conn: ServerConnection, ready: bool, place: object = None) -> bool:
        """A connection was made: False when it must go; over the limit the oldest silent one goes."""
        if place in self._reserved:
            self._reserved.discard(place)
        elif not self.has_room(ready):
            self.summary.note(DROPPED, _address(conn.transport))
            return False
        if len(self) >= self.limit:
            self.shed(1)
        if ready:
            self._ready.add(conn)
        else:
            self._silent[conn] = asyncio.get_running_loop().time()
        return True

    def shed(self, count: int) -> int:
        """Abort up to ``count`` of the oldest silent connections, grace or not (out of files)."""
        shed = 0
        while shed < count and self._silent:
            oldest, _ = self._silent.popitem(last=False)
            oldest.transport.abort()
            self.summary.note(DROPPED, _address(oldest.transport))
            shed += 1
        return shed

    def requested(self, conn: ServerConnection) -> None:
        """Its upgrade request is complete: it is answered within milliseconds, never pushed out."""
        if self._silent.pop(conn, None) is not None:
            self._ready.add(conn)

    def done(self, conn: ServerConnection) -> None:
        """Upgraded (authenticated) or gone."""
        self._silent.pop(conn, None)
        self._ready.discard(conn)


def connection_class(waiting: Unauthenticated) -> type[ServerConnection]:
    """A ServerConnection that registers with ``waiting`` from accept to upgrade."""

    class CountedConnection(ServerConnection):
        _admitted = False
        ready = False  # its whole upgrade request had arrived when it was accepted
        place: object = None  # the place reserved for it when it was accepted

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # for the summary's address when it is refused
            if not waiting.arrived(self, self.ready, self.place):
                transport.abort()  # before any WebSocket state exists: a dropped newcomer costs little
                return
            self._admitted = True
            super().connection_made(transport)

        def process_event(self, event: Any) -> None:
            if self.request is None:  # the first event: the complete upgrade request
                waiting.requested(self)
            super().process_event(event)

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
