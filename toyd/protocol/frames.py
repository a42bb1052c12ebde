"""Binary frames of protocol v1.

Uplink (device → cloud): a binary frame is exactly one raw Opus packet (20 ms), as in
xiaozhi's binary protocol v1; it belongs to the turn opened by the last ``listen start``.

Downlink (cloud → device): every Opus packet carries a 12-byte big-endian header so the
device can tell which response it belongs to and drop frames of an aborted response::

    offset size field
    0      1    version      1
    1      1    kind         1 = Opus audio
    2      2    flags        0 (reserved)
    4      4    response_id  unsigned, increasing per session (see ``tts start``)
    8      4    seq          frame number within the response, from 0
    12     ...  payload      one Opus packet
"""

from __future__ import annotations

import dataclasses
import struct

from ..errors import ProtocolError
from . import codes
from .limits import MAX_AUDIO_FRAME

HEADER = struct.Struct("!BBHII")
HEADER_SIZE = HEADER.size  # 12
FRAME_VERSION = 1
KIND_OPUS = 1


@dataclasses.dataclass(frozen=True)
class AudioPacket:
    """One downlink Opus packet and the response it belongs to."""

    response_id: int
    seq: int
    payload: bytes


def pack_audio(response_id: int, seq: int, payload: bytes) -> bytes:
    """A downlink binary frame."""
    return (
        HEADER.pack(FRAME_VERSION, KIND_OPUS, 0, response_id & 0xFFFFFFFF, seq & 0xFFFFFFFF)
        + payload
    )


def unpack_audio(frame: bytes) -> AudioPacket:
    """Split a downlink binary frame; raises ProtocolError when it is malformed."""
    if len(frame) <= HEADER_SIZE:
        raise ProtocolError(
            codes.BAD_AUDIO, f"binary frame of {len(frame)} bytes is shorter than its header"
        )
    if len(frame) > HEADER_SIZE + MAX_AUDIO_FRAME:
        raise ProtocolError(
            codes.TOO_LARGE, f"binary frame of {len(frame)} bytes exceeds the limit"
        )
    version, kind, _flags, response_id, seq = HEADER.unpack_from(frame)
    if version != FRAME_VERSION or kind != KIND_OPUS:
        raise ProtocolError(
            codes.BAD_AUDIO, f"unknown binary frame version {version} / kind {kind}"
        )
    return AudioPacket(response_id, seq, bytes(frame[HEADER_SIZE:]))


def check_uplink(frame: bytes) -> bytes:
    """Validate an uplink binary frame (one Opus packet) by size; returns it."""
    if not frame:
        raise ProtocolError(codes.BAD_AUDIO, "empty binary frame")
    if len(frame) > MAX_AUDIO_FRAME:
        raise ProtocolError(
            codes.TOO_LARGE, f"binary frame of {len(frame)} bytes exceeds {MAX_AUDIO_FRAME}"
        )
    return frame
