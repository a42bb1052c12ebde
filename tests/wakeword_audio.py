"""Speech and noise for the wake word tests, made with espeak-ng and numpy (cached per session)."""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np

from toyd.testing import espeak_pcm

SILENCE = bytes(16000)  # 0.5 s
# Voices and rates that trigger hey_jarvis reliably with the built-in model (scores 0.93-0.998).
JARVIS_VOICES = (("en-us", 150), ("en", 130), ("en-us+m3", 160), ("en-us+f2", 160))


@functools.cache
def hey_jarvis(voice: str = "en-us", rate: int = 150, sentence: str = "") -> bytes:
    """'hey jarvis' (plus an optional sentence) between short silences."""
    text = "hey jarvis" + (f", {sentence}" if sentence else "")
    return SILENCE + espeak_pcm(text, voice=voice, rate=rate) + SILENCE


@functools.cache
def other_speech() -> bytes:
    """Ordinary talk with no wake word in it."""
    lines = (
        "the quick brown fox jumps over the lazy dog",
        "can you tell me a story about a dragon and a princess",
        "hello there, what time is it in the garden",
    )
    return b"".join(
        SILENCE + espeak_pcm(t, voice=v) for t, v in zip(lines, ("en-us", "en", "en-us+f2"))
    )


def white_noise(seconds: float = 5.0, level: int = 3000) -> bytes:
    """Loud-ish white noise (fixed seed)."""
    rng = np.random.default_rng(7)
    return (
        (rng.standard_normal(int(16000 * seconds)) * level)
        .clip(-32768, 32767)
        .astype("<i2")
        .tobytes()
    )


def write_wav(
    path: Path, pcm: bytes, *, rate: int = 16000, channels: int = 1, width: int = 2
) -> Path:
    """A WAV file with the given header (pcm must already match it)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path
