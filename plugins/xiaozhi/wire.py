"""The xiaozhi WebSocket protocol as JSON: the toy's messages, and the server's, checked.

Written from 78/xiaozhi-esp32 ``docs/websocket.md`` and what xiaozhi-esp32-server sends.
Every field a toy acts on is type-checked here, so a malformed or hostile frame becomes
one ``XiaozhiProtocolError`` naming the message type and the field, never a crash.
"""

from __future__ import annotations

import json
from typing import Any

from toyd.errors import ToydError

OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
OPUS_FRAME_MS = frozenset({2.5, 5, 10, 20, 40, 60, 80, 100, 120})
TTS_STATES = frozenset({"start", "stop", "sentence_start", "sentence_end"})
MAX_TEXT = 4000  # characters of one stt/tts/llm text kept; longer is cut


class XiaozhiProtocolError(ToydError):
    """A frame from a xiaozhi server that breaks the protocol."""


def client_hello(frame_duration: int, *, mcp: bool = True) -> dict[str, Any]:
    """The toy's hello: Opus 16 kHz mono uplink in ``frame_duration`` ms frames."""
    return {
        "type": "hello",
        "version": 1,
        "features": {"mcp": mcp},
        "transport": "websocket",
        "audio_params": {
            "format": "opus",
            "sample_rate": 16000,
            "channels": 1,
            "frame_duration": frame_duration,
        },
    }


def _text(msg: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = msg.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise XiaozhiProtocolError(
            f"{msg.get('type')}: {key!r} must be text (got {type(value).__name__})"
        )
    return value[:MAX_TEXT]


def check_audio_params(params: Any, where: str) -> dict[str, Any]:
    """``audio_params`` of a hello: Opus, a rate Opus knows, a frame length Opus knows."""
    if not isinstance(params, dict):
        raise XiaozhiProtocolError(f"{where}: audio_params must be an object")
    fmt, rate = params.get("format", "opus"), params.get("sample_rate")
    duration, channels = params.get("frame_duration", 60), params.get("channels", 1)
    if fmt != "opus":  # a comparison, safe for any JSON value
        raise XiaozhiProtocolError(f"{where}: audio format {fmt!r} is not supported (opus only)")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate not in OPUS_RATES:
        raise XiaozhiProtocolError(
            f"{where}: sample_rate {rate!r} is not an Opus rate "
            f"({', '.join(map(str, sorted(OPUS_RATES)))})"
        )
    if (
        not isinstance(duration, (int, float))
        or isinstance(duration, bool)
        or duration not in OPUS_FRAME_MS
    ):
        raise XiaozhiProtocolError(
            f"{where}: frame_duration {duration!r} ms is not an Opus frame length"
        )
    if not isinstance(channels, int) or isinstance(channels, bool) or channels not in (1, 2):
        raise XiaozhiProtocolError(f"{where}: channels {channels!r} must be 1 or 2")
    return {"format": "opus", "sample_rate": rate, "channels": channels, "frame_duration": duration}


def parse_server(frame: str) -> dict[str, Any]:
    """One text frame from the server → a checked message (unknown types pass through)."""
    try:
        msg = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise XiaozhiProtocolError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise XiaozhiProtocolError(f"a message must be a JSON object (got {type(msg).__name__})")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise XiaozhiProtocolError("message without a 'type'")
    if kind == "hello":
        if msg.get("transport") != "websocket":
            raise XiaozhiProtocolError(
                f"hello: transport must be 'websocket' (got {msg.get('transport')!r})"
            )
        _text(msg, "session_id")
        if "audio_params" in msg:
            msg["audio_params"] = check_audio_params(msg["audio_params"], "hello")
    elif kind == "stt":
        msg["text"] = _text(msg, "text", required=True)
    elif kind == "llm":
        msg["text"], msg["emotion"] = _text(msg, "text"), _text(msg, "emotion")
    elif kind == "tts":
        if not isinstance(msg.get("state"), str) or msg["state"] not in TTS_STATES:
            raise XiaozhiProtocolError(f"tts: unknown state {str(msg.get('state'))[:40]!r}")
        msg["text"] = _text(msg, "text")
    elif kind == "alert":
        for key in ("status", "message", "emotion"):
            msg[key] = _text(msg, key)
    elif kind == "system":
        msg["command"] = _text(msg, "command")
    return msg


def dumps(msg: dict[str, Any]) -> str:
    """A message as a compact text frame."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
