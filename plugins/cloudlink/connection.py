"""One connection of the toy's cloud link, from connect to close: the WebSocket side.

Only this module imports the WebSocket library; :class:`~.link.Link` loads it on a
thread when its service starts (see :mod:`.link`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

import toyd
from toyd import credentials
from toyd.errors import ProtocolError
from toyd.protocol import ServerHello, codes, encode, limits, parse

if TYPE_CHECKING:
    from .link import Link, OnFrame

log = logging.getLogger(__name__)
# The WebSocket library logs handshake headers (the token) and every frame at DEBUG:
# its DEBUG records are dropped even when the daemon runs with log_level debug.
ws_log = logging.getLogger(f"{__name__}.websocket")
ws_log.addFilter(lambda record: record.levelno >= logging.INFO)


async def send(conn: ClientConnection, data: str | bytes) -> bool:
    """Send one frame; False when the connection closed meanwhile."""
    try:
        await conn.send(data)
        return True
    except ConnectionClosed:
        return False


def _ssl(url: str, ca_file: str) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    return ssl.create_default_context(cafile=ca_file or None)


async def session(link: Link, on_frame: OnFrame, on_up: Callable[[ServerHello], None]) -> str:
    """One connection, from connect to close; returns why it ended."""
    s = link.settings
    stored = (
        await asyncio.to_thread(credentials.read_token, link.state_dir) if link.state_dir else ""
    )
    headers = {
        "Authorization": f"Bearer {stored or s.token}",
        "Device-Id": link.device_id,
        "Protocol-Version": str(limits.PROTOCOL_VERSION),
    }
    try:
        async with connect(
            s.url,
            additional_headers=headers,
            open_timeout=s.connect_timeout,
            ssl=_ssl(s.url, s.ca_file),
            compression=None,
            max_size=limits.MAX_WS_FRAME,
            proxy=None,
            close_timeout=2,
            ping_interval=limits.KEEPALIVE_INTERVAL,
            ping_timeout=limits.KEEPALIVE_TIMEOUT,
            user_agent_header=f"toyd/{toyd.__version__}",
            logger=ws_log,
        ) as conn:
            hello = await _handshake(link, conn)
            link.server_hello = hello
            link.conn = conn
            link.connects += 1
            on_up(hello)
            try:
                async for frame in conn:
                    await on_frame(frame)
            finally:
                link.conn = None
            if conn.close_code == codes.CLOSE_REPLACED:
                log.warning(
                    "another connection with device_id %r replaced this one: is the id used twice?",
                    link.device_id,
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


async def _handshake(link: Link, conn: ClientConnection) -> ServerHello:
    await conn.send(encode(link.hello()))
    async with asyncio.timeout(link.settings.hello_timeout):
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
