"""End-of-speech detection on 20 ms frames with webrtcvad: pure logic, no bus, no clock.

Time is counted in audio (frame sequence numbers), not wall-clock time, so the same
audio gives the same decision whether it arrives in real time or as fast as possible,
and frames the bus dropped still count as time passing.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import numpy as np

from toyd.audio.pcm import FRAME_BYTES, FRAME_MS, SAMPLE_RATE

from .settings import VadSettings

FRAME_S = FRAME_MS / 1000


def new_vad(aggressiveness: int) -> Any:
    """A webrtcvad classifier (imported here so the plugin loads without it until used)."""
    import webrtcvad

    return webrtcvad.Vad(aggressiveness)


class Mode(str, enum.Enum):
    """How the turn ends: by silence (wake word, follow-up) or by releasing the button."""

    AUTO = "auto"
    PUSH_TO_TALK = "push_to_talk"


@dataclasses.dataclass(frozen=True)
class Decision:
    """What one frame (or the release) decided: speech started, or the utterance ended."""

    kind: str  # "started" | "ended"
    reason: str = ""
    at: float = 0.0  # seconds of audio since listening began


class EndpointDetector:
    """One listening session: feed frames, get SpeechStarted / SpeechEnded decisions."""

    def __init__(self, settings: VadSettings, mode: Mode = Mode.AUTO, vad: Any = None) -> None:
        self.settings = settings
        self.mode = mode
        # pass a long-lived webrtcvad.Vad that has been hearing the room: a fresh one calls
        # the first ~100 ms of any noise 'speech' while its noise model settles
        self._vad = vad if vad is not None else new_vad(settings.aggressiveness)
        self._first_seq: int | None = None
        self._last_seq = 0
        self.elapsed = 0.0  # audio seconds since the first frame
        self.voiced_run = 0.0  # current run of voiced audio
        self.silence_run = 0.0  # unvoiced audio since speech was last heard
        self.speech = 0.0  # voiced audio since speech started
        self.started = False
        self.ended = False
        self._speech_level = 0.0
        self._gate = 0.0
        self._gate_ratio = 10 ** (-settings.energy_gate_db / 20) if settings.energy_gate_db else 0.0

    def feed(self, pcm: bytes, seq: int | None = None) -> list[Decision]:
        """Classify one 20 ms frame; frames missing from ``seq`` count as silence."""
        if self.ended or len(pcm) != FRAME_BYTES:
            return []
        step = FRAME_S
        if seq is not None:
            if self._first_seq is None:
                self._first_seq = self._last_seq = seq - 1
            gap = seq - self._last_seq
            if gap <= 0:  # duplicate or out of order: ignore
                return []
            self._last_seq = seq
            step = gap * FRAME_S
        self.elapsed += step
        voiced = self._vad.is_speech(pcm, SAMPLE_RATE) and self._loud_enough(pcm)
        out: list[Decision] = []
        if voiced:
            self.voiced_run += FRAME_S
            if self.voiced_run >= self.settings.speech_start - 1e-9:
                self.silence_run = 0.0  # a lone click inside the pause does not restart the clock
            else:
                self.silence_run += step
            if self.started:
                self.speech += step
            elif self.voiced_run >= self.settings.speech_start - 1e-9:
                self.started = True
                self.speech = self.voiced_run
                out.append(Decision("started", at=self.elapsed - self.voiced_run))
        else:
            self.voiced_run = 0.0
            self.silence_run += step
        out.extend(self._check_end())
        return out

    def _loud_enough(self, pcm: bytes) -> bool:
        """Energy gate: webrtcvad keeps saying 'speech' for up to ~140 ms after the voice stops
        (its hangover); a frame far below the utterance's own level is silence, whatever it says."""
        level = float(np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(np.float32) ** 2)))
        if level < self._gate:
            return False
        # track the talker's level (slow average of voiced frames) so the gate follows quiet and loud voices
        self._speech_level = (
            level if self._speech_level == 0 else 0.95 * self._speech_level + 0.05 * level
        )
        self._gate = self._speech_level * self._gate_ratio
        return True

    def _check_end(self) -> list[Decision]:
        s = self.settings
        if self.elapsed >= s.max_length - 1e-9:
            return self._end("max_length" if self.speech >= s.min_speech else "too_short")
        if self.mode is Mode.PUSH_TO_TALK:
            return []
        if self.started and self.silence_run >= s.silence_timeout - 1e-9:
            return self._end("silence" if self.speech >= s.min_speech else "too_short")
        if not self.started and self.elapsed >= s.no_speech_timeout - 1e-9:
            return self._end("too_short")
        return []

    def release(self) -> list[Decision]:
        """The push-to-talk button came up: the turn ends now."""
        if self.ended:
            return []
        return self._end("released" if self.speech >= self.settings.min_speech else "too_short")

    def _end(self, reason: str) -> list[Decision]:
        self.ended = True
        return [Decision("ended", reason=reason, at=self.elapsed)]
