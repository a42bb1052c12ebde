"""Talking to Wyoming speech services (rhasspy's protocol: one JSON line + payload per event).

Shared by the ``stt_wyoming`` and ``tts_wyoming`` plugins. One connection per request,
as Home Assistant does: a server that restarted is simply reached by the next request.
Connecting retries for ``connect_timeout`` seconds (a server coming back up), then
fails with a :class:`BackendError` that names the URI; so does a malformed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from .asyncutil import backoff_delays
from .errors import BackendError

log = logging.getLogger(__name__)
MAX_EVENT_BYTES = 4 * 1024 * 1024  # a header line or payload larger than this is an error


def audio_event(kind: str, rate: int, *, audio: bytes | None = None) -> Any:
    """An ``audio-start``/``audio-chunk``/``audio-stop`` event of 16-bit mono PCM.

    Built here rather than with ``wyoming.audio``: in wyoming 1.2 (the version the wake-word
    package pins) that module imports ``audioop``, deprecated since Python 3.11.
    """
    from wyoming.event import Event

    data = {} if kind == "audio-stop" else {"rate": rate, "width": 2, "channels": 1}
    return Event(type=kind, data=data, payload=audio)


def audio_format(event: Any, uri: str) -> tuple[int, int, int]:
    """(rate, width, channels) of an audio event, checked; BackendError naming the server otherwise."""
    data = event.data if isinstance(event.data, dict) else {}
    try:
        rate, width, channels = (int(data[k]) for k in ("rate", "width", "channels"))
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(
            f"Wyoming server at {uri} sent a malformed {event.type}: {type(exc).__name__}: {exc}"
        ) from None
    return rate, width, channels


def check_uri(uri: str) -> str:
    """``tcp://host:port`` or ``unix:///path``; a ValueError naming what is wrong otherwise."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "tcp":
        if not parsed.hostname or parsed.port is None:
            raise ValueError(
                f"a Wyoming URI needs a host and a port: tcp://host:port (got {uri!r})"
            )
    elif parsed.scheme == "unix":
        if not parsed.path:
            raise ValueError(
                f"a unix Wyoming URI needs a socket path: unix:///run/piper.sock (got {uri!r})"
            )
    else:
        raise ValueError(f"a Wyoming URI is tcp://host:port or unix:///path (got {uri!r})")
    return uri


class Connection:
    """One open connection: write events, read events with a deadline."""

    def __init__(
        self, uri: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.uri, self.reader, self.writer = uri, reader, writer

    async def send(self, event: Any) -> None:
        from wyoming.event import async_write_event

        await async_write_event(event, self.writer)

    async def receive(self, timeout: float) -> Any:
        """The next event; BackendError when the server closes, sends garbage, or is too slow."""
        try:
            async with asyncio.timeout(timeout):
                event = await self._read()
        except TimeoutError:
            raise BackendError(
                f"Wyoming server at {self.uri} did not answer within {timeout:.0f} s"
            ) from None
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise BackendError(
                f"Wyoming server at {self.uri} sent a malformed event: {str(exc)[:160]}"
            ) from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise BackendError(
                f"Wyoming server at {self.uri} dropped the connection: {exc}"
            ) from None
        if event is None:
            raise BackendError(f"Wyoming server at {self.uri} closed the connection mid-request")
        if event.type == "error":
            raise BackendError(
                f"Wyoming server at {self.uri} failed: {str(event.data.get('text'))[:200]}"
            )
        return event

    async def _read(self) -> Any:
        """One event: a JSON header line, optional extra data, optional payload (sizes bounded).

        Read here, not with ``wyoming.event.async_read_event``, which answers a malformed
        line with None (indistinguishable from a closed connection).
        """
        from wyoming.event import Event

        line = await self.reader.readline()
        if not line:
            return None
        header = json.loads(line)
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ValueError("an event header must be a JSON object with a 'type'")
        data = header.get("data") or {}
        sizes = [header.get("data_length") or 0, header.get("payload_length") or 0]
        if not isinstance(data, dict) or any(
            not isinstance(n, int) or not 0 <= n <= MAX_EVENT_BYTES for n in sizes
        ):
            raise ValueError(f"{header['type']}: bad data or lengths {sizes}")
        if sizes[0]:
            extra = json.loads(await self.reader.readexactly(sizes[0]))
            if not isinstance(extra, dict):
                raise ValueError(f"{header['type']}: extra data is not an object")
            data = {**data, **extra}
        payload = await self.reader.readexactly(sizes[1]) if sizes[1] else None
        return Event(type=header["type"], data=data, payload=payload)


async def _open(uri: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "unix":
        return await asyncio.open_unix_connection(parsed.path, limit=MAX_EVENT_BYTES)
    return await asyncio.open_connection(parsed.hostname, parsed.port, limit=MAX_EVENT_BYTES)


@contextlib.asynccontextmanager
async def connection(uri: str, *, connect_timeout: float, what: str) -> AsyncIterator[Connection]:
    """Connect (retrying while a restarting server comes back), yield, always close."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout
    delays = backoff_delays(0.05, 1.0, jitter=0.1)
    while True:
        try:
            async with asyncio.timeout(max(0.1, deadline - loop.time())):
                reader, writer = await _open(uri)
            break
        except (OSError, TimeoutError) as exc:
            if loop.time() + 0.05 >= deadline:
                raise BackendError(
                    f"{what} at {uri} is down (no connection within {connect_timeout:.0f} s: "
                    f"{exc or type(exc).__name__})"
                ) from None
            await asyncio.sleep(min(next(delays), max(0.0, deadline - loop.time())))
    try:
        yield Connection(uri, reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
