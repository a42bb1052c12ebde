"""The xiaozhi dialect: real xiaozhi clients (ESP32 firmware, py-xiaozhi, xiaozhi-sdk) on the gateway.

A connection whose hello says ``transport: websocket`` without a toyd ``device_id`` is a
xiaozhi client (78/xiaozhi-esp32 ``docs/websocket.md``). The session then translates at
its edges only, so safety, personas, memory and alerts apply exactly as for a toyd toy:

- up: ``listen`` start/stop/detect with mode ``manual`` (push-to-talk), ``auto`` or
  ``realtime`` (the gateway finds the end of speech itself, :mod:`.endpoint`), ``abort``;
  ``mcp`` (answers to the gateway's requests, :mod:`.mcp`); anything else is dropped,
  never an error that could close the connection;
- down: raw Opus (no toyd header) at the sample rate and frame length the client asked
  for; ``stt``; ``llm`` with an emotion at the start of a reply; ``tts`` start /
  sentence_start (with the text) / stop. toyd-only messages (errors, alerts, pings,
  cache keys) are not sent: a xiaozhi client does not know them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from toyd.errors import ProtocolError
from toyd.protocol import Abort, Listen, Llm, Stt, Tts, codes
from toyd.protocol.limits import MAX_TEXT_CHARS
from toyd.protocol.messages import Message

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
FRAME_MS = (20, 40, 60)
MODES = {"manual": "push_to_talk", "auto": "auto", "realtime": "auto"}
EMOTION = {"reply": ("happy", "🙂"), "redirect": ("thinking", "🤔"), "say": ("neutral", "😶")}


@dataclasses.dataclass(frozen=True)
class Mcp:
    """An ``mcp`` message: its JSON-RPC payload, as sent (checked by :class:`.mcp.McpClient`)."""

    payload: Any


def is_xiaozhi_hello(frame: str) -> bool:
    """A xiaozhi hello: ``transport: websocket`` and no toyd ``device_id``."""
    try:
        msg = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(msg, dict)
        and msg.get("type") == "hello"
        and msg.get("transport") == "websocket"
        and "device_id" not in msg
    )


@dataclasses.dataclass(frozen=True)
class Dialect:
    """One xiaozhi client's audio format and listening mode."""

    sample_rate: int = 16000
    frame_ms: int = 60
    mcp: bool = False

    @classmethod
    def from_hello(cls, frame: str) -> Dialect:
        """The client's hello → its audio format; ProtocolError naming the bad field."""
        msg = json.loads(frame)
        params = msg.get("audio_params", {})
        if not isinstance(params, dict):
            raise ProtocolError(codes.UNSUPPORTED_AUDIO, "audio_params must be an object")
        fmt, rate, ms = (
            params.get("format", "opus"),
            params.get("sample_rate", 16000),
            params.get("frame_duration", 60),
        )
        if fmt != "opus":
            raise ProtocolError(
                codes.UNSUPPORTED_AUDIO, f"audio format {str(fmt)[:20]!r}: only opus is supported"
            )
        if not isinstance(rate, int) or isinstance(rate, bool) or rate not in OPUS_RATES:
            raise ProtocolError(
                codes.UNSUPPORTED_AUDIO,
                f"sample_rate {str(rate)[:20]} is not an Opus rate {OPUS_RATES}",
            )
        if not isinstance(ms, int) or isinstance(ms, bool) or ms not in FRAME_MS:
            raise ProtocolError(
                codes.UNSUPPORTED_AUDIO, f"frame_duration {str(ms)[:20]} ms: use one of {FRAME_MS}"
            )
        if params.get("channels", 1) != 1:
            raise ProtocolError(codes.UNSUPPORTED_AUDIO, "channels must be 1")
        features = msg.get("features")
        return cls(
            sample_rate=rate,
            frame_ms=ms,
            mcp=isinstance(features, dict) and features.get("mcp") is True,
        )

    def server_hello(self, session_id: str) -> str:
        return json.dumps(
            {
                "type": "hello",
                "transport": "websocket",
                "session_id": session_id,
                "audio_params": {
                    "format": "opus",
                    "sample_rate": self.sample_rate,
                    "channels": 1,
                    "frame_duration": self.frame_ms,
                },
            }
        )

    @staticmethod
    def parse(frame: str) -> Message | Mcp | None:
        """A client message → the toyd message it means (None: nothing to do)."""
        try:
            msg = json.loads(frame)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(codes.BAD_JSON, f"not JSON: {exc}") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise ProtocolError(codes.BAD_MESSAGE, "a message must be a JSON object with a 'type'")
        kind = msg["type"]
        if kind == "listen":
            state, mode, text = msg.get("state"), msg.get("mode", "manual"), msg.get("text")
            if state not in ("start", "stop", "detect"):
                raise ProtocolError(codes.BAD_MESSAGE, f"listen: unknown state {str(state)[:20]!r}")
            if not isinstance(mode, str) or mode not in MODES:
                raise ProtocolError(codes.BAD_MESSAGE, f"listen: unknown mode {str(mode)[:20]!r}")
            return Listen(
                state=state,
                mode=MODES[mode],  # type: ignore[arg-type]
                text=text[:MAX_TEXT_CHARS] if isinstance(text, str) else None,
                reason=mode,
            )
        if kind == "abort":
            reason = msg.get("reason")
            return Abort(reason=reason[:60] if isinstance(reason, str) and reason else "abort")
        if kind == "mcp":
            return Mcp(msg.get("payload"))
        return None  # iot, hello again, ...: nothing for the gateway to do

    @staticmethod
    def translate(msg: Message, session_id: str) -> list[str]:
        """A toyd message on its way down → the xiaozhi messages the client understands."""

        def out(kind: str, **fields: Any) -> str:
            return json.dumps(
                {"session_id": session_id, "type": kind, **fields}, ensure_ascii=False
            )

        if isinstance(msg, Stt) and msg.final:
            return [out("stt", text=msg.text)]
        if isinstance(msg, Tts):
            if msg.state == "start":
                emotion, face = EMOTION.get(msg.kind, EMOTION["reply"])
                return [out("llm", text=face, emotion=emotion), out("tts", state="start")]
            if msg.state == "sentence_start":
                return [out("tts", state="sentence_start", text=msg.text or "")]
            return [out("tts", state="stop")]
        if isinstance(msg, Llm) and msg.emotion:
            return [out("llm", text="", emotion=msg.emotion)]
        return []
