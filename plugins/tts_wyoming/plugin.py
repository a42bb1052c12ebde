"""The ``tts_wyoming`` plugin (cloud role): ``toyd_synthesize`` over the Wyoming protocol.

The gateway asks for one sentence at a time; each is a ``synthesize`` request whose
``audio-chunk`` events are resampled as they arrive (Piper: 22.05 kHz → the toy's
16 kHz, a streaming soxr resampler) and handed on at once, so the toy hears the first
words while the rest of the sentence is still being made. A natural neural voice:
wyoming-piper with a Piper voice (the GPL piper engine runs in its own process).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

from toyd import App, PluginDeclaration, hookimpl, setting
from toyd.audio.pcm import SAMPLE_RATE
from toyd.errors import BackendError
from toyd.turn import Turn
from toyd.wyoming_client import audio_format, check_uri, connection

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WyomingTtsSettings:
    """Settings of the ``tts_wyoming`` section."""

    uri: str = setting(
        "tcp://127.0.0.1:10200",
        doc="The Wyoming speech synthesis server: tcp://host:port or unix:///path.",
    )
    voice: str | None = setting(
        None, doc="Voice name (Piper: en_US-joe-medium); the server's default when unset."
    )
    speaker: str | None = setting(None, doc="Speaker of a multi-speaker voice.")
    connect_timeout: float = setting(
        3.0,
        min=0.1,
        max=60,
        doc="Seconds to reach the server, retrying while it restarts; then a clear error.",
    )
    timeout: float = setting(
        15.0, min=0.5, max=300, doc="Seconds the server may go quiet mid-sentence."
    )

    def __post_init__(self) -> None:
        check_uri(self.uri)


class Resampler:
    """Server audio (any rate, 16-bit, mono or more channels) → the toy's 16 kHz mono, streaming."""

    def __init__(self, rate: int, width: int, channels: int, uri: str) -> None:
        if width != 2:
            raise BackendError(
                f"Wyoming speech synthesis at {uri} sends {8 * width}-bit audio; 16-bit is needed"
            )
        if not 1 <= channels <= 8 or not 4000 <= rate <= 192000:
            raise BackendError(
                f"Wyoming speech synthesis at {uri} sends {channels} channels at {rate} Hz"
            )
        import soxr

        self.channels = channels
        self._stream = (
            None
            if rate == SAMPLE_RATE
            else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16")
        )
        self._odd = b""

    def feed(self, audio: bytes, *, last: bool = False) -> bytes:
        import numpy as np

        audio = self._odd + audio
        frame = 2 * self.channels
        cut = len(audio) - len(audio) % frame
        audio, self._odd = audio[:cut], audio[cut:]
        samples = np.frombuffer(audio, "<i2")
        if self.channels > 1:
            samples = samples[:: self.channels]  # the first channel
        if self._stream is None:
            return samples.tobytes()
        return self._stream.resample_chunk(samples, last=last).astype("<i2").tobytes()


class WyomingTtsPlugin:
    """One connection per sentence; a restarted server is reached by the next sentence."""

    def __init__(self) -> None:
        self.settings = WyomingTtsSettings()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=WyomingTtsSettings,
            summary="Speech synthesis on a Wyoming server (wyoming-piper, ...)",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: WyomingTtsSettings) -> None:
        self.settings = settings
        log.info("tts_wyoming: %s, voice %s", settings.uri, settings.voice or "(server default)")

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: WyomingTtsSettings) -> bool:
        self.settings = settings
        return True

    @hookimpl
    def toyd_synthesize(self, turn: Turn, text: str) -> AsyncIterator[bytes] | None:
        if not text.strip():
            return None
        return self.stream(text, self.settings)

    async def stream(self, text: str, s: WyomingTtsSettings) -> AsyncIterator[bytes]:
        """16 kHz mono int16 chunks of one sentence, as the server makes them."""
        from wyoming.event import Event

        ask: dict[str, object] = {"text": text}
        if voice := {k: v for k, v in (("name", s.voice), ("speaker", s.speaker)) if v}:
            ask["voice"] = voice
        async with connection(
            s.uri, connect_timeout=s.connect_timeout, what="Wyoming speech synthesis"
        ) as conn:
            await conn.send(Event(type="synthesize", data=ask))
            resampler: Resampler | None = None
            while True:
                event = await conn.receive(s.timeout)
                if event.type == "audio-start":
                    resampler = Resampler(*audio_format(event, s.uri), s.uri)
                elif event.type == "audio-chunk":
                    if resampler is None:  # a server that skips audio-start
                        resampler = Resampler(*audio_format(event, s.uri), s.uri)
                    if pcm := resampler.feed(event.payload or b""):
                        yield pcm
                elif event.type == "audio-stop":
                    if resampler is not None and (tail := resampler.feed(b"", last=True)):
                        yield tail
                    return
