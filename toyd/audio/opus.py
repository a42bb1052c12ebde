"""Opus codec for 20 ms mono frames (opuslib), shared by the device and the cloud.

VOIP mode; the default bitrate is 24 kbps because 16 kbps measurably hurts Whisper
transcripts. The decoder conceals a lost packet (``decode(None)``).
"""

from __future__ import annotations

from .pcm import FRAME_MS, SAMPLE_RATE, SAMPLE_WIDTH

DEFAULT_BITRATE = 24000


class OpusError(ValueError):
    """An Opus packet could not be decoded, or a frame has the wrong size."""


class OpusEncoder:
    """PCM frames in, one Opus packet per frame out."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        bitrate: int = DEFAULT_BITRATE,
        frame_ms: int = FRAME_MS,
        complexity: int = 5,
    ) -> None:
        import opuslib

        self.frame_samples = sample_rate * frame_ms // 1000
        self.frame_bytes = self.frame_samples * SAMPLE_WIDTH
        self._enc = opuslib.Encoder(sample_rate, 1, opuslib.APPLICATION_VOIP)
        self._enc.bitrate = bitrate
        self._enc.complexity = complexity

    def encode(self, pcm: bytes) -> bytes:
        """Encode exactly one frame of PCM."""
        if len(pcm) != self.frame_bytes:
            raise OpusError(f"expected a {self.frame_bytes}-byte frame, got {len(pcm)} bytes")
        return self._enc.encode(pcm, self.frame_samples)


class OpusDecoder:
    """Opus packets in, PCM frames out; ``None`` conceals a lost packet."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, frame_ms: int = FRAME_MS) -> None:
        import opuslib

        self._opuslib = opuslib
        self.frame_samples = sample_rate * frame_ms // 1000
        # room for the largest packet Opus allows (120 ms)
        self._max_samples = sample_rate * 120 // 1000
        self._dec = opuslib.Decoder(sample_rate, 1)

    def decode(self, packet: bytes | None) -> bytes:
        """Decode one packet; ``None`` or ``b""`` gives one frame of concealment."""
        try:
            if not packet:
                return self._dec.decode(b"", self.frame_samples)
            return self._dec.decode(packet, self._max_samples)
        except self._opuslib.OpusError as exc:
            raise OpusError(f"bad Opus packet ({len(packet or b'')} bytes): {exc}") from None
