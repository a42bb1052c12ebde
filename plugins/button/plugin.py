"""Push-to-talk button: press opens a turn, release ends it; hold and double-press are gestures.

gpiozero reports edges on its own thread; each edge is stamped there and handed to the
event loop with ``call_soon_threadsafe``, where all timing (hold timer, double-press
window) and publishing happens. The hold timer is an asyncio timer rather than
gpiozero's ``when_held`` thread so that a release cancels it on the same loop that
publishes, with no cross-thread race.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Literal

from toyd import App, PluginDeclaration, Service, State, Trigger, gpio, hookimpl, setting
from toyd.events import (
    ButtonGesture,
    ButtonPressed,
    ButtonReleased,
    SpeechStarted,
    StateRequest,
    VolumeSet,
)

log = logging.getLogger(__name__)

Action = Literal["none", "sleep_toggle", "mute_toggle", "volume_up", "volume_down"]


@dataclasses.dataclass(frozen=True)
class ButtonSettings:
    """Settings of the ``button`` section."""

    pin: int = setting(
        17, min=0, max=53, doc="BCM number of the GPIO the button connects to ground (or 3.3 V)."
    )
    pull_up: bool = setting(
        True, doc="True: button between the pin and ground (internal pull-up); false: to 3.3 V."
    )
    bounce_time: float | None = setting(
        0.02,
        min=0.0,
        max=1.0,
        doc="Seconds of contact bounce to ignore after an edge; null to turn off.",
    )
    hold_time: float = setting(
        3.0, min=0.5, max=30.0, doc="Seconds held without speech before the hold gesture fires."
    )
    hold_action: Action = setting(
        "sleep_toggle",
        doc="What a hold does: none, sleep_toggle, mute_toggle, volume_up, volume_down.",
    )
    double_press_action: Action = setting(
        "none", doc="What a double press does (same choices as hold_action)."
    )
    double_press_window: float = setting(
        0.4,
        min=0.1,
        max=2.0,
        doc="Max seconds from the end of a short press to the next press to count as a double press.",
    )
    volume_step: int = setting(
        10, min=1, max=100, doc="Volume change per volume_up/volume_down gesture (0-100 scale)."
    )
    initial_volume: int = setting(
        70,
        min=0,
        max=100,
        doc="Volume assumed until a VolumeSet is seen; match the speaker's start volume.",
    )


class ButtonPlugin:
    """Turns GPIO edges into ButtonPressed/ButtonReleased/ButtonGesture events."""

    def __init__(self) -> None:
        self.settings = ButtonSettings()
        self.app: App | None = None
        self.button: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pressed_at: float | None = None
        self._hold: asyncio.TimerHandle | None = None
        self._hold_fired = False
        self._speech_seen = False
        self._last_short_release: float | None = None
        self._volume = 70
        self._events: Any = None
        self._holds_gpio = False  # shutdown may run after a failed or skipped start-up

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=ButtonSettings,
            summary="Push-to-talk button (GPIO) with hold and double-press gestures",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: ButtonSettings) -> None:
        self.app, self.settings = app, settings
        self._loop = asyncio.get_running_loop()
        self._volume = settings.initial_volume
        self._events = app.bus.subscribe("button", (SpeechStarted, VolumeSet))
        factory = gpio.acquire(app.simulate)
        self._holds_gpio = True
        self.button = self._open(factory, settings)

    def _open(self, factory: Any, settings: ButtonSettings) -> Any:
        from gpiozero import Button

        try:
            button = Button(
                settings.pin,
                pull_up=settings.pull_up,
                bounce_time=settings.bounce_time,
                pin_factory=factory,
            )
        except Exception as exc:  # noqa: BLE001 - gpiozero raises many kinds; name the pin
            raise gpio.pin_error("button", settings.pin, exc) from exc
        # gpiozero thread → stamp now, handle on the loop
        button.when_pressed = lambda: self._from_thread(self._on_press)
        button.when_released = lambda: self._from_thread(self._on_release)
        log.info(
            "button on GPIO %s (%s)", settings.pin, "pull-up" if settings.pull_up else "pull-down"
        )
        return button

    def _from_thread(self, handler: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(handler, time.monotonic())

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("events", self._run)]

    async def _run(self) -> None:
        """Notice speech (a long press with speech is talking, not a hold) and the volume."""
        async for event in self._events:
            if isinstance(event, SpeechStarted):
                self._speech_seen = True
            elif isinstance(event, VolumeSet):
                self._volume = event.level

    # --- edges, on the loop ---------------------------------------------------------

    def _on_press(self, at: float) -> None:
        if self._pressed_at is not None:  # a lost release edge: treat as a new press
            self._cancel_hold()
        assert self.app is not None and self._loop is not None
        self._pressed_at, self._hold_fired, self._speech_seen = at, False, False
        self.app.bus.publish(ButtonPressed(at=at))
        last = self._last_short_release
        self._last_short_release = None
        if last is not None and at - last <= self.settings.double_press_window:
            self._gesture("double_press", self.settings.double_press_action)
        delay = max(0.0, self.settings.hold_time - (time.monotonic() - at))
        self._hold = self._loop.call_later(delay, self._on_hold)

    def _on_release(self, at: float) -> None:
        if self._pressed_at is None:
            return
        assert self.app is not None
        held = max(0.0, at - self._pressed_at)
        self._pressed_at = None
        self._cancel_hold()
        self.app.bus.publish(ButtonReleased(held=held, at=at))
        self._last_short_release = None if self._hold_fired else at

    def _on_hold(self) -> None:
        self._hold = None
        if self._pressed_at is None or self._speech_seen:
            return  # talking while holding is push-to-talk, not a gesture
        self._hold_fired = True
        self._gesture("hold", self.settings.hold_action)

    def _cancel_hold(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None

    # --- gestures -------------------------------------------------------------------

    def _gesture(self, gesture: str, action: Action) -> None:
        """Publish the gesture and carry out its action; the press's own turn is dropped."""
        assert self.app is not None
        if action == "none":
            return
        log.info("button %s -> %s", gesture, action)
        bus, state = self.app.bus, self.app.state
        bus.publish(ButtonGesture(gesture=gesture, action=action))
        cause = f"button {gesture}"
        if state is State.LISTENING:  # this press opened a turn nobody talks in
            bus.publish(StateRequest(trigger=Trigger.CANCEL, cause=cause))
        if action == "sleep_toggle":
            trigger = Trigger.WAKE if state is State.SLEEPING else Trigger.SLEEP
            bus.publish(StateRequest(trigger=trigger, cause=cause))
        elif action == "mute_toggle":
            trigger = Trigger.UNMUTE if state is State.MUTED else Trigger.MUTE
            bus.publish(StateRequest(trigger=trigger, cause=cause))
        elif action in ("volume_up", "volume_down"):
            step = (
                self.settings.volume_step if action == "volume_up" else -self.settings.volume_step
            )
            self._volume = max(0, min(100, self._volume + step))
            bus.publish(VolumeSet(level=self._volume))

    # --- lifecycle ------------------------------------------------------------------

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: ButtonSettings) -> bool:
        old = self.settings
        if (old.pin, old.pull_up, old.bounce_time) != (
            settings.pin,
            settings.pull_up,
            settings.bounce_time,
        ):
            return False  # the pin is wired at start-up
        self.settings = settings
        return True

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        self._cancel_hold()
        if self._events is not None:
            self._events.close()
        if self.button is not None:
            self.button.close()
            self.button = None
        if self._holds_gpio:
            self._holds_gpio = False
            gpio.release()
