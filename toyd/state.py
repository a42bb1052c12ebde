"""The conversation state machine: the single place that decides transitions.

States and triggers are enums; :data:`TRANSITIONS` is the whole table. OFFLINE is an
overlay flag, not a state: a toy can be IDLE and offline at once. Every change is
published as a ``StateChanged`` event by :class:`toyd.conversation.Conversation`.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger(__name__)


class State(str, enum.Enum):
    """Where the conversation is."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    SLEEPING = "sleeping"
    MUTED = "muted"
    ERROR = "error"


class Trigger(str, enum.Enum):
    """What can move the state machine."""

    LISTEN = "listen"  # button press or wake word
    END_OF_SPEECH = "end_of_speech"
    REPLY_STARTED = "reply_started"
    REPLY_DONE = "reply_done"
    ANNOUNCE = "announce"  # server-initiated speech ("say")
    CANCEL = "cancel"  # turn failed, nothing to say
    SLEEP = "sleep"
    WAKE = "wake"
    MUTE = "mute"
    UNMUTE = "unmute"
    FAULT = "fault"
    RECOVER = "recover"


S, T = State, Trigger

# Triggers every awake state shares.
_AWAKE = {T.SLEEP: S.SLEEPING, T.MUTE: S.MUTED, T.FAULT: S.ERROR}

TRANSITIONS: dict[State, dict[Trigger, State]] = {
    S.IDLE: {T.LISTEN: S.LISTENING, T.ANNOUNCE: S.SPEAKING, **_AWAKE},
    S.LISTENING: {T.END_OF_SPEECH: S.THINKING, T.CANCEL: S.IDLE, **_AWAKE},
    # LISTEN while THINKING or SPEAKING is barge-in.
    S.THINKING: {
        T.REPLY_STARTED: S.SPEAKING,
        T.LISTEN: S.LISTENING,
        T.CANCEL: S.IDLE,
        T.REPLY_DONE: S.IDLE,
        **_AWAKE,
    },
    S.SPEAKING: {T.REPLY_DONE: S.IDLE, T.LISTEN: S.LISTENING, T.CANCEL: S.IDLE, **_AWAKE},
    S.SLEEPING: {T.WAKE: S.IDLE, T.MUTE: S.MUTED, T.FAULT: S.ERROR},
    S.MUTED: {T.UNMUTE: S.IDLE, T.SLEEP: S.SLEEPING, T.FAULT: S.ERROR},
    S.ERROR: {T.RECOVER: S.IDLE, T.SLEEP: S.SLEEPING},
}

BARGE_IN_FROM = frozenset({S.THINKING, S.SPEAKING})


class StateMachine:
    """Holds the current state and applies the transition table; no I/O."""

    def __init__(self, initial: State = State.IDLE) -> None:
        self.state = initial
        self.offline = False

    def next_state(self, trigger: Trigger) -> State | None:
        """The state ``trigger`` leads to from here, or None if it is not allowed."""
        return TRANSITIONS[self.state].get(trigger)

    def fire(self, trigger: Trigger, cause: str = "") -> tuple[State, State] | None:
        """Apply ``trigger``; returns ``(old, new)`` or None (logged) when illegal."""
        new = self.next_state(trigger)
        if new is None:
            log.info(
                "ignored %s in state %s (%s)", trigger.value, self.state.value, cause or "no cause"
            )
            return None
        old, self.state = self.state, new
        return old, new

    def set_offline(self, offline: bool) -> bool:
        """Set the overlay; True when it changed."""
        changed = offline != self.offline
        self.offline = offline
        return changed
