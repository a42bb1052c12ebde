"""Typed events: the only way plugins talk to each other.

Events are small frozen dataclasses. ``droppable`` marks telemetry (audio frames,
scores, levels): when a subscriber falls behind, the oldest droppable events are
dropped first. Control events (button presses, state changes, commands, alerts)
are never dropped. See :mod:`toyd.bus` for the full policy.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

from .state import State, Trigger


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event; ``at`` is a monotonic timestamp in seconds."""

    droppable: ClassVar[bool] = False
    at: float = dataclasses.field(default_factory=time.monotonic, compare=False)


# --- input: button, wake word, speech -------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class ButtonPressed(Event):
    """The push-to-talk button went down."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ButtonReleased(Event):
    """The push-to-talk button came up after ``held`` seconds."""

    held: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ButtonGesture(Event):
    """A configured gesture: ``hold`` or ``double_press``, with its configured action."""

    gesture: str
    action: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class WakeWordDetected(Event):
    """A wake word model fired."""

    model: str
    score: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class AudioFrame(Event):
    """20 ms of 16 kHz mono int16 PCM from the microphone."""

    droppable: ClassVar[bool] = True
    pcm: bytes
    seq: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpeechStarted(Event):
    """Voice activity began while listening."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpeechEnded(Event):
    """The child stopped talking: ``reason`` is silence, max_length, released or too_short."""

    reason: str = "silence"


# --- conversation ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Transcript(Event):
    """What the child said; ``final`` False for partial results."""

    text: str
    final: bool = True
    source: str = "cloud"
    turn_id: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResponseText(Event):
    """Reply text as it streams; ``delta`` is the new part, ``final`` marks the end."""

    delta: str
    final: bool = False
    turn_id: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplyAudio(Event):
    """One 20 ms frame of reply audio (16 kHz mono int16) for the speaker, in order.

    Every frame belongs to a response: after a barge-in the speaker drops frames of
    the interrupted response, so no stale frame is ever played.
    """

    response_id: str
    pcm: bytes


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplyAudioEnd(Event):
    """No more audio will come for ``response_id``; the speaker finishes what it has."""

    response_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplyTimeout(Event):
    """The cloud did not start a reply in time; a local backend (offline mode) may answer."""

    turn_id: str = ""
    reason: str = "reply_timeout"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlaybackStarted(Event):
    """The speaker began playing a response."""

    response_id: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlaybackFinished(Event):
    """The speaker finished (or was stopped: ``interrupted``)."""

    response_id: str = ""
    interrupted: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnFailed(Event):
    """A turn ended without an answer (no reply in time, backend error)."""

    reason: str


# --- links, control, config ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class CloudOnline(Event):
    """The link to the cloud backend is up."""

    backend: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CloudOffline(Event):
    """The link to the cloud backend is down or too slow."""

    backend: str = ""
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ActivationCode(Event):
    """The toy is not activated yet: ``code`` is what a parent enters to claim it.

    Published again whenever the code is repeated; an empty code means activation ended.
    The LED blinks the digits, the activation plugin speaks them.
    """

    code: str
    expires_in: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class CloudTokenStored(Event):
    """Activation stored a new cloud token: the cloud link reconnects with it now."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceRevoked(Event):
    """Cloud role: this toy's token was revoked; its session must end."""

    device_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpdateRequested(Event):
    """Install the signed update bundle at ``url`` (a parent's ``cmd/update`` or the cloud's rollout)."""

    url: str
    sha256: str
    version: str = ""
    request_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpdateProgress(Event):
    """How an update goes: ``stage`` download|verify|install|reboot|done|failed, ``percent`` of it."""

    stage: str
    percent: int = 0
    version: str = ""
    error: str = ""
    request_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class StateRequest(Event):
    """Ask the state machine to fire ``trigger`` (used by commands: sleep, mute, ...)."""

    trigger: Trigger
    cause: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StateChanged(Event):
    """The conversation state (or the offline overlay) changed."""

    old: State
    new: State
    offline: bool = False
    cause: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Command(Event):
    """A remote-control command (from MQTT or another transport)."""

    name: str
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    request_id: str | None = None
    source: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CommandResult(Event):
    """The answer to a :class:`Command`."""

    name: str
    ok: bool
    error: str | None = None
    request_id: str | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfigApplied(Event):
    """A new config (version ``version``) is in force."""

    version: int = 0
    source: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfigRejected(Event):
    """A config push or reload was invalid; the last good config stays."""

    source: str
    error: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class SafetyAlert(Event):
    """Something a parent must see: category, severity and a redacted excerpt.

    ``device_id`` names the toy on the cloud bus (one cloud serves many); on a toy it may be
    empty: the recorder fills in the toy's own id.
    """

    category: str
    severity: str
    excerpt: str = ""
    action: str = ""
    device_id: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PluginFailed(Event):
    """A plugin's service raised; it is being restarted with backoff."""

    plugin: str
    service: str
    error: str
    restart_in: float | None = None


