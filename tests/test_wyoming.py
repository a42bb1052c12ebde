"""stt_wyoming / tts_wyoming against a small Wyoming server on loopback (protocol edge cases).

The real servers (wyoming-faster-whisper, wyoming-piper) are in test_wyoming_slow.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct

import pytest
from wyoming.asr import Transcript
from wyoming.event import Event, async_read_event, async_write_event

from toyd.errors import BackendError
from toyd.testing import free_port
from toyd.turn import Turn
from toyd.wyoming_client import audio_event
from toyd_plugins.stt_wyoming import WyomingSttPlugin, WyomingSttSettings
from toyd_plugins.tts_wyoming import WyomingTtsPlugin, WyomingTtsSettings

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1")


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    n = int(rate * seconds)
    return struct.pack(
        f"<{n}h", *(int(12000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))
    )


def crossings(pcm: bytes) -> int:
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    return sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))


class Server:
    """Answers each connection with ``reply(events_received)`` → events to send (or raw bytes)."""

    def __init__(self, reply, port: int | None = None) -> None:  # type: ignore[no-untyped-def]
        self.reply, self.port, self.seen = reply, port or free_port(), []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = []
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while (event := await async_read_event(reader)) is not None:
                got.append(event)
                if event.type in ("synthesize", "audio-stop"):
                    break
            self.seen.append(got)
            for out in self.reply(got):
                if isinstance(out, bytes):
                    writer.write(out)
                    await writer.drain()
                else:
                    await async_write_event(out if isinstance(out, Event) else out.event(), writer)
        writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server
        self.server.close()
        await self.server.wait_closed()


def tts(port: int, **kw) -> WyomingTtsPlugin:  # type: ignore[no-untyped-def]
    plugin = WyomingTtsPlugin()
    plugin.settings = WyomingTtsSettings(
        uri=f"tcp://127.0.0.1:{port}", connect_timeout=0.5, timeout=2, **kw
    )
    return plugin


async def speak(plugin: WyomingTtsPlugin, text: str = "Hello there.") -> bytes:
    stream = plugin.toyd_synthesize(turn=TURN, text=text)
    assert stream is not None
    return b"".join([chunk async for chunk in stream])


def piper_like(rate: int = 22050, seconds: float = 1.0, width: int = 2):  # type: ignore[no-untyped-def]
    audio = tone(rate, seconds)

    def reply(got):  # type: ignore[no-untyped-def]
        fmt = {"rate": rate, "width": width, "channels": 1}
        yield Event(type="audio-start", data=fmt)
        for start in range(0, len(audio), 2047):  # odd-sized chunks
            yield Event(type="audio-chunk", data=fmt, payload=audio[start : start + 2047])
        yield audio_event("audio-stop", rate)

    return reply


async def test_piper_rate_is_resampled_to_the_toys_rate():
    async with Server(piper_like()) as server:
        pcm = await speak(tts(server.port, voice="en_US-joe-medium"))
    assert abs(len(pcm) / 32000 - 1.0) < 0.01  # one second at 16 kHz
    assert abs(crossings(pcm) - 880) < 10  # still 440 Hz
    sent = server.seen[0][0]
    assert sent.type == "synthesize" and sent.data["text"] == "Hello there."
    assert sent.data["voice"]["name"] == "en_US-joe-medium"


async def test_chunks_stream_as_they_arrive():
    async with Server(piper_like(seconds=2.0)) as server:
        stream = tts(server.port).toyd_synthesize(turn=TURN, text="Hi.")
        assert stream is not None
        chunks = [chunk async for chunk in stream]
    assert len(chunks) > 20  # not one blob at the end


async def test_a_server_that_is_down_gives_a_clear_error():
    port = free_port()
    with pytest.raises(
        BackendError, match=rf"Wyoming speech synthesis at tcp://127.0.0.1:{port} is down"
    ):
        await speak(tts(port))


async def test_a_restarted_server_is_reached_again():
    port = free_port()
    async with Server(piper_like(seconds=0.2), port=port):
        assert await speak(tts(port))
    with pytest.raises(BackendError, match="is down"):
        await speak(tts(port))
    async with Server(piper_like(seconds=0.2), port=port):  # back up on the same port
        assert await speak(tts(port))


async def test_a_server_coming_up_during_the_connect_window_is_waited_for():
    port = free_port()
    plugin = tts(port)
    plugin.settings = WyomingTtsSettings(uri=f"tcp://127.0.0.1:{port}", connect_timeout=5)

    async def late_start() -> None:
        await asyncio.sleep(0.3)  # the server restarts while the sentence waits
        async with Server(piper_like(seconds=0.2), port=port):
            await asyncio.sleep(2)

    starter = asyncio.create_task(late_start())
    try:
        assert await speak(plugin)
    finally:
        starter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starter


@pytest.mark.parametrize(
    "reply, problem",
    [
        (
            lambda got: [Event(type="error", data={"text": "voice not found"})],
            "failed: voice not found",
        ),
        (lambda got: [b"this is not json\n"], "malformed event"),
        (
            lambda got: [b'{"type": "audio-start", "data": {"rate": "x"}}\n'],
            "malformed audio-start",
        ),
        (lambda got: [], "closed the connection mid-request"),
        (piper_like(width=1), "8-bit audio"),
        (piper_like(rate=1), "at 1 Hz"),
    ],
)
async def test_bad_servers_give_clear_errors(reply, problem):
    async with Server(reply) as server:
        with pytest.raises(BackendError, match=problem):
            await speak(tts(server.port))


async def test_empty_text_is_declined():
    assert WyomingTtsPlugin().toyd_synthesize(turn=TURN, text="  ") is None


def stt(port: int) -> WyomingSttPlugin:
    plugin = WyomingSttPlugin()
    plugin.settings = WyomingSttSettings(
        uri=f"tcp://127.0.0.1:{port}", connect_timeout=0.5, timeout=2, language="en"
    )
    return plugin


async def test_stt_sends_the_utterance_and_reads_the_transcript():
    pcm = tone(16000, 2.5)
    async with Server(lambda got: [Transcript(text=" hello bear ")]) as server:
        result = await stt(server.port).toyd_transcribe(turn=TURN, pcm=pcm, sample_rate=16000)
    assert result.text == "hello bear" and result.language == "en"
    events = server.seen[0]
    assert [e.type for e in events[:2]] == ["transcribe", "audio-start"] and events[
        -1
    ].type == "audio-stop"
    assert events[0].data.get("language") == "en"
    assert b"".join(e.payload or b"" for e in events if e.type == "audio-chunk") == pcm


async def test_stt_short_audio_needs_no_server():
    result = await stt(free_port()).toyd_transcribe(turn=TURN, pcm=bytes(320), sample_rate=16000)
    assert result.text == "" and result.no_speech == 1.0


async def test_stt_down_and_garbage_are_clear_errors():
    with pytest.raises(BackendError, match="Wyoming speech-to-text at tcp://127.0.0.1:.* is down"):
        await stt(free_port()).toyd_transcribe(turn=TURN, pcm=tone(16000, 1), sample_rate=16000)
    async with Server(lambda got: [b'{"type": "transcript", "data": {"text": 5}}\n']) as server:
        with pytest.raises(BackendError, match="transcript without text"):
            await stt(server.port).toyd_transcribe(turn=TURN, pcm=tone(16000, 1), sample_rate=16000)


@pytest.mark.parametrize("uri", ["http://x:1", "tcp://host", "tcp://:10", "unix://", "10300"])
def test_bad_uris_are_refused_at_config_time(uri):
    with pytest.raises(ValueError, match="Wyoming URI"):
        WyomingTtsSettings(uri=uri)
