"""The conversation state machine: the full transition table, illegal moves, the event mapping."""

from __future__ import annotations

import asyncio

import pytest

from toyd import events as ev
from toyd.bus import EventBus
from toyd.conversation import Conversation
from toyd.state import TRANSITIONS, State, StateMachine, Trigger
from toyd.testing import next_event

S, T = State, Trigger

# The whole table written out independently: (state, trigger) -> next state; absent = illegal.
EXPECTED = {
    (S.IDLE, T.LISTEN): S.LISTENING,
    (S.IDLE, T.ANNOUNCE): S.SPEAKING,
    (S.LISTENING, T.END_OF_SPEECH): S.THINKING,
    (S.LISTENING, T.CANCEL): S.IDLE,
    (S.THINKING, T.REPLY_STARTED): S.SPEAKING,
    (S.THINKING, T.LISTEN): S.LISTENING,
    (S.THINKING, T.CANCEL): S.IDLE,
    (S.THINKING, T.REPLY_DONE): S.IDLE,
    (S.SPEAKING, T.REPLY_DONE): S.IDLE,
    (S.SPEAKING, T.LISTEN): S.LISTENING,
    (S.SPEAKING, T.CANCEL): S.IDLE,
    (S.SLEEPING, T.WAKE): S.IDLE,
    (S.SLEEPING, T.MUTE): S.MUTED,
    (S.SLEEPING, T.FAULT): S.ERROR,
    (S.MUTED, T.UNMUTE): S.IDLE,
    (S.MUTED, T.SLEEP): S.SLEEPING,
    (S.MUTED, T.FAULT): S.ERROR,
    (S.ERROR, T.RECOVER): S.IDLE,
    (S.ERROR, T.SLEEP): S.SLEEPING,
}
for awake in (S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING):
    EXPECTED |= {(awake, T.SLEEP): S.SLEEPING, (awake, T.MUTE): S.MUTED, (awake, T.FAULT): S.ERROR}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("trigger", list(Trigger))
def test_transition_table(state: State, trigger: Trigger) -> None:
    machine = StateMachine(state)
    result = machine.fire(trigger, "test")
    expected = EXPECTED.get((state, trigger))
    if expected is None:
        assert result is None and machine.state is state  # illegal: ignored, not fatal
    else:
        assert result == (state, expected) and machine.state is expected


def test_every_state_has_a_row_and_a_way_out() -> None:
    assert set(TRANSITIONS) == set(State)
    assert all(TRANSITIONS[s] for s in State)


def test_illegal_transition_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="toyd.state")
    StateMachine(S.SLEEPING).fire(T.LISTEN, "button")
    assert "ignored listen in state sleeping (button)" in caplog.text


async def test_conversation_maps_events_and_publishes_every_change() -> None:
    bus = EventBus()
    conversation = Conversation(bus)
    changes = bus.subscribe("changes", (ev.StateChanged,))
    task = asyncio.create_task(conversation.run())
    script = [
        (ev.WakeWordDetected(model="hey_jarvis", score=0.9), S.LISTENING, "wake_word:hey_jarvis"),
        (ev.SpeechEnded(reason="silence"), S.THINKING, "SpeechEnded"),
        (ev.PlaybackStarted(response_id="r1"), S.SPEAKING, "PlaybackStarted"),
        (ev.ButtonPressed(), S.LISTENING, "ButtonPressed"),  # barge-in
        (ev.SpeechEnded(reason="too_short"), S.IDLE, "SpeechEnded"),
        (
            ev.PlaybackStarted(response_id="say"),
            S.SPEAKING,
            "PlaybackStarted",
        ),  # announcement from IDLE
        (ev.PlaybackFinished(response_id="say"), S.IDLE, "PlaybackFinished"),
        (ev.StateRequest(trigger=T.SLEEP, cause="parent"), S.SLEEPING, "parent"),
    ]
    for event, state, cause in script:
        bus.publish(event)
        change = await next_event(changes, ev.StateChanged)
        assert (change.new, change.cause) == (state, cause)
    bus.publish(ev.CloudOffline(reason="down"))
    overlay = await next_event(changes, ev.StateChanged)
    assert overlay.offline and overlay.old is overlay.new is S.SLEEPING
    bus.publish(
        ev.PlaybackFinished(response_id="x", interrupted=True)
    )  # no trigger: nothing published
    bus.publish(ev.CloudOnline())
    assert not (await next_event(changes, ev.StateChanged)).offline
    task.cancel()
    conversation.close()


async def test_thinking_without_a_reply_times_out_to_idle() -> None:
    bus = EventBus()
    conversation = Conversation(bus, turn_timeout=0.05)
    changes = bus.subscribe("changes", (ev.StateChanged,))
    task = asyncio.create_task(conversation.run())
    bus.publish(ev.ButtonPressed())
    bus.publish(ev.SpeechEnded())
    states = [(await next_event(changes, ev.StateChanged)).new for _ in range(3)]
    assert states == [S.LISTENING, S.THINKING, S.IDLE]
    task.cancel()
    conversation.close()
