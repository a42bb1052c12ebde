"""Read any PCM WAV (or a raw 16 kHz stream) as toyd's internal format; write 16 kHz WAVs.

Makers and tests feed recordings of every shape (44.1 kHz stereo from a phone, 8-bit
telephone clips, 24-bit studio takes); everything is converted once, here, to 16 kHz
mono int16. A file that is not a readable PCM WAV gives one clear :class:`AudioFileError`
naming the file.
"""

from __future__ import annotations

import io
import os
import struct
import wave
from pathlib import Path

import numpy as np

from ..errors import AudioFileError
from .pcm import SAMPLE_RATE, SAMPLE_WIDTH

RAW_SUFFIXES = (".raw", ".pcm", ".s16", ".s16le")


def read_wav(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    *,
    convert: bool = True,
    needed_by: str = "",
) -> bytes:
    """The whole WAV at ``path`` as mono int16 PCM at ``sample_rate`` (blocking).

    With ``convert=False`` a file of another shape is an error that says what
    ``needed_by`` (a tool that scores exact audio, like the wake word) expects; such a
    caller also refuses an empty or truncated file instead of reading what is there.
    """
    return _decode(str(path), str(path), sample_rate, None if convert else (needed_by or "toyd"))


def read_wav_bytes(data: bytes, *, source: str = "<wav>", sample_rate: int = SAMPLE_RATE) -> bytes:
    """A WAV held in memory (a program's output, a download) as mono int16 PCM at ``sample_rate``."""
    return _decode(io.BytesIO(data), source, sample_rate)


def _check_shape(
    name: str, data: bytes, rate: int, width: int, channels: int, sample_rate: int, needed_by: str
) -> None:
    if not data:
        raise AudioFileError(name, "contains no audio")
    if len(data) % (channels * width):
        raise AudioFileError(name, "truncated audio data")
    problems = [f"{8 * width}-bit samples"] if width != SAMPLE_WIDTH else []
    problems += [f"{channels} channels"] if channels != 1 else []
    problems += [f"{rate} Hz"] if rate != sample_rate else []
    if problems:
        raise AudioFileError(
            name,
            f"{', '.join(problems)}; {needed_by} needs {sample_rate} Hz mono 16-bit; "
            f"convert it with `sox IN.wav -r {sample_rate} -c 1 -b 16 OUT.wav`, "
            "or pass --resample",
        )


def _decode(
    what: str | io.BytesIO, name: str, sample_rate: int, strict_for: str | None = None
) -> bytes:
    try:
        with wave.open(what, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise AudioFileError(name, "no such file") from None
    except IsADirectoryError:
        raise AudioFileError(name, "is a folder, not a WAV file") from None
    except PermissionError:
        raise AudioFileError(name, "permission denied") from None
    except (wave.Error, EOFError, RuntimeError, ValueError, struct.error) as exc:
        # the wave module signals broken chunks with several exception types
        raise AudioFileError(
            name,
            f"not a readable PCM WAV file ({str(exc) or 'broken or truncated chunks'}); "
            "convert it with: sox IN -r 16000 -c 1 -b 16 OUT.wav",
        ) from None
    except OSError as exc:
        raise AudioFileError(name, exc.strerror or str(exc)) from None
    if rate <= 0 or channels <= 0:
        raise AudioFileError(name, f"bad WAV header (rate {rate}, {channels} channels)")
    if strict_for is not None:
        _check_shape(name, data, rate, width, channels, sample_rate, strict_for)
    return convert(
        data, rate=rate, width=width, channels=channels, sample_rate=sample_rate, source=name
    )


def convert(
    data: bytes,
    *,
    rate: int,
    width: int,
    channels: int,
    sample_rate: int = SAMPLE_RATE,
    source: str = "<pcm>",
) -> bytes:
    """Integer PCM of any width/channels/rate → mono int16 at ``sample_rate``."""
    frame = width * channels
    data = data[: len(data) - len(data) % frame] if frame else b""
    if width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(data, np.uint8).astype(np.int16) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(data, "<i2")
    elif width == 3:
        raw = np.frombuffer(data, np.uint8).reshape(-1, 3)
        as32 = (
            raw[:, 0].astype(np.int32)
            | (raw[:, 1].astype(np.int32) << 8)
            | (raw[:, 2].astype(np.int32) << 16)
        )
        samples = ((as32 << 8) >> 16).astype(
            np.int16
        )  # sign-extend the 24-bit value, keep the top 16 bits
    elif width == 4:
        samples = (np.frombuffer(data, "<i4") >> 16).astype(np.int16)
    else:
        raise AudioFileError(source, f"unsupported sample width of {width} bytes")
    if channels > 1:
        samples = samples.reshape(-1, channels).astype(np.int32).mean(axis=1).astype(np.int16)
    if rate != sample_rate and samples.size:
        import soxr

        samples = soxr.resample(samples, rate, sample_rate)
    return np.ascontiguousarray(samples, dtype="<i2").tobytes()


def is_raw(path: str | os.PathLike[str]) -> bool:
    """True for raw PCM streams: a FIFO, a character device or a .raw/.pcm name."""
    p = Path(path)
    if p.suffix.lower() in RAW_SUFFIXES:
        return True
    try:
        mode = p.stat().st_mode
    except OSError:
        return False
    import stat

    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


class WavWriter:
    """A 16 kHz mono int16 WAV that is valid after every write (header patched as it grows)."""

    def __init__(self, path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(SAMPLE_WIDTH)
        self._wav.setframerate(sample_rate)
        self._wav.writeframes(b"")
        self._file.flush()

    def write(self, pcm: bytes) -> None:
        """Append PCM and flush, so readers see it at once (blocking)."""
        self._wav.writeframes(pcm)
        self._file.flush()

    def close(self) -> None:
        """Finish the header and close the file."""
        try:
            self._wav.close()
        finally:
            self._file.close()


def write_wav(path: str | os.PathLike[str], pcm: bytes, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono int16 PCM as a WAV file in one go; returns the path."""
    path = Path(path)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return path
