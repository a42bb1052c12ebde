"""Protocol v1 control messages: one frozen dataclass per JSON ``type``, both directions.

Text frames carry one JSON object with a ``type``. :func:`parse` turns a frame into a
message of the right class or raises :class:`~toyd.errors.ProtocolError` with an error
code; :func:`encode` is the inverse. Unknown fields are ignored (forward compatible);
known fields are strictly typed. The full spec is docs/protocol.md.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ..errors import ConfigError, ProtocolError
from ..schema import Where, build
from . import codes
from .limits import MAX_TEXT_CHARS, MAX_TEXT_FRAME
from .limits import PROTOCOL_VERSION as VERSION

Mode = Literal["push_to_talk", "wake_word", "auto"]


@dataclasses.dataclass(frozen=True)
class AudioParams:
    """Audio format of one direction (xiaozhi's ``audio_params``)."""

    format: Literal["opus"] = "opus"
    sample_rate: int = 16000
    channels: int = 1
    frame_duration: int = 20  # ms per packet


@dataclasses.dataclass(frozen=True, kw_only=True)
class Message:
    """Base of every control message; ``type`` names it on the wire."""

    type: ClassVar[str] = ""


# --- device → cloud ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Hello(Message):
    """Device greeting, first message after connecting."""

    type: ClassVar[str] = "hello"
    version: int = VERSION
    device_id: str = ""
    firmware: str = ""
    transport: str = "websocket"
    audio_params: AudioParams = dataclasses.field(default_factory=AudioParams)
    features: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    persona: str | None = None
    language: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Listen(Message):
    """Start or stop streaming the child's speech (``detect``: a wake word fired).

    Also sent down: ``listen stop`` from the cloud ends the turn's uplink (the utterance
    was cut at ``max_listen_seconds``, ``reason: max_length``); the toy stops listening.
    """

    type: ClassVar[str] = "listen"
    state: Literal["start", "stop", "detect"]
    mode: Mode = "auto"
    turn_id: str = ""
    text: str | None = None  # detect: the wake word
    persona: str | None = None
    language: str | None = None
    reason: str | None = None  # cloud → toy stop: why the cloud ended listening (max_length)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Abort(Message):
    """Stop the current turn/response at once (barge-in, cancel, reply timeout)."""

    type: ClassVar[str] = "abort"
    reason: str = "abort"
    turn_id: str = ""
    response_id: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Playback(Message):
    """The device finished playing a response."""

    type: ClassVar[str] = "playback"
    state: Literal["done"] = "done"
    response_id: int = 0
    interrupted: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Say(Message):
    """A parent's text the toy should speak."""

    type: ClassVar[str] = "say"
    text: str
    request_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ping(Message):
    """Application keepalive (WebSocket pings are used too); answered with ``pong``."""

    type: ClassVar[str] = "ping"
    id: int | None = None


# --- cloud → device ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerHello(Message):
    """Server greeting: session id, config version, downlink audio params, limits."""

    type: ClassVar[str] = "hello"
    version: int = VERSION
    session_id: str
    transport: str = "websocket"
    config_version: int = 0
    audio_params: AudioParams = dataclasses.field(default_factory=AudioParams)
    features: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    limits: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stt(Message):
    """What the child said (partial or final)."""

    type: ClassVar[str] = "stt"
    text: str
    final: bool = True
    turn_id: str = ""
    language: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Llm(Message):
    """Streamed reply text: ``text`` is the new delta; ``final`` marks the end."""

    type: ClassVar[str] = "llm"
    text: str = ""
    final: bool = False
    turn_id: str = ""
    response_id: int = 0
    emotion: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tts(Message):
    """Speech of one response: start, each sentence, stop (with latency on stop)."""

    type: ClassVar[str] = "tts"
    state: Literal["start", "sentence_start", "stop"]
    response_id: int
    turn_id: str = ""
    kind: Literal["reply", "say", "redirect"] = "reply"
    text: str | None = None
    cache_key: str | None = None
    reason: str | None = None  # stop: done | aborted | error
    latency: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Alert(Message):
    """Something a parent must see (safety)."""

    type: ClassVar[str] = "alert"
    category: str
    severity: str = "medium"
    message: str = ""
    action: str = ""
    turn_id: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Error(Message):
    """A request or frame was refused; ``code`` is one of :mod:`toyd.protocol.codes`."""

    type: ClassVar[str] = "error"
    code: str
    message: str = ""
    ref: str | None = None  # the message type the error is about


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pong(Message):
    """Answer to ``ping``."""

    type: ClassVar[str] = "pong"
    id: int | None = None


UPLINK: dict[str, type[Message]] = {m.type: m for m in (Hello, Listen, Abort, Playback, Say, Ping)}
DOWNLINK: dict[str, type[Message]] = {
    m.type: m for m in (ServerHello, Listen, Stt, Llm, Tts, Alert, Error, Pong, Ping)
}
_TEXT_FIELDS = ("text", "message")


def parse(frame: str | bytes, direction: Literal["up", "down"]) -> Message:
    """Decode one text frame sent ``up`` (device → cloud) or ``down``; raises ProtocolError."""
    if len(frame) > MAX_TEXT_FRAME:
        raise ProtocolError(
            codes.TOO_LARGE, f"text frame of {len(frame)} bytes exceeds {MAX_TEXT_FRAME}"
        )
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(codes.BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(codes.BAD_JSON, "a message must be a JSON object")
    kind = data.get("type")
    table = UPLINK if direction == "up" else DOWNLINK
    if not isinstance(kind, str) or kind not in table:
        known = ", ".join(sorted(table))
        raise ProtocolError(
            codes.UNKNOWN_TYPE, f"unknown message type {str(kind)[:40]!r}; known: {known}"
        )
    cls = table[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in data.items() if k in names}
    try:
        msg = build(cls, fields, where=Where(f"{kind} message"))
    except ConfigError as exc:
        raise ProtocolError(codes.BAD_MESSAGE, exc.message) from None
    for name in _TEXT_FIELDS:
        value = getattr(msg, name, None)
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise ProtocolError(
                codes.TOO_LARGE, f"{kind}.{name} exceeds {MAX_TEXT_CHARS} characters"
            )
    return msg


def to_dict(msg: Message) -> dict[str, Any]:
    """The JSON object of a message (None fields left out)."""
    out: dict[str, Any] = {"type": msg.type}
    for field in dataclasses.fields(msg):
        value = getattr(msg, field.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[field.name] = value
    return out


def encode(msg: Message) -> str:
    """One text frame for ``msg``."""
    return json.dumps(to_dict(msg), ensure_ascii=False, separators=(",", ":"))
