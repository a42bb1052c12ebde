"""Push-to-talk button on gpiozero mock pins (MockFactory, MockPWMPin) in a real daemon."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from toyd import State, Trigger, gpio
from toyd.events import (
    ButtonGesture,
    ButtonPressed,
    ButtonReleased,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
    StateChanged,
    StateRequest,
    VolumeSet,
)
from toyd.testing import next_event, running_daemon

EVENTS = (ButtonPressed, ButtonReleased, ButtonGesture, StateChanged, VolumeSet)


def config(**button: Any) -> dict[str, Any]:
    return {"role": "device", "plugins": ["button"], "button": {"bounce_time": None, **button}}


def pin(number: int = 17) -> Any:
    return gpio.current().pin(number)


async def state_becomes(sub, state: State, timeout: float = 5.0) -> StateChanged:
    return await next_event(sub, StateChanged, timeout, where=lambda e: e.new is state)


async def test_press_listens_release_reports_hold_time(state_dir) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        from gpiozero import Device
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        assert (
            isinstance(Device.pin_factory, MockFactory)
            and Device.pin_factory.pin_class is MockPWMPin
        )
        sub = app.bus.subscribe("test", EVENTS)
        pin().drive_low()  # pull-up: pressed pulls the pin to ground
        await next_event(sub, ButtonPressed)
        change = await next_event(sub, StateChanged)
        assert (change.old, change.new, change.cause) == (
            State.IDLE,
            State.LISTENING,
            "ButtonPressed",
        )
        pin().drive_high()
        released = await next_event(sub, ButtonReleased)
        assert 0 < released.held < 2
        app.bus.publish(SpeechEnded(reason="released"))  # what the VAD does on release
        await state_becomes(sub, State.THINKING)


async def test_pull_down_wiring(state_dir) -> None:
    async with running_daemon(config(pull_up=False, pin=5), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", EVENTS)
        pin(5).drive_high()
        await next_event(sub, ButtonPressed)
        await state_becomes(sub, State.LISTENING)


async def test_press_while_speaking_is_barge_in(state_dir) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", EVENTS)
        for event in (ButtonPressed(), SpeechEnded(), PlaybackStarted(response_id="r1")):
            app.bus.publish(event)
        await state_becomes(sub, State.SPEAKING)
        pin().drive_low()
        change = await state_becomes(sub, State.LISTENING)
        assert change.old is State.SPEAKING


async def test_press_while_sleeping_does_not_listen(state_dir) -> None:
    async with running_daemon(config(hold_action="none"), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", EVENTS)
        app.bus.publish(StateRequest(trigger=Trigger.SLEEP))
        await state_becomes(sub, State.SLEEPING)
        pin().drive_low()
        await next_event(sub, ButtonPressed)
        pin().drive_high()
        await next_event(sub, ButtonReleased)
        app.bus.publish(StateRequest(trigger=Trigger.WAKE))
        # the conversation handles events in order: the next change is the wake, not a listen
        change = await next_event(sub, StateChanged)
        assert (change.old, change.new) == (State.SLEEPING, State.IDLE)


async def test_hold_toggles_sleep_and_drops_the_empty_turn(state_dir) -> None:
    async with running_daemon(config(hold_time=0.5), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", EVENTS)
        pin().drive_low()
        await state_becomes(sub, State.LISTENING)
        gesture = await next_event(sub, ButtonGesture, timeout=5)
        assert (gesture.gesture, gesture.action) == ("hold", "sleep_toggle")
        assert (
            await next_event(sub, StateChanged)
        ).new is State.IDLE  # the silent turn is cancelled
        assert (await next_event(sub, StateChanged)).new is State.SLEEPING
        pin().drive_high()
        released = await next_event(sub, ButtonReleased)
        assert released.held >= 0.5
        pin().drive_low()  # a second hold wakes the toy (the press itself cannot listen while asleep)
        await next_event(sub, ButtonGesture, timeout=5)
        change = await next_event(sub, StateChanged)
        assert (change.old, change.new) == (State.SLEEPING, State.IDLE)
        pin().drive_high()


async def test_talking_while_holding_is_not_a_gesture(state_dir) -> None:
    async with running_daemon(config(hold_time=0.5), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", EVENTS)
        pin().drive_low()
        await state_becomes(sub, State.LISTENING)
        app.bus.publish(SpeechStarted())  # the VAD hears the child
        await asyncio.sleep(0.8)  # the behaviour under test is "nothing happens after hold_time"
        pin().drive_high()
        event = await next_event(sub, (ButtonGesture, ButtonReleased))  # type: ignore[arg-type]
        assert isinstance(event, ButtonReleased) and event.held >= 0.5
        assert app.state is State.LISTENING


async def test_double_press_mutes_and_unmutes(state_dir) -> None:
    async with running_daemon(
        config(double_press_action="mute_toggle", hold_action="none"), state_dir=state_dir
    ) as app:
        sub = app.bus.subscribe("test", EVENTS)
        for level in ("low", "high", "low", "high"):
            getattr(pin(), f"drive_{level}")()
        gesture = await next_event(sub, ButtonGesture)
        assert (gesture.gesture, gesture.action) == ("double_press", "mute_toggle")
        await state_becomes(sub, State.MUTED)
        for level in ("low", "high", "low", "high"):
            getattr(pin(), f"drive_{level}")()
        change = await state_becomes(sub, State.IDLE)
        assert change.old is State.MUTED


async def test_slow_second_press_is_not_a_double_press(state_dir) -> None:
    async with running_daemon(
        config(double_press_action="mute_toggle", double_press_window=0.1), state_dir=state_dir
    ) as app:
        sub = app.bus.subscribe("test", EVENTS)
        pin().drive_low()
        pin().drive_high()
        await next_event(sub, ButtonReleased)
        await asyncio.sleep(0.25)  # longer than the window: the behaviour under test is timing
        pin().drive_low()
        await next_event(sub, ButtonPressed, where=lambda e: True)
        pin().drive_high()
        event = await next_event(sub, (ButtonGesture, ButtonReleased))  # type: ignore[arg-type]
        assert isinstance(event, ButtonReleased)


@pytest.mark.parametrize(("action", "level"), [("volume_up", 80), ("volume_down", 60)])
async def test_hold_changes_volume(state_dir, action: str, level: int) -> None:
    async with running_daemon(
        config(hold_time=0.5, hold_action=action), state_dir=state_dir
    ) as app:
        sub = app.bus.subscribe("test", EVENTS)
        pin().drive_low()
        assert (await next_event(sub, VolumeSet, timeout=5)).level == level
        pin().drive_high()
        app.bus.publish(VolumeSet(level=100))  # e.g. a parent over MQTT
        await next_event(sub, VolumeSet)
        pin().drive_low()
        expected = min(100, 100 + level - 70)
        assert (await next_event(sub, VolumeSet, timeout=5)).level == expected
        pin().drive_high()


async def test_hook_toyd_reconfigure(state_dir) -> None:
    from toyd.config import validate
    from toyd_plugins.button import ButtonSettings

    def settings(**button: Any):
        return validate(
            {**config(**button), "state_dir": str(state_dir)},
            lambda name: ButtonSettings if name == "button" else None,
        )

    async with running_daemon(config(), state_dir=state_dir) as app:
        plugin = app.host.plugins["button"]
        assert await app.apply_config(settings(hold_action="volume_up")) == []
        assert plugin.settings.hold_action == "volume_up"
        assert await app.apply_config(settings(pin=27)) == ["button"]
        assert plugin.button.pin.info.name == "GPIO17"  # wiring changes wait for a restart


async def test_gpio_factory_is_restored_and_pins_freed(state_dir) -> None:
    from gpiozero import Device

    before = Device.pin_factory
    async with running_daemon({**config(), "plugins": ["button", "led"]}, state_dir=state_dir):
        assert gpio.current() is Device.pin_factory is not before
    assert Device.pin_factory is before and gpio.current() is None
    async with running_daemon(config(), state_dir=state_dir) as app:  # pin 17 is free again
        sub = app.bus.subscribe("test", EVENTS)
        pin().drive_low()
        await next_event(sub, ButtonPressed)


async def test_pin_in_use_is_a_clear_startup_error(state_dir) -> None:
    from toyd.errors import PluginError

    cfg = {"role": "device", "plugins": ["button", "led"], "button": {"pin": 22}}
    with pytest.raises(
        PluginError,
        match=r"plugin 'led': failed to start: GpioError: led: GPIO 22/23/24 cannot be used",
    ):
        async with running_daemon(cfg, state_dir=state_dir):
            pass
    assert gpio.current() is None
