"""A local stand-in for paid OpenAI-compatible HTTP APIs (tests and benchmarks only).

Real language-model servers are paid or need weights, so tests talk to this server on
a free loopback port instead. It speaks the wire formats the cloud plugins use:
streaming ``/v1/chat/completions`` (server-sent events) with scripted replies, a
configurable first-token delay and faults (cut mid-stream, non-UTF-8 bytes, HTTP
errors); ``/v1/audio/transcriptions``; ``/v1/audio/speech`` and the ElevenLabs-style
``/v1/text-to-speech/<voice>/stream`` (PCM, chunked). It records every request and
notices when a client hangs up before the reply is complete (barge-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any


@dataclasses.dataclass
class Script:
    """What the chat endpoint answers next."""

    reply: str = "Hello! I am a friendly toy."
    first_token_delay: float = 0.05
    token_delay: float = 0.0
    cut_after: int | None = None  # close the connection after this many tokens, no [DONE]
    raw_bytes: bytes | None = None  # sent as one delta's content bytes (e.g. invalid UTF-8)
    status: int = 200


@dataclasses.dataclass
class Seen:
    """One request the stand-in received."""

    path: str
    headers: dict[str, str]
    body: bytes
    completed: bool = False
    disconnected: bool = False
    started: float = dataclasses.field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


class StandIn:
    """The server; ``async with StandIn() as s: s.url`` → ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.default = Script()
        self.transcript = "hello"
        self.speech_pcm = b"\x00\x10" * 2400  # 0.1 s at 24 kHz
        self.speech_chunk = 960
        self.audio_status = 200  # set to fail the transcription and speech endpoints
        self.requests: list[Seen] = []
        self.disconnects = asyncio.Queue[Seen]()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, reply: str, **kwargs: Any) -> Script:
        """Queue a scripted chat reply (used once, in order; then ``default``)."""
        item = Script(reply, **kwargs)
        self.scripts.append(item)
        return item

    async def __aenter__(self) -> StandIn:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: Seen | None = None
        try:
            request_line = await reader.readline()
            if not request_line:
                return
            _, path, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                key, _, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            seen = Seen(path, headers, body)
            self.requests.append(seen)
            if self.audio_status != 200 and ("/audio/" in path or "/text-to-speech/" in path):
                await self._send(
                    writer,
                    self.audio_status,
                    b'{"error": {"message": "scripted failure"}}',
                    "application/json",
                )
            elif path.endswith("/chat/completions"):
                await self._chat(seen, reader, writer)
            elif path.endswith("/audio/transcriptions"):
                await self._send(
                    writer,
                    200,
                    json.dumps(
                        {
                            "text": self.transcript,
                            "language": "en",
                            "segments": [{"avg_logprob": -0.2, "no_speech_prob": 0.05}],
                        }
                    ).encode(),
                    "application/json",
                )
            elif path.endswith("/audio/speech") or "/text-to-speech/" in path:
                await self._speech(writer)
            else:
                await self._send(
                    writer, 404, b'{"error": {"message": "no such endpoint"}}', "application/json"
                )
            seen.completed = True
        except (ConnectionError, asyncio.IncompleteReadError):
            if seen is not None:
                seen.disconnected = True
                self.disconnects.put_nowait(seen)
        finally:
            writer.close()

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str
    ) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
        if writer.transport.is_closing():
            raise ConnectionResetError("client went away")

    async def _chat(
        self, seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        script = self.scripts.pop(0) if self.scripts else self.default
        if script.status != 200:
            await self._send(
                writer,
                script.status,
                b'{"error": {"message": "scripted failure"}}',
                "application/json",
            )
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        # the client sends nothing after its request: any read that returns means it hung up
        watcher = asyncio.ensure_future(reader.read(1))
        try:
            await _sleep_or_hangup(script.first_token_delay, watcher)
            tokens = _tokens(script.reply)
            for i, token in enumerate(tokens):
                if script.cut_after is not None and i >= script.cut_after:
                    writer.transport.abort()
                    return
                if i and script.token_delay:
                    await _sleep_or_hangup(script.token_delay, watcher)
                event = {"choices": [{"index": 0, "delta": {"content": token}}]}
                if watcher.done():
                    raise ConnectionResetError("client went away")
                await self._chunk(writer, b"data: " + json.dumps(event).encode() + b"\n\n")
                if i == 0 and script.raw_bytes is not None:
                    payload = (
                        b'{"choices": [{"index": 0, "delta": {"content": "'
                        + script.raw_bytes
                        + b'"}}]}'
                    )
                    await self._chunk(writer, b"data: " + payload + b"\n\n")
            await self._chunk(writer, b"data: [DONE]\n\n")
            await self._chunk(writer, b"")
        finally:
            watcher.cancel()

    async def _speech(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: audio/pcm\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        for i in range(0, len(self.speech_pcm), self.speech_chunk):
            await self._chunk(writer, self.speech_pcm[i : i + self.speech_chunk])
        await self._chunk(writer, b"")


def _tokens(text: str) -> list[str]:
    """Split like a tokenizer would, roughly: words with their leading space."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


async def _sleep_or_hangup(delay: float, watcher: asyncio.Future[bytes]) -> None:
    if delay <= 0:
        return
    done, _ = await asyncio.wait({watcher}, timeout=delay)
    if done:
        raise ConnectionResetError("client went away")


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    """Everything an async iterator yields (bounded by the caller's timeout)."""
    return [item async for item in stream]
