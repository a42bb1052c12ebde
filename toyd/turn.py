"""What the cloud AI chain passes between its stages for one conversational turn."""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

Speaker = Literal["child", "toy"]
Action = Literal["allow", "redirect", "block"]


@dataclasses.dataclass(frozen=True)
class Turn:
    """One question-and-answer exchange with one toy."""

    device_id: str
    session_id: str
    turn_id: str
    language: str | None = None  # BCP-47-ish ("en", "ko"), None = detect
    persona: str | None = None  # persona id from the toy's config


@dataclasses.dataclass(frozen=True)
class Transcription:
    """Speech-to-text result; ``confidence`` 0..1, ``no_speech`` 0..1 (probability of silence)."""

    text: str
    language: str | None = None
    confidence: float = 1.0
    no_speech: float = 0.0


# The safety categories every filter and moderation plugin speaks of (makers may add more).
SAFETY_CATEGORIES = (
    "sexual",
    "violence",
    "self_harm",
    "abuse",
    "dangerous_activities",
    "drugs_alcohol_gambling",
    "hate_bullying",
    "profanity",
    "personal_info",
    "grooming",
)


@dataclasses.dataclass(frozen=True)
class SafetyVerdict:
    """The safety filter's decision on one text.

    ``text`` is what may be passed on (personal information redacted); for
    ``redirect``/``block``, ``replacement`` is the gentle in-character line to say
    instead. ``alert`` means a parent must be told (a ``SafetyAlert`` event).
    """

    safe: bool
    action: Action = "allow"
    category: str | None = None
    severity: Literal["none", "low", "medium", "high"] = "none"
    text: str = ""
    replacement: str | None = None
    alert: bool = False


class SpeechStream(Protocol):
    """An utterance transcribed while it is still being spoken (``toyd_transcribe_stream``)."""

    def feed(self, pcm: bytes) -> None:
        """More mono int16 audio; cheap, never blocks."""

    async def result(self) -> Transcription:
        """The final transcript, at the end of speech."""

    async def aclose(self) -> None:
        """Drop the utterance (abort, barge-in)."""
