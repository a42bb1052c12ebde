"""The ``vad`` config section: when does the child stop talking."""

from __future__ import annotations

import dataclasses

from toyd import setting


@dataclasses.dataclass(frozen=True)
class VadSettings:
    """Settings of the ``vad`` section (all times in seconds of audio)."""

    aggressiveness: int = setting(
        2,
        doc="webrtcvad aggressiveness 0-3: higher calls less noise 'speech' "
        "(3 for noisy rooms, 1 for quiet voices).",
        min=0,
        max=3,
    )
    silence_timeout: float = setting(
        0.8, doc="Silence after speech that ends the utterance.", min=0.1, max=10
    )
    max_length: float = setting(
        15.0, doc="Longest utterance; listening ends there (reason max_length).", min=1, max=120
    )
    min_speech: float = setting(
        0.3,
        doc="Less speech than this in a turn counts as nothing said "
        "(reason too_short: the turn is cancelled).",
        min=0,
        max=10,
    )
    no_speech_timeout: float = setting(
        5.0,
        doc="Listening with no speech at all ends after this "
        "(reason too_short); not for push-to-talk.",
        min=0.5,
        max=60,
    )
    speech_start: float = setting(
        0.1,
        doc="Voiced audio needed in a row before speech counts as started "
        "(filters clicks and coughs).",
        min=0.02,
        max=1,
    )
    energy_gate_db: float = setting(
        30.0,
        doc="Frames this many dB below the child's average speech "
        "level count as silence (cuts webrtcvad's ~0.1 s hangover); "
        "0 turns the gate off.",
        min=0,
        max=80,
    )

    def __post_init__(self) -> None:
        if self.max_length <= self.silence_timeout:
            raise ValueError("max_length must be longer than silence_timeout")
