"""Audio primitives shared by both roles: frame format, PCM helpers, the Opus codec."""

from .pcm import FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, frames, rms

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "SAMPLE_WIDTH",
    "frames",
    "rms",
]
