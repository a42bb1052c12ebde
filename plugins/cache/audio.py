"""Reply audio for the cache: Opus blobs, WAV files, local espeak-ng synthesis."""

from __future__ import annotations

import shutil
import io
import struct
import subprocess
import wave
from pathlib import Path

from toyd.audio import FRAME_BYTES, SAMPLE_RATE, frames
from toyd.audio.opus import OpusDecoder, OpusEncoder
from toyd.errors import ToydError


class ReplyAudioError(ToydError):
    """A reply clip could not be read, decoded or synthesised."""


def encode_opus(pcm: bytes) -> bytes:
    """16 kHz PCM → length-prefixed Opus packets (about a tenth of the PCM size)."""
    enc = OpusEncoder()
    return b"".join(struct.pack("<H", len(p)) + p for p in (enc.encode(f) for f in frames(pcm)))


def decode_opus(blob: bytes) -> bytes:
    """Length-prefixed Opus packets → 16 kHz PCM; a truncated blob is an error."""
    dec, out, pos = OpusDecoder(), [], 0
    while pos < len(blob):
        if pos + 2 > len(blob):
            raise ReplyAudioError("truncated Opus blob")
        (n,) = struct.unpack_from("<H", blob, pos)
        packet = blob[pos + 2 : pos + 2 + n]
        if len(packet) != n:
            raise ReplyAudioError("truncated Opus blob")
        out.append(dec.decode(packet))
        pos += 2 + n
    return b"".join(out)


def encode(pcm: bytes, codec: str) -> bytes:
    """Store ``pcm`` as ``codec`` (opus or pcm)."""
    return encode_opus(pcm) if codec == "opus" else pcm


def decode(blob: bytes, codec: str) -> bytes:
    """Stored audio back to 16 kHz PCM."""
    return decode_opus(blob) if codec == "opus" else blob


def read_wav(path: Path) -> bytes:
    """A WAV file of any PCM shape as 16 kHz mono int16 (the core converter)."""
    from toyd.audio.wav import read_wav as core_read_wav
    from toyd.errors import AudioFileError

    try:
        return core_read_wav(path)
    except AudioFileError as exc:
        raise ReplyAudioError(f"cannot read reply clip: {exc}") from None


def espeak(text: str, voice: str, rate: int = 150) -> bytes:
    """Speak ``text`` with local espeak-ng: the fallback when no clip and no cloud audio exist."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise ReplyAudioError("espeak-ng is not installed (apt-get install espeak-ng)")
    try:
        out = subprocess.run([binary, "-v", voice, "-s", str(rate), "--stdout", text], check=True,
                             capture_output=True, timeout=30).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise ReplyAudioError(f"espeak-ng failed for {text!r}: {exc}") from None
    with wave.open(io.BytesIO(out), "rb") as w:
        rate_in, data = w.getframerate(), w.readframes(w.getnframes())
    import numpy as np
    import soxr

    samples = soxr.resample(np.frombuffer(data, dtype="<i2"), rate_in, SAMPLE_RATE).astype("<i2")
    pcm = samples.tobytes()
    return pcm + bytes(-len(pcm) % FRAME_BYTES)
