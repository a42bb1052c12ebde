"""The device's WebSocket to the cloud: connect, hello, read, reconnect with backoff + jitter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

import toyd
from toyd import credentials
from toyd.asyncutil import backoff_delays
from toyd.errors import ProtocolError
from toyd.protocol import Hello, ServerHello, codes, encode, limits, parse
from toyd.protocol.messages import Message

from .settings import CloudLinkSettings

log = logging.getLogger(__name__)
# The WebSocket library logs handshake headers (the token) and every frame at DEBUG:
# its DEBUG records are dropped even when the daemon runs with log_level debug.
ws_log = logging.getLogger(f"{__name__}.websocket")
ws_log.addFilter(lambda record: record.levelno >= logging.INFO)

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
        self._hello = hello
        self.state_dir = (
            state_dir  # where activation stores the toy's token (preferred over the config's)
        )
        self.wake = asyncio.Event()  # set: reconnect now (a new token was stored)
        self.conn: ClientConnection | None = None
        self.server_hello: ServerHello | None = None
        self.connects = 0

    @property
    def online(self) -> bool:
        """True between the server's hello and the close."""
        return self.conn is not None

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.settings.url.startswith("wss://"):
            return None
        return ssl.create_default_context(cafile=self.settings.ca_file or None)

    async def send(self, msg: Message | bytes) -> bool:
        """Send if online; False when the link is down (the caller decides what that means)."""
        conn = self.conn
        if conn is None:
            return False
        try:
            await conn.send(msg if isinstance(msg, bytes) else encode(msg))
            return True
        except ConnectionClosed:
            return False

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
        while True:
            reason = await self._session(on_frame, on_up)
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

    async def _session(self, on_frame: OnFrame, on_up: Callable[[ServerHello], None]) -> str:
        """One connection, from connect to close; returns why it ended."""
        s = self.settings
        stored = (
            await asyncio.to_thread(credentials.read_token, self.state_dir)
            if self.state_dir
            else ""
        )
        headers = {
            "Authorization": f"Bearer {stored or s.token}",
            "Device-Id": self.device_id,
            "Protocol-Version": str(limits.PROTOCOL_VERSION),
        }
        try:
            async with connect(
                s.url,
                additional_headers=headers,
                open_timeout=s.connect_timeout,
                ssl=self._ssl(),
                compression=None,
                max_size=limits.MAX_WS_FRAME,
                proxy=None,
                close_timeout=2,
                ping_interval=limits.KEEPALIVE_INTERVAL,
                ping_timeout=limits.KEEPALIVE_TIMEOUT,
                user_agent_header=f"toyd/{toyd.__version__}",
                logger=ws_log,
            ) as conn:
                hello = await self._handshake(conn)
                self.server_hello = hello
                self.conn = conn
                self.connects += 1
                on_up(hello)
                try:
                    async for frame in conn:
                        await on_frame(frame)
                finally:
                    self.conn = None
                if conn.close_code == codes.CLOSE_REPLACED:
                    log.warning(
                        "another connection with device_id %r replaced this one: is the id used twice?",
                        self.device_id,
                    )
                return f"closed by server ({conn.close_code}{': ' + conn.close_reason if conn.close_reason else ''})"
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                log.error("cloud refused this toy (HTTP 401): check cloudlink.token and device_id")
            if status in (502, 503, 504) and "Retry-After" not in exc.response.headers:
                # a proxy in front has no gateway for us this moment: retry at the normal pace
                return f"unavailable: HTTP {status}"
            return f"refused: HTTP {status}"
        except ConnectionClosed as exc:
            return f"connection lost ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        except TimeoutError:
            return "timed out"
        except ProtocolError as exc:
            log.error("cloud hello failed: %s", exc)
            return f"bad hello: {exc.code}"
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a bug handling one frame must not end the link for good
            log.error("cloud link failed: %s: %s", type(exc).__name__, exc)
            log.debug("cloud link traceback", exc_info=exc)
            return f"internal error: {type(exc).__name__}"

    async def _handshake(self, conn: ClientConnection) -> ServerHello:
        await conn.send(encode(self._hello()))
        async with asyncio.timeout(self.settings.hello_timeout):
            while True:
                frame = await conn.recv()
                if isinstance(frame, bytes):
                    raise ProtocolError(codes.NOT_READY, "binary frame before hello")
                msg = parse(frame, "down")
                if isinstance(msg, ServerHello):
                    if msg.version != limits.PROTOCOL_VERSION:
                        raise ProtocolError(
                            codes.UNSUPPORTED_VERSION, f"server speaks protocol {msg.version}"
                        )
                    return msg
                log.warning("cloud sent %s before hello: %s", msg.type, getattr(msg, "message", ""))