# --- parent controls (published by remote-control transports, applied by plugins) ---------


@dataclasses.dataclass(frozen=True, kw_only=True)
class VolumeSet(Event):
    """Set the speaker volume, 0-100."""

    level: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class LedLook(Event):
    """Show a colour over the state's look for ``seconds`` (a cloud's emotion, an AI tool call)."""

    rgb: tuple[int, int, int]
    seconds: float = 3.0
    source: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SayRequested(Event):
    """A parent asked the toy to speak ``text`` (played when the toy is idle)."""

    text: str
    request_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PersonaSet(Event):
    """Switch the toy's persona (sent to the cloud with every turn)."""

    persona: str


# --- offline mode: local speech recognition, response cache, local turns ----------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class OfflinePhrases(Event):
    """The phrases the response cache can answer: the vocabulary of grammar-mode recognition."""

    phrases: tuple[str, ...]
    language: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalTurn(Event):
    """Answer the last utterance locally (link down or reply deadline passed)."""

    turn_id: str
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CacheLookup(Event):
    """Ask the response cache for the reply to ``text``; answered by :class:`CacheResult`."""

    request_id: str
    text: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class CacheResult(Event):
    """The cache's answer: ``hit`` with the matched phrase, reply text and 16 kHz PCM audio."""

    request_id: str
    hit: bool
    phrase: str = ""
    reply: str = ""
    pcm: bytes = b""
    score: float = 0.0
    error: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CacheStore(Event):
    """A reply the cloud marked cacheable (protocol ``cache_key``): keep it for offline turns.

    ``pcm`` is the whole reply as 16 kHz mono int16; ``ttl`` seconds (0 = no expiry).
    """

    phrase: str
    reply: str
    pcm: bytes = b""
    cache_key: str = ""
    language: str = ""
    persona: str = ""
    ttl: float = 0.0
    source: str = "cloud"


@dataclasses.dataclass(frozen=True, kw_only=True)
class OfflineAnswered(Event):
    """A turn was answered on the device: ``source`` is cache or fallback."""

    turn_id: str
    transcript: str
    source: str
    reply: str
    response_id: str
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalTranscript(Event):
    """On-device recognition of the last utterance, for :class:`LocalTurn` ``turn_id``.

    ``phrase`` is the cached phrase it matched in grammar mode ("" = out of grammar or
    free-form); ``error`` says why there is no result (model missing, ...).
    """

    turn_id: str
    text: str
    phrase: str = ""
    grammar: bool = False
    error: str = ""
# --- cloud link ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnLatency(Event):
    """Where the time of one cloud turn went, in milliseconds (docs/protocol.md "Latency").

    Published by the cloud gateway on the cloud bus when a response ends, and by the
    device's cloud link when the ``tts stop`` that carries it arrives. ``overhead_ms`` is
    ``end_of_speech_to_first_audio_ms`` minus the time spent inside the AI hooks on the
    path to the first audio frame.
    """

    device_id: str = ""
    turn_id: str = ""
    response_id: int = 0
    stt_ms: float = 0.0
    check_ms: float = 0.0
    llm_first_token_ms: float = 0.0
    llm_first_sentence_ms: float = 0.0
    tts_first_audio_ms: float = 0.0
    end_of_speech_to_first_audio_ms: float = 0.0
    hooks_ms: float = 0.0
    overhead_ms: float = 0.0
    total_ms: float = 0.0


# --- audio ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class MicInput(Event):
    """Feed the file/pipe microphone from ``path`` (simulation, tests, demos); ignored by real cards."""

    path: str
    format: str = "auto"


# --- AI chain -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextChecked(Event):
    """The safety filter's verdict on one text of a turn (cloud bus: logs, transcripts, the demo).

    ``text`` is what was passed on (personal information already redacted);
    ``replacement`` is the line said instead (redirect/block); ``filtered`` is False when
    no safety plugin is installed (everything is allowed).
    """

    device_id: str = ""
    turn_id: str = ""
    speaker: str = "child"
    text: str = ""
    safe: bool = True
    action: str = "allow"
    category: str | None = None
    severity: str = "none"
    replacement: str | None = None
    filtered: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplySource(Event):
    """Which brain answered a turn (cloud bus: logs, the demo's output).

    ``kind`` is ``local`` (a model in this process), ``remote`` (an HTTP endpoint) or
    ``rules`` (the offline responder, not a language model); ``name`` says which one.
    """

    device_id: str = ""
    turn_id: str = ""
    kind: str = "rules"
    name: str = ""
