"""RGB LED on gpiozero MockPWMPin pins in a real daemon: the colour and animation of every state."""

from __future__ import annotations

from typing import Any

import pytest

from toyd import State, Trigger, gpio
from toyd.errors import ConfigError
from toyd.events import (
    ButtonPressed,
    CloudOffline,
    CloudOnline,
    PlaybackStarted,
    SpeechEnded,
    StateChanged,
    StateRequest,
)
from toyd.testing import next_event, running_daemon, wait_for

B = 0.6  # default brightness cap


def config(**led: Any) -> dict[str, Any]:
    return {"role": "device", "plugins": ["led"], "led": led}


def rgb(pins: tuple[int, int, int] = (22, 23, 24)) -> tuple[float, float, float]:
    factory = gpio.current()
    return tuple(round(float(factory.pin(p).state), 3) for p in pins)  # type: ignore[return-value]


def near(expected: tuple[float, float, float]):
    want = tuple(round(c, 3) for c in expected)
    return lambda: rgb() == want


async def shows(expected: tuple[float, float, float], timeout: float = 5.0) -> None:
    try:
        await wait_for(near(expected), timeout)
    except TimeoutError:
        raise AssertionError(f"LED shows {rgb()}, expected {expected}") from None


async def go(app, *events, state: State) -> None:
    sub = app.bus.subscribe("go", (StateChanged,))
    for event in events:
        app.bus.publish(event)
    await next_event(sub, StateChanged, where=lambda e: e.new is state)
    sub.close()


async def test_static_states(state_dir) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        await shows((16 / 255 * B,) * 3)  # idle: dim white
        await go(app, ButtonPressed(), state=State.LISTENING)
        await shows((0, 0, B))  # listening: solid blue
        await go(app, SpeechEnded(), PlaybackStarted(response_id="r"), state=State.SPEAKING)
        await shows((0, B, 0))  # speaking: green
        await go(app, StateRequest(trigger=Trigger.MUTE), state=State.MUTED)
        await shows((48 / 255 * B, 0, 0))  # muted: dim red
        await go(app, StateRequest(trigger=Trigger.SLEEP), state=State.SLEEPING)
        await shows((0, 0, 0))  # sleeping: off


async def test_thinking_pulses_and_error_blinks(state_dir) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        await go(app, ButtonPressed(), SpeechEnded(), state=State.THINKING)
        # violet pulse (period 1.2 s): the blue leg swings between near-off and near the cap
        await wait_for(lambda: rgb()[2] > 0.9 * B, timeout=3)
        await wait_for(lambda: rgb()[2] < 0.1 * B, timeout=3)
        red, green, blue = rgb()
        assert green == 0 and red == pytest.approx(blue * 128 / 255, abs=0.01)
        await go(app, StateRequest(trigger=Trigger.FAULT), state=State.ERROR)
        await shows((B, 0, 0), timeout=3)  # red blink: full on, then off
        await shows((0, 0, 0), timeout=3)
        await shows((B, 0, 0), timeout=3)
        await go(app, StateRequest(trigger=Trigger.RECOVER), state=State.IDLE)
        await shows((16 / 255 * B,) * 3)  # the animation stopped with the state


