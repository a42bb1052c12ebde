"""A new connection's first words: a toyd ``hello``, or a xiaozhi client's, within ``hello_timeout``.

Anything else before the hello gets an error and another chance (until too many errors);
a xiaozhi hello with an audio format the gateway cannot serve is refused at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import ServerConnection

from toyd.errors import ProtocolError
from toyd.protocol import AudioParams, Error, Hello, codes, encode, limits, parse

from .xiaozhi import Dialect, is_xiaozhi_hello

log = logging.getLogger(__name__)
SUPPORTED_AUDIO = AudioParams()
Report = Callable[[ProtocolError], Awaitable[bool]]  # False: the connection was closed


async def read_hello(
    conn: ServerConnection, device_id: str, timeout: float, report: Report
) -> Hello | Dialect | None:
    """The toy's hello, or the xiaozhi client's dialect; None when the connection was closed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                frame = await conn.recv()
        except TimeoutError:
            log.info("%s: no hello within %g s; closing", device_id, timeout)
            await conn.close(codes.CLOSE_POLICY, "hello timeout")
            return None
        try:
            if isinstance(frame, bytes):
                raise ProtocolError(codes.NOT_READY, "send hello before audio")
            if is_xiaozhi_hello(frame):
                return await _xiaozhi_dialect(conn, device_id, frame)
            msg = parse(frame, "up")
            if not isinstance(msg, Hello):
                raise ProtocolError(codes.NOT_READY, f"send hello before {msg.type}")
            if msg.version != limits.PROTOCOL_VERSION:
                raise ProtocolError(
                    codes.UNSUPPORTED_VERSION,
                    f"this server speaks protocol {limits.PROTOCOL_VERSION}",
                )
            if msg.audio_params != SUPPORTED_AUDIO:
                raise ProtocolError(
                    codes.UNSUPPORTED_AUDIO,
                    "audio_params must be opus, 16000 Hz, 1 channel, 20 ms",
                )
            return msg
        except ProtocolError as exc:
            if not await report(exc):
                return None


async def _xiaozhi_dialect(conn: ServerConnection, device_id: str, frame: str) -> Dialect | None:
    """A xiaozhi client's audio format; one it asks for that cannot be served closes the connection."""
    try:
        return Dialect.from_hello(frame)
    except ProtocolError as exc:
        log.info("%s: xiaozhi hello refused: %s", device_id, exc)
        await conn.send(encode(Error(code=exc.code, message=str(exc)[:300], ref="hello")))
        await conn.close(codes.CLOSE_POLICY, exc.code)
        return None
