"""The WebSocket to a xiaozhi server: handshake headers, hello both ways, reconnect with backoff.

The server closes an idle connection (xiaozhi-esp32-server: after
``close_connection_no_voice_time``); a clean close with no turn in flight is followed
by an immediate, quiet reconnect, so the toy is not shown offline for it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

import toyd
from toyd.asyncutil import backoff_delays

from .settings import XiaozhiSettings, client_uuid, device_mac
from .wire import XiaozhiProtocolError, client_hello, dumps, parse_server

log = logging.getLogger(__name__)
ws_log = logging.getLogger(f"{__name__}.websocket")  # its DEBUG records carry the token: dropped
ws_log.addFilter(lambda record: record.levelno >= logging.INFO)
MAX_FRAME = 256 * 1024
OnFrame = Callable[[str | bytes], Awaitable[None]]


class Link:
    """One logical link to the server that survives disconnects; ``conn`` is set while up."""

    def __init__(self, settings: XiaozhiSettings, device_id: str) -> None:
        self.settings = settings
        self.device_id = device_id
        self.conn: ClientConnection | None = None
        self.session_id = ""
        self.server_audio: dict[str, Any] = {}
        self.connects = 0

    @property
    def online(self) -> bool:
        return self.conn is not None

    def headers(self) -> dict[str, str]:
        """The handshake headers the ESP32 firmware sends."""
        return {
            "Authorization": f"Bearer {self.settings.token}",
            "Protocol-Version": "1",
            "Device-Id": device_mac(self.settings, self.device_id),
            "Client-Id": client_uuid(self.settings, self.device_id),
        }

    async def send(self, msg: dict[str, Any] | bytes) -> bool:
        """Send if up; False when the link is down."""
        conn = self.conn
        if conn is None:
            return False
        if isinstance(msg, dict) and self.session_id:
            msg = {"session_id": self.session_id, **msg}
        try:
            await conn.send(msg if isinstance(msg, bytes) else dumps(msg))
            return True
        except ConnectionClosed:
            return False

    async def run(
        self, on_frame: OnFrame, on_up: Callable[[], None], on_down: Callable[[str, bool], None]
    ) -> None:
        """Stay connected; ``on_down(reason, quiet)``: quiet for the server's clean idle close."""
        s = self.settings
        delays = backoff_delays(s.backoff_initial, s.backoff_max)
        while True:
            was_up, reason, clean = await self._session(on_frame, on_up)
            on_down(reason, was_up and clean)
            if was_up:
                delays = backoff_delays(s.backoff_initial, s.backoff_max)
                if clean:
                    log.info("xiaozhi server closed the connection (%s); reconnecting", reason)
                    continue
            delay = next(delays)
            log.info("xiaozhi link down (%s); reconnecting in %.1f s", reason, delay)
            await asyncio.sleep(delay)

    async def _session(
        self, on_frame: OnFrame, on_up: Callable[[], None]
    ) -> tuple[bool, str, bool]:
        """One connection; returns (was it up, why it ended, was the close clean)."""
        s = self.settings
        secure = ssl.create_default_context() if s.url.startswith("wss://") else None
        try:
            async with connect(
                s.url,
                additional_headers=self.headers(),
                open_timeout=s.connect_timeout,
                ssl=secure,
                compression=None,
                max_size=MAX_FRAME,
                proxy=None,
                close_timeout=2,
                user_agent_header=f"toyd/{toyd.__version__}",
                logger=ws_log,
            ) as conn:
                await self._handshake(conn)
                self.conn = conn
                self.connects += 1
                try:
                    on_up()
                    async for frame in conn:
                        await on_frame(frame)
                finally:
                    self.conn = None
                code = conn.close_code
                return True, f"closed by server ({code})", code in (1000, 1001)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                log.error("xiaozhi server refused this toy (HTTP %d): check xiaozhi.token", status)
            return False, f"refused: HTTP {status}", False
        except ConnectionClosed as exc:
            return (
                self.session_id != "",
                f"connection lost ({exc.rcvd.code if exc.rcvd else 'no close'})",
                False,
            )
        except TimeoutError:
            return False, "timed out", False
        except XiaozhiProtocolError as exc:
            log.error("xiaozhi hello failed: %s", exc)
            return False, f"bad hello: {exc}", False
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            return False, f"{type(exc).__name__}: {exc}", False
        finally:
            self.session_id = ""

    async def _handshake(self, conn: ClientConnection) -> None:
        await conn.send(dumps(client_hello(self.settings.frame_duration)))
        async with asyncio.timeout(self.settings.hello_timeout):
            while True:
                frame = await conn.recv()
                if isinstance(frame, bytes):
                    continue  # audio before the hello is not for us
                try:
                    msg = parse_server(frame)
                except XiaozhiProtocolError as exc:
                    if '"hello"' in frame:
                        raise
                    log.warning("xiaozhi: bad frame before hello dropped: %s", exc)
                    continue
                if msg["type"] == "hello":
                    self.session_id = msg.get("session_id") or ""
                    self.server_audio = msg.get("audio_params") or {}
                    log.info(
                        "xiaozhi link up: session %s, server audio %s",
                        self.session_id or "-",
                        self.server_audio or "as sent",
                    )
                    return
