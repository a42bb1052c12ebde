"""A small xiaozhi server written from 78/xiaozhi-esp32 ``docs/websocket.md`` (CI supplement).

The real xiaozhi-esp32-server cannot be installed in CI; this one speaks the same wire:
handshake headers, hello with ``audio_params``, ``listen`` start/stop/detect, raw Opus
both ways (downlink at 24 kHz, 60 ms frames like the real server), ``stt``, ``llm``
emotion, ``tts`` start/sentence_start/stop, ``abort``, and MCP calls to the device.
In ``auto``/``realtime`` mode it ends the utterance itself after a run of quiet frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from toyd.audio.opus import OpusDecoder, OpusEncoder
from toyd.audio.pcm import rms
from toyd.testing import espeak_pcm

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
DOWN_RATE, DOWN_MS = 24000, 60


@dataclasses.dataclass
class Seen:
    """What the server saw, for assertions."""

    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    hellos: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    messages: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    uplink_frames: int = 0
    uplink_pcm: bytearray = dataclasses.field(default_factory=bytearray)
    mcp_replies: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    sent_audio: int = 0
    aborted: int = 0

    def of(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())
        ]


@dataclasses.dataclass
class Script:
    """How the server answers."""

    heard: str = "tell me a story"
    sentences: tuple[str, ...] = ("Once upon a time.", "The end.")
    emotion: str = "happy"
    pace: float = 0.0  # seconds between downlink frames (0: as fast as possible)
    mcp_calls: tuple[dict[str, Any], ...] = ()  # JSON-RPC payloads sent after the hello
    token: str = "xz-token"
    quiet_frames: int = 10  # auto mode: this many quiet frames after speech end the utterance
    silent: bool = False  # never answer (the toy must time out)


class XiaozhiServer:
    """Serves one toy at a time on loopback."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.seen = Seen()
        self.port = 0
        self.conn: ServerConnection | None = None
        self._speaking: asyncio.Task[None] | None = None
        self._audio: dict[str, bytes] = {}

    def _audio_of(self, sentence: str) -> bytes:
        if sentence not in self._audio:
            self._audio[sentence] = espeak_pcm(sentence, sample_rate=DOWN_RATE)
        return self._audio[sentence]

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        h = request.headers
        self.seen.headers = {
            k: h.get(k, "") for k in ("Authorization", "Protocol-Version", "Device-Id", "Client-Id")
        }
        ok = (
            h.get("Authorization") == f"Bearer {self.script.token}"
            and h.get("Protocol-Version") == "1"
            and MAC.match(h.get("Device-Id", "")) is not None
        )
        try:
            uuid.UUID(h.get("Client-Id", ""))
        except ValueError:
            ok = False
        return None if ok else conn.respond(401, "unauthorized\n")

    async def _handle(self, conn: ServerConnection) -> None:
        self.conn = conn
        with contextlib.suppress(ConnectionClosed):
            await self._serve(conn)

    async def _serve(self, conn: ServerConnection) -> None:
        session, mode, speech, quiet = uuid.uuid4().hex, "manual", False, 0
        decoder = OpusDecoder()
        async for frame in conn:
            if isinstance(frame, bytes):
                self.seen.uplink_frames += 1
                pcm = decoder.decode(frame)
                self.seen.uplink_pcm += pcm
                if mode != "manual":  # a crude energy VAD is enough for a stand-in
                    loud = rms(pcm) > 300
                    speech, quiet = speech or loud, 0 if loud else quiet + 1
                    if speech and quiet >= self.script.quiet_frames:
                        speech, quiet = False, 0
                        self._answer(session)
                continue
            msg = json.loads(frame)
            self.seen.messages.append(msg)
            kind = msg.get("type")
            if kind == "hello":
                self.seen.hellos.append(msg)
                await conn.send(
                    json.dumps(
                        {
                            "type": "hello",
                            "transport": "websocket",
                            "session_id": session,
                            "audio_params": {
                                "format": "opus",
                                "sample_rate": DOWN_RATE,
                                "channels": 1,
                                "frame_duration": DOWN_MS,
                            },
                        }
                    )
                )
                for call in self.script.mcp_calls:
                    await conn.send(
                        json.dumps({"session_id": session, "type": "mcp", "payload": call})
                    )
            elif kind == "listen":
                mode = msg.get("mode", mode)
                if msg.get("state") == "start":
                    self.seen.uplink_pcm.clear()
                    speech, quiet = False, 0
                elif msg.get("state") == "stop":
                    self._answer(session)
            elif kind == "abort":
                self.seen.aborted += 1
                if self._speaking is not None:
                    self._speaking.cancel()
                    await conn.send(
                        json.dumps({"session_id": session, "type": "tts", "state": "stop"})
                    )
            elif kind == "mcp":
                self.seen.mcp_replies.append(msg.get("payload"))

    def _answer(self, session: str) -> None:
        if not self.script.silent and (self._speaking is None or self._speaking.done()):
            self._speaking = asyncio.get_running_loop().create_task(self._speak(session))

    async def _speak(self, session: str) -> None:
        conn, s = self.conn, self.script
        assert conn is not None

        async def send(kind: str, **fields: Any) -> None:
            await conn.send(json.dumps({"session_id": session, "type": kind, **fields}))

        await send("stt", text=s.heard)
        await send("llm", emotion=s.emotion, text="😀")
        await send("tts", state="start")
        encoder = OpusEncoder(sample_rate=DOWN_RATE, frame_ms=DOWN_MS)
        for sentence in s.sentences:
            await send("tts", state="sentence_start", text=sentence)
            pcm = self._audio_of(sentence)
            step = encoder.frame_bytes
            for start in range(0, len(pcm) - step + 1, step):
                await conn.send(encoder.encode(pcm[start : start + step]))
                self.seen.sent_audio += 1
                await asyncio.sleep(s.pace)
        await send("tts", state="stop")

    def encode_frame(self, sentence: str = "Hi.") -> bytes:
        """One downlink Opus frame of speech (24 kHz, 60 ms)."""
        encoder = OpusEncoder(sample_rate=DOWN_RATE, frame_ms=DOWN_MS)
        return encoder.encode(self._audio_of(sentence)[: encoder.frame_bytes])

    async def send(self, frame: str | bytes | dict[str, Any]) -> None:
        """Send anything to the connected toy (hostile-input tests)."""
        assert self.conn is not None
        await self.conn.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    async def close_client(self, code: int = 1000) -> None:
        if self.conn is not None:
            await self.conn.close(code)


@contextlib.asynccontextmanager
async def xiaozhi_server(script: Script | None = None) -> AsyncIterator[XiaozhiServer]:
    """Run the stand-in on a free loopback port."""
    server = XiaozhiServer(script)
    async with serve(
        server._handle, "127.0.0.1", 0, process_request=server._check, compression=None
    ) as ws:
        server.port = ws.sockets[0].getsockname()[1]
        try:
            yield server
        finally:
            if server._speaking is not None:
                server._speaking.cancel()
