"""The internal audio format: 16 kHz mono signed 16-bit little-endian, 20 ms frames."""

from __future__ import annotations

import array
import math
from collections.abc import Iterator

SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 320
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH  # 640


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES, *, pad: bool = True) -> Iterator[bytes]:
    """Cut PCM into whole frames; the last one is zero-padded (or dropped if ``pad`` is False)."""
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start : start + frame_bytes]
        if len(chunk) < frame_bytes:
            if not pad:
                return
            chunk += bytes(frame_bytes - len(chunk))
        yield chunk


def rms(pcm: bytes) -> float:
    """Root-mean-square level of int16 PCM, 0..32768."""
    samples = array.array("h", pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def duration(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> float:
    """Seconds of mono int16 audio in ``pcm``."""
    return len(pcm) / (SAMPLE_WIDTH * sample_rate)
