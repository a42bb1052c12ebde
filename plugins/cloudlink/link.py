"""The device's WebSocket to the cloud: one logical link that reconnects with backoff + jitter.

One connection, from connect to close, is :mod:`.connection`, the only module that needs the
WebSocket library. The link imports it on a thread when its service starts, so neither the
start-up (tens of milliseconds on a Pi Zero) nor the event loop waits for that import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from toyd.asyncutil import backoff_delays
from toyd.protocol import Hello, ServerHello, encode
from toyd.protocol.messages import Message

from .settings import CloudLinkSettings

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger(__name__)

REFUSED_DELAY = 5.0  # seconds before retrying after the cloud refused this toy (401/400, or 503 with Retry-After)
OnFrame = Callable[[str | bytes], Awaitable[None]]


class Link:
    """One logical link that survives disconnects; ``conn`` is set while online."""

    def __init__(
        self,
        settings: CloudLinkSettings,
        device_id: str,
        hello: Callable[[], Hello],
        state_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.device_id = device_id
        self.hello = hello  # builds the toy's hello for each connection
        self.state_dir = (
            state_dir  # where activation stores the toy's token (preferred over the config's)
        )
        self.wake = asyncio.Event()  # set: reconnect now (a new token was stored)
        self.conn: ClientConnection | None = None  # set by .connection, so it is loaded
        self._connection: ModuleType | None = None
        self.server_hello: ServerHello | None = None
        self.connects = 0

    @property
    def online(self) -> bool:
        """True between the server's hello and the close."""
        return self.conn is not None

    async def send(self, msg: Message | bytes) -> bool:
        """Send if online; False when the link is down (the caller decides what that means)."""
        conn, connection = self.conn, self._connection
        if conn is None or connection is None:
            return False
        return await connection.send(conn, msg if isinstance(msg, bytes) else encode(msg))

    async def run(
        self,
        on_frame: OnFrame,
        on_up: Callable[[ServerHello], None],
        on_down: Callable[[str], None],
    ) -> None:
        """Stay connected forever; ``on_up``/``on_down`` fire on every transition."""
        s = self.settings
        delays = backoff_delays(s.backoff_initial, s.backoff_max)
        refused = False
        self._connection = connection = await asyncio.to_thread(_load_connection)
        while True:
            reason = await connection.session(self, on_frame, on_up)
            on_down(reason)
            if self.server_hello is not None:  # it was up: start the backoff over
                delays = backoff_delays(s.backoff_initial, s.backoff_max)
                self.server_hello = None
            if reason.startswith("refused") and not refused:
                # retrying a bad token fast helps nobody
                delays = backoff_delays(
                    max(s.backoff_initial, REFUSED_DELAY), max(s.backoff_max, REFUSED_DELAY)
                )
            refused = reason.startswith("refused")
            delay = next(delays)
            log.info("cloud link down (%s); reconnecting in %.1f s", reason, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
            self.wake.clear()


def _load_connection() -> ModuleType:
    """Import the WebSocket side (on a thread: it costs tens of milliseconds on a Pi Zero)."""
    from . import connection

    return connection
