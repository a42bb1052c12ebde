"""How the cache stores reply audio: length-prefixed Opus packets, or raw PCM."""

from __future__ import annotations

import struct

from toyd.audio import frames
from toyd.audio.opus import OpusDecoder, OpusEncoder
from toyd.errors import ToydError


class ReplyAudioError(ToydError):
    """Stored reply audio could not be decoded."""


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
