"""The gateway's accept loop: a toy that has sent its request is never turned away for junk.

asyncio's accept loop cannot tell a toy from junk: it hands over every socket, and on
EMFILE stops accepting for a whole second while the toy waits in the kernel's queue. In a
flood of reconnecting junk sockets the toy's connection was then dropped as a newcomer,
or waited past its connect timeout. Here each accepted socket is looked at first
(``MSG_PEEK``, nothing is consumed): one whose upgrade request has fully arrived is
*ready* and always admitted (a silent connection makes room); a silent newcomer that
finds no room is held back a moment for its request and then closed with a reset before
any WebSocket state exists, which keeps junk cheap and the queue short. When the files
run out, the oldest silent connections are aborted and accepting goes on at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import struct
from collections.abc import Callable

from websockets.asyncio.server import Server, ServerConnection

from .flood import DROPPED, LogSummary, Unauthenticated

log = logging.getLogger(__name__)

# A toy's connect waits in the kernel's queue during a flood (capped by net.core.somaxconn)
# instead of its SYN being dropped and retried a second later.
LISTEN_BACKLOG = 4096
MAX_BATCH = 128  # sockets accepted per wake-up of the listening socket
MAX_HELD = 64  # silent newcomers held back at once, waiting for their request
HOLD_S = 0.02  # how long: a toy's request follows its connect at once
PAUSE_S = 0.1  # out of files with nothing to shed: wait this long before accepting again
PEEK = 8192
OUT_OF_FILES = "cannot accept connections: out of files (raise LimitNOFILE)"
_NO_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets, no TIME_WAIT


class Acceptor:
    """Accepts on the server's listening sockets in place of asyncio's accept loop."""

    def __init__(
        self,
        factory: Callable[[bool, object], ServerConnection],
        waiting: Unauthenticated,
        summary: LogSummary,
        tls: ssl.SSLContext | None = None,
        tls_timeout: float | None = None,
    ) -> None:
        self.factory = factory  # a connection: whether its request has arrived, its reserved place
        self.waiting = waiting
        self.summary = summary
        self._tls: dict[str, object] = (
            {"ssl": tls, "ssl_handshake_timeout": tls_timeout} if tls is not None else {}
        )
        self._listeners: dict[int, socket.socket] = {}
        self._held: list[socket.socket] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._connecting: set[asyncio.Task[object]] = set()

    def start(self, server: Server) -> None:
        """Take over accepting on every listening socket of ``server``."""
        loop = asyncio.get_running_loop()
        for sock in server.sockets:
            fd = sock.fileno()
            listener = socket.fromfd(fd, sock.family, sock.type, sock.proto)  # proto: TCP_NODELAY
            listener.setblocking(False)
            listener.listen(LISTEN_BACKLOG)
            loop.remove_reader(fd)  # asyncio's accept loop
            self._listeners[fd] = listener
            loop.add_reader(fd, self._accept, fd)

    def close(self) -> None:
        """Stop accepting (before the server closes its sockets) and drop what is half made."""
        loop = asyncio.get_running_loop()
        for fd, listener in self._listeners.items():
            loop.remove_reader(fd)
            listener.close()
        self._listeners.clear()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for conn in self._held:
            conn.close()
        self._held.clear()
        for task in self._connecting:
            task.cancel()

    def _accept(self, fd: int) -> None:
        listener = self._listeners[fd]
        for _ in range(MAX_BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._out_of_files(fd, exc)
                return
            conn.setblocking(False)
            ready = self._ready(conn)
            if ready or self.waiting.has_room(ready=False):
                self._hand_over(conn, ready)
            elif len(self._held) < MAX_HELD:
                self._hold(conn)
            else:
                self._refuse(conn)

    def _out_of_files(self, fd: int, exc: OSError) -> None:
        if exc.errno not in _NO_RESOURCES:
            self.summary.note("cannot accept a connection", str(exc))
            return
        self.summary.note(OUT_OF_FILES, str(exc), logging.ERROR)
        # Aborted transports close their sockets before the listener is polled again.
        if not self.waiting.shed(MAX_BATCH):
            loop = asyncio.get_running_loop()
            loop.remove_reader(fd)
            self._later(PAUSE_S, self._resume, fd)

    def _resume(self, fd: int) -> None:
        if fd in self._listeners:
            asyncio.get_running_loop().add_reader(fd, self._accept, fd)

    def _ready(self, conn: socket.socket) -> bool:
        """Whether its whole upgrade request (or, with TLS, its hello) has arrived."""
        try:
            data = conn.recv(PEEK, socket.MSG_PEEK)
        except OSError:  # BlockingIOError: nothing yet; else reset already
            return False
        return bool(data) and (bool(self._tls) or b"\r\n\r\n" in data or len(data) == PEEK)

    def _hold(self, conn: socket.socket) -> None:
        if not self._held:
            self._later(HOLD_S, self._recheck)
        self._held.append(conn)

    def _recheck(self) -> None:
        held, self._held = self._held, []
        for conn in held:
            if self._ready(conn):
                self._hand_over(conn, ready=True)
            else:
                self._refuse(conn)

    def _refuse(self, conn: socket.socket) -> None:
        self.summary.note(DROPPED, _peer(conn))
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        except OSError:
            pass
        conn.close()

    def _hand_over(self, conn: socket.socket, ready: bool) -> None:
        loop = asyncio.get_running_loop()
        # A silent one is promised its place now: the others of this batch must not take it.
        place = None if ready else self.waiting.reserve()
        made = loop.connect_accepted_socket(lambda: self.factory(ready, place), conn, **self._tls)
        task: asyncio.Task[object] = loop.create_task(made)  # type: ignore[arg-type]
        self._connecting.add(task)
        task.add_done_callback(lambda done: self._connected(conn, done, place))

    def _connected(self, conn: socket.socket, task: asyncio.Task[object], place: object) -> None:
        self._connecting.discard(task)
        self.waiting.release(place)
        if task.cancelled() or task.exception() is not None:
            conn.close()  # a no-op when its transport closed it already
        if not task.cancelled() and task.exception() is not None:  # e.g. a failed TLS handshake
            log.debug("connection not made: %s", task.exception())

    def _later(self, delay: float, callback: Callable[..., None], *args: object) -> None:
        def run() -> None:
            self._timers.discard(timer)
            callback(*args)

        timer = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(timer)


def _peer(conn: socket.socket) -> str:
    try:
        return str(conn.getpeername()[0])
    except OSError:
        return "?"
