"""Read a WAV file as 16 kHz mono int16 PCM, with one-line errors a maker can act on."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

from toyd.errors import ToydError

RATE = 16000
CONVERT_HINT = "convert it with `sox IN.wav -r 16000 -c 1 -b 16 OUT.wav`, or pass --resample"


class WavError(ToydError):
    """The audio file is missing, not a WAV, or not in a usable format."""


def read_wav(path: str | Path, *, convert: bool = False) -> bytes:
    """16 kHz mono 16-bit PCM from ``path``; other formats are an error unless ``convert``."""
    file = Path(path)
    try:
        with wave.open(str(file), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise WavError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise WavError(f"{file}: is a folder, not a WAV file") from None
    except OSError as exc:
        raise WavError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except (wave.Error, EOFError, RuntimeError, struct.error, ValueError) as exc:
        # the wave module signals damaged headers with several exception types
        raise WavError(f"{file}: not a readable PCM WAV file ({exc or 'damaged or truncated header'})") from None
    if not frames:
        raise WavError(f"{file}: contains no audio")
    if len(frames) % (channels * width):
        raise WavError(f"{file}: truncated audio data")
    problems = []
    if width != 2:
        problems.append(f"{8 * width}-bit samples")
    if channels != 1:
        problems.append(f"{channels} channels")
    if rate != RATE:
        problems.append(f"{rate} Hz")
    if not problems:
        return frames
    if not convert:
        raise WavError(f"{file}: {', '.join(problems)}; the wake word needs 16000 Hz mono 16-bit; {CONVERT_HINT}")
    return _convert(frames, rate, channels, width)


def _convert(frames: bytes, rate: int, channels: int, width: int) -> bytes:
    """Any PCM WAV → 16 kHz mono int16 (numpy mixdown, soxr resampling)."""
    import numpy as np

    if width == 1:
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768
    elif width == 3:
        raw = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        samples = np.where(value >= 1 << 23, value - (1 << 24), value).astype(np.float32) / (1 << 23)
    else:
        samples = np.frombuffer(frames, dtype="<i4").astype(np.float32) / (1 << 31)
    mono = samples.reshape(-1, channels).mean(axis=1)
    if rate != RATE:
        import soxr

        mono = soxr.resample(mono, rate, RATE)
    return (np.clip(mono, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
