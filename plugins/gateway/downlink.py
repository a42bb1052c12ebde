"""Downlink speech of one response: re-frame PCM, encode Opus, pace to real time plus a lead.

The device buffer should neither starve nor flood: frame *k* of a response leaves no
earlier than ``lead`` before the moment the device will play it. When synthesis falls
behind real time the clock restarts from now (the device has already run dry, so
sending faster would only flood it later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from toyd.audio import FRAME_MS, SAMPLE_RATE
from toyd.audio.opus import OpusEncoder
from toyd.protocol import Tts, pack_audio
from toyd.protocol.limits import MAX_TEXT_CHARS
from toyd.protocol.messages import Message

Send = Callable[[Message | str | bytes], Awaitable[None]]


class Downlink:
    """Speaks one response (``response_id``) to one device."""

    def __init__(
        self,
        send: Send,
        response_id: int,
        turn_id: str,
        *,
        lead: float,
        bitrate: int = 24000,
        sample_rate: int = SAMPLE_RATE,
        frame_ms: int = FRAME_MS,
        raw: bool = False,
    ) -> None:
        """``raw``: bare Opus (xiaozhi) at ``sample_rate``/``frame_ms``, else toyd's framing."""
        self._send = send
        self.response_id = response_id
        self.turn_id = turn_id
        self.lead = lead
        self.raw = raw
        self._encoder = OpusEncoder(sample_rate=sample_rate, bitrate=bitrate, frame_ms=frame_ms)
        self.frame_bytes, self.frame_s = self._encoder.frame_bytes, frame_ms / 1000
        self._resampler = None
        if sample_rate != SAMPLE_RATE:  # TTS speaks 16 kHz; the client asked for another rate
            import soxr

            self._resampler = soxr.ResampleStream(SAMPLE_RATE, sample_rate, 1, dtype="int16")
        self._pending = b""
        self._clock: float | None = None  # when the device will have played what was sent
        self.started = False
        self.cancelled = False  # aborted: nothing more of it leaves, whatever a hook does
        self.frames = 0
        self.bytes = 0
        self.first_audio_at: float | None = None
        self.max_lead = 0.0  # the largest lead actually reached, seconds

    async def message(self, msg: Message) -> None:
        """Send a control message."""
        if not self.cancelled:
            await self._send(msg)

    async def start(self, kind: str = "reply", cache_key: str | None = None) -> None:
        """``tts start``: the device accepts frames of this response from now on."""
        if not self.started:
            self.started = True
            await self.message(
                Tts(
                    state="start",
                    response_id=self.response_id,
                    turn_id=self.turn_id,
                    kind=kind,
                    cache_key=cache_key,
                )
            )

    async def sentence(self, text: str, cache_key: str | None = None) -> None:
        """``tts sentence_start``: the text of the audio that follows."""
        await self.message(
            Tts(
                state="sentence_start",
                response_id=self.response_id,
                turn_id=self.turn_id,
                text=text[:MAX_TEXT_CHARS],
                cache_key=cache_key,
            )
        )

    async def pcm(self, chunk: bytes) -> None:
        """Queue PCM of any length; whole 20 ms frames go out paced."""
        if self._resampler is not None:
            import numpy as np

            samples = np.frombuffer(chunk[: len(chunk) // 2 * 2], "<i2")
            chunk = self._resampler.resample_chunk(samples).tobytes()
        data = self._pending + chunk
        size = self.frame_bytes
        whole = len(data) - len(data) % size
        self._pending = data[whole:]
        for start in range(0, whole, size):
            await self._frame(data[start : start + size])

    async def flush(self) -> None:
        """Send the last partial frame, zero-padded."""
        if self._pending:
            frame, self._pending = self._pending + bytes(self.frame_bytes - len(self._pending)), b""
            await self._frame(frame)

    async def stop(
        self,
        reason: str = "done",
        latency: dict[str, float] | None = None,
        *,
        cache_key: str | None = None,
    ) -> None:
        """``tts stop``: no more frames for this response (``cache_key`` confirms a cacheable reply)."""
        await self.message(
            Tts(
                state="stop",
                response_id=self.response_id,
                turn_id=self.turn_id,
                reason=reason,
                latency=latency,
                cache_key=cache_key,
            )
        )

    async def _frame(self, pcm: bytes) -> None:
        # encoding a 20 ms frame takes well under a millisecond: cheaper inline than a thread hop
        packet = self._encoder.encode(pcm)
        now = time.monotonic()
        if self._clock is None or self._clock < now:
            self._clock = now
        wait = self._clock - self.lead - now
        # sleeping 0 still yields: responses starting together interleave their first frames
        await asyncio.sleep(max(wait, 0.0))
        if self.cancelled:
            return
        sent_at = time.monotonic()
        await self._send(packet if self.raw else pack_audio(self.response_id, self.frames, packet))
        if self.first_audio_at is None:
            self.first_audio_at = sent_at
        self.max_lead = max(self.max_lead, self._clock - sent_at)
        self.frames += 1
        self.bytes += len(packet)
        self._clock += self.frame_s

    def seconds_sent(self) -> float:
        """Audio sent so far, in seconds."""
        return self.frames * self.frame_s
