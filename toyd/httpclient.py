"""A small streaming HTTP/1.1 client on asyncio streams, for the cloud AI backends.

The LLM, hosted STT and hosted TTS plugins all speak plain HTTP to OpenAI-compatible
servers and need the response body as it arrives (server-sent events, raw PCM). This
keeps the cloud free of an extra HTTP dependency: one request per connection
(``Connection: close``), ``Content-Length`` or chunked bodies, TLS via :mod:`ssl`.
Closing the :class:`Response` closes the socket, which is how a server notices that a
turn was cancelled (barge-in).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .errors import BackendError

MAX_HEADER_BYTES = 64 * 1024


def check_base_url(
    url: str, key: str = "base_url", schemes: tuple[str, ...] = ("http", "https")
) -> None:
    """The settings check of a URL: ValueError (naming ``key``) unless its scheme is one of ``schemes``."""
    prefixes = tuple(f"{scheme}://" for scheme in schemes)
    if not url.startswith(prefixes):
        raise ValueError(f"{key} must start with {' or '.join(prefixes)} (got {url!r})")


class Response:
    """Status, headers and a streamed body; always ``aclose()`` it (or use ``async with``)."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        url: str,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.url = url
        self._reader = reader
        self._writer = writer

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def iter_bytes(self, chunk_size: int = 8192) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked transfer decoded); ends at the end of the body."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            async for chunk in self._chunked():
                yield chunk
            return
        length = self.headers.get("content-length")
        remaining = int(length) if length and length.isdigit() else None
        while remaining is None or remaining > 0:
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            data = await self._reader.read(size)
            if not data:
                if remaining:
                    raise BackendError(
                        f"{self.url}: connection closed with {remaining} body bytes missing"
                    )
                return
            if remaining is not None:
                remaining -= len(data)
            yield data

    async def _chunked(self) -> AsyncIterator[bytes]:
        while True:
            line = await self._reader.readline()
            if not line:
                raise BackendError(f"{self.url}: connection closed in the middle of a chunked body")
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise BackendError(f"{self.url}: malformed chunk header {line[:40]!r}") from None
            if size == 0:
                return
            try:
                data = await self._reader.readexactly(size)
            except asyncio.IncompleteReadError as exc:
                raise BackendError(
                    f"{self.url}: connection closed in the middle of a chunk"
                ) from exc
            await self._reader.readline()  # CRLF after the chunk
            yield data

    async def iter_lines(self) -> AsyncIterator[bytes]:
        """The body split at newlines (for server-sent events); bytes, undecoded."""
        buffer = b""
        async for chunk in self.iter_bytes():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r")
        if buffer:
            yield buffer

    async def read(self, limit: int = 16 * 1024 * 1024) -> bytes:
        """The whole body (bounded by ``limit``)."""
        out = bytearray()
        async for chunk in self.iter_bytes():
            out += chunk
            if len(out) > limit:
                raise BackendError(f"{self.url}: response larger than {limit} bytes")
        return bytes(out)

    async def json(self) -> Any:
        """The body parsed as JSON; a clear error when it is not."""
        body = await self.read()
        try:
            return json.loads(body.decode("utf-8", errors="replace"))
        except json.JSONDecodeError as exc:
            raise BackendError(f"{self.url}: response is not JSON ({exc.msg})") from None

    async def aclose(self) -> None:
        """Close the connection (tells the server we stopped listening)."""
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (OSError, TimeoutError, ssl.SSLError):
            pass


async def request(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """Send one request and return once the response headers arrived (bounded by ``timeout``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(f"{url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                parts.hostname,
                port,
                ssl=ssl.create_default_context() if parts.scheme == "https" else None,
                limit=MAX_HEADER_BYTES,
            ),
            timeout,
        )
    except (OSError, TimeoutError) as exc:
        raise BackendError(
            f"cannot connect to {parts.scheme}://{parts.netloc}: {exc or 'timed out'}"
        ) from None
    try:
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        head = {
            "Host": host,
            "User-Agent": "toyd",
            "Accept": "*/*",
            "Connection": "close",
            "Content-Length": str(len(body)),
            **(headers or {}),
        }
        lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status, reason, resp_headers = await asyncio.wait_for(_read_head(reader, url), timeout)
    except BaseException as exc:
        writer.close()
        if isinstance(exc, (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError)):
            raise BackendError(
                f"{url}: no valid response ({type(exc).__name__}: {exc or 'timed out'})"
            ) from None
        raise
    return Response(status, reason, resp_headers, reader, writer, url)


async def _read_head(reader: asyncio.StreamReader, url: str) -> tuple[int, str, dict[str, str]]:
    status_line = await reader.readline()
    if not status_line:
        raise BackendError(f"{url}: connection closed before a response")
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise BackendError(f"{url}: not an HTTP response ({status_line[:40]!r})")
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers


def json_body(data: Any) -> tuple[bytes, dict[str, str]]:
    """A JSON request body and its content type."""
    return json.dumps(data).encode("utf-8"), {"Content-Type": "application/json"}


def multipart_body(
    fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
) -> tuple[bytes, dict[str, str]]:
    """A ``multipart/form-data`` body: text fields plus ``name -> (filename, data, type)`` files."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, (filename, data, ctype) in files.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def auth_headers(api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` when a key is configured."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def error_text(response: Response, limit: int = 300) -> str:
    """A short, readable excerpt of an error response body."""
    try:
        body = await asyncio.wait_for(response.read(64 * 1024), 2.0)
    except (BackendError, TimeoutError):
        return f"HTTP {response.status}"
    text = body.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return (
        f"HTTP {response.status}: {text[:limit]}"
        if text
        else f"HTTP {response.status} {response.reason}"
    )