async def test_offline_overlay_replaces_idle_only(state_dir) -> None:
    amber = (B, 128 / 255 * B, 0)
    async with running_daemon(config(), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", (StateChanged,))
        app.bus.publish(CloudOffline(reason="test"))
        assert (await next_event(sub, StateChanged)).offline
        await shows(amber)
        await go(app, ButtonPressed(), state=State.LISTENING)
        await shows((0, 0, B))  # the toy still listens (offline mode answers locally)
        await go(app, StateRequest(trigger=Trigger.CANCEL), state=State.IDLE)
        await shows(amber)
        app.bus.publish(CloudOnline())
        await shows((16 / 255 * B,) * 3)


async def test_common_anode_inverts_and_custom_looks(state_dir) -> None:
    looks = {"listening": {"color": [255, 64, 0]}, "idle": {"color": "#0f0", "animation": "solid"}}
    async with running_daemon(
        config(common_anode=True, brightness=1.0, states=looks), state_dir=state_dir
    ) as app:
        await shows((1, 0, 1))  # idle green on a common-anode LED: green leg low, others high
        await go(app, ButtonPressed(), state=State.LISTENING)
        await shows((0, 1 - 64 / 255, 1))


async def test_offline_look_can_be_turned_off_and_pins_chosen(state_dir) -> None:
    async with running_daemon(config(offline=None, pins=[5, 6, 13]), state_dir=state_dir) as app:
        app.bus.publish(CloudOffline())
        await go(
            app, ButtonPressed(), state=State.LISTENING
        )  # proves the offline event was handled first
        await go(app, StateRequest(trigger=Trigger.CANCEL), state=State.IDLE)
        assert rgb((5, 6, 13)) == (round(16 / 255 * B, 3),) * 3


@pytest.mark.parametrize(
    ("led", "message"),
    [
        (
            {"states": {"idle": {"color": "#12345"}}},
            r"led.states.idle: colour '#12345' is not #rrggbb",
        ),
        (
            {"states": {"idle": {"color": [300, 0, 0]}}},
            r"led.states.idle: colour \[300, 0, 0\] needs three values 0-255",
        ),
        (
            {"states": {"idle": {"animation": "sparkle"}}},
            r"led.states.idle.animation: not an allowed value",
        ),
        ({"states": {"dancing": {}}}, r"led.states.dancing: unknown key"),
        ({"pins": [22, 22, 24]}, r"led: pins needs three different GPIOs"),
        ({"brightness": 2}, r"led.brightness: out of range"),
    ],
)
async def test_bad_led_config_names_the_key(state_dir, led: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        async with running_daemon(config(**led), state_dir=state_dir):
            pass


async def test_hook_toyd_reconfigure_led(state_dir) -> None:
    from toyd.config import validate
    from toyd_plugins.led import LedSettings

    def settings(**led: Any):
        return validate(
            {**config(**led), "state_dir": str(state_dir)},
            lambda n: LedSettings if n == "led" else None,
        )

    async with running_daemon(config(), state_dir=state_dir) as app:
        await go(app, ButtonPressed(), state=State.LISTENING)
        await shows((0, 0, B))
        assert await app.apply_config(settings(brightness=0.2)) == []
        await shows((0, 0, 0.2))  # applied at once
        assert await app.apply_config(settings(brightness=0.2, common_anode=True)) == ["led"]


async def test_partial_look_keeps_the_state_defaults(state_dir) -> None:
    async with running_daemon(
        config(states={"listening": {"animation": "blink", "period": 0.2}}), state_dir=state_dir
    ) as app:
        await go(app, ButtonPressed(), state=State.LISTENING)
        await shows((0, 0, B), timeout=3)  # still blue, now blinking
        await shows((0, 0, 0), timeout=3)


def test_code_pattern_counts_each_digit() -> None:
    from toyd_plugins.led.code import CODE_GAP, DIGIT_GAP, code_pattern

    steps = code_pattern("203")
    flashes = [sum(1 for lit, _ in group if lit) for group in _split(steps, DIGIT_GAP)]
    assert flashes == [2, 10, 3]  # 0 is ten flashes
    assert steps[-1] == (False, CODE_GAP) and code_pattern("") == []


def _split(steps, gap):
    group: list = []
    for step in steps:
        if step == (False, gap):
            yield group
            group = []
        else:
            group.append(step)


async def test_activation_code_blinks_while_idle_and_stops_when_done(state_dir) -> None:
    from toyd.events import ActivationCode
    from toyd_plugins.led.code import COLOR

    async with running_daemon(config(), state_dir=state_dir) as app:
        await shows((16 / 255 * B,) * 3)
        app.bus.publish(ActivationCode(code="111111"))
        await shows(tuple(c * B for c in COLOR))  # lit ...
        await shows((0, 0, 0))  # ... and dark: blinking
        app.bus.publish(ActivationCode(code=""))
        await shows((16 / 255 * B,) * 3)  # back to the idle look
