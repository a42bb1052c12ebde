"""Device ↔ cloud protocol v1, shared by the device's cloud link and the cloud gateway.

One WebSocket per toy: JSON text frames (:mod:`.messages`) and binary Opus frames
(:mod:`.frames`), with limits (:mod:`.limits`) and error codes (:mod:`.codes`).
The spec is docs/protocol.md.
"""

from __future__ import annotations

from . import codes, limits
from .frames import HEADER_SIZE, AudioPacket, check_uplink, pack_audio, unpack_audio
from .limits import PROTOCOL_VERSION
from .messages import (
    DOWNLINK,
    UPLINK,
    Abort,
    Alert,
    AudioParams,
    Error,
    Hello,
    Listen,
    Llm,
    Message,
    Ping,
    Playback,
    Pong,
    Say,
    ServerHello,
    Stt,
    Tts,
    encode,
    parse,
    to_dict,
)

__all__ = [
    "DOWNLINK",
    "HEADER_SIZE",
    "PROTOCOL_VERSION",
    "UPLINK",
    "Abort",
    "Alert",
    "AudioPacket",
    "AudioParams",
    "Error",
    "Hello",
    "Listen",
    "Llm",
    "Message",
    "Ping",
    "Playback",
    "Pong",
    "Say",
    "ServerHello",
    "Stt",
    "Tts",
    "check_uplink",
    "codes",
    "encode",
    "limits",
    "pack_audio",
    "parse",
    "to_dict",
    "unpack_audio",
]
