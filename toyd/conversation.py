"""Feeds bus events into the state machine and publishes every change.

:data:`TRIGGER_OF` is the one table that says which event means which trigger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import events as ev
from .bus import EventBus
from .state import State, StateMachine, Trigger

log = logging.getLogger(__name__)


def _speech_ended(e: ev.SpeechEnded) -> Trigger:
    return Trigger.CANCEL if e.reason == "too_short" else Trigger.END_OF_SPEECH


def _playback_finished(e: ev.PlaybackFinished) -> Trigger | None:
    # an interrupted playback already moved on (barge-in); nothing to do
    return None if e.interrupted else Trigger.REPLY_DONE


TRIGGER_OF: dict[type[ev.Event], Callable[..., Trigger | None]] = {
    ev.ButtonPressed: lambda e: Trigger.LISTEN,
    ev.WakeWordDetected: lambda e: Trigger.LISTEN,
    ev.SpeechEnded: _speech_ended,
    ev.PlaybackStarted: lambda e: Trigger.REPLY_STARTED,
    ev.PlaybackFinished: _playback_finished,
    ev.TurnFailed: lambda e: Trigger.CANCEL,
    ev.StateRequest: lambda e: e.trigger,
}


def _cause(event: ev.Event) -> str:
    if isinstance(event, ev.WakeWordDetected):
        return f"wake_word:{event.model}"
    if isinstance(event, ev.StateRequest):
        return event.cause or "request"
    return type(event).__name__


class Conversation:
    """Owns the device's :class:`StateMachine`; run :meth:`run` as a service."""

    def __init__(
        self, bus: EventBus, machine: StateMachine | None = None, *, turn_timeout: float = 20.0
    ) -> None:
        self.bus = bus
        self.machine = machine or StateMachine()
        self.turn_timeout = turn_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._sub = bus.subscribe(
            "conversation", (*TRIGGER_OF, ev.CloudOnline, ev.CloudOffline), maxsize=1024
        )

    @property
    def state(self) -> State:
        return self.machine.state

    def handle(self, event: ev.Event) -> None:
        """Apply one event; publishes ``StateChanged`` when something changed."""
        if isinstance(event, (ev.CloudOnline, ev.CloudOffline)):
            offline = isinstance(event, ev.CloudOffline)
            if self.machine.set_offline(offline):
                state = self.machine.state
                self.bus.publish(
                    ev.StateChanged(
                        old=state, new=state, offline=offline, cause=type(event).__name__
                    )
                )
            return
        trigger = TRIGGER_OF[type(event)](event)
        if trigger is None:
            return
        if trigger is Trigger.REPLY_STARTED and self.machine.state is State.IDLE:
            trigger = Trigger.ANNOUNCE
        cause = _cause(event)
        change = self.machine.fire(trigger, cause)
        if change is None:
            return
        old, new = change
        log.info("state %s -> %s (%s)", old.value, new.value, cause)
        self._arm_deadline(new)
        self.bus.publish(
            ev.StateChanged(old=old, new=new, offline=self.machine.offline, cause=cause)
        )

    def _arm_deadline(self, state: State) -> None:
        """THINKING with nobody answering must not last forever."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if state is State.THINKING:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(
                self.turn_timeout,
                self.handle,
                ev.TurnFailed(reason=f"no reply within {self.turn_timeout:g} s"),
            )

    async def run(self) -> None:
        """Consume events until cancelled."""
        async for event in self._sub:
            self.handle(event)

    def close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._sub.close()
