"""RGB LED that follows the conversation state, with its own asyncio animation task.

Animations run as one owned asyncio task writing ``RGBLED.color`` at ``fps`` rather than
gpiozero's ``pulse()``/``blink()`` background threads: a state change then cancels the
old animation on the loop at once (no thread join on the loop), the offline overlay and
brightness cap are applied in one place, and a single writer means the pins always show
exactly the current state. A PWM duty-cycle write is microseconds, fine on the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from toyd import App, PluginDeclaration, Service, State, gpio, hookimpl, setting
from toyd.events import ActivationCode, LedLook, StateChanged

from .code import COLOR, code_pattern
from .looks import Look, Shown, StateLooks, is_static, level, resolve, scaled

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LedSettings:
    """Settings of the ``led`` section."""

    pins: tuple[int, int, int] = setting(
        (22, 23, 24), doc="BCM numbers of the red, green and blue legs."
    )
    common_anode: bool = setting(
        False, doc="True for a common-anode LED (legs are driven low to light)."
    )
    brightness: float = setting(
        0.6, min=0.0, max=1.0, doc="Cap on every channel, 0-1 (PWM duty cycle)."
    )
    fps: int = setting(30, min=1, max=100, doc="Updates per second while animating.")
    states: StateLooks = setting(
        factory=StateLooks, doc="Look (color, animation, period) per state."
    )
    offline: Look | None = setting(
        Look(),
        doc="Look shown instead of the idle look while the cloud is offline "
        "(default: amber #ff8000, solid); null keeps the idle look.",
    )

    def __post_init__(self) -> None:
        if len(set(self.pins)) != 3:
            raise ValueError("pins needs three different GPIOs (red, green, blue)")


class LedPlugin:
    """Shows a colour and an animation per state on a gpiozero RGBLED."""

    def __init__(self) -> None:
        self.settings = LedSettings()
        self.led: Any = None
        self.state = State.IDLE
        self.offline = False
        self._animation: asyncio.Task[None] | None = None
        self._app: App | None = None
        self._events: Any = None
        self._holds_gpio = False  # shutdown may run after a failed or skipped start-up
        self._override: tuple[Shown, float] | None = None  # a LedLook and when it ends (loop time)
        self._restore: asyncio.TimerHandle | None = None
        self.code = ""  # an activation code being shown (blinked while idle)

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=LedSettings,
            summary="RGB LED (PWM) showing the conversation state",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: LedSettings) -> None:
        self._app, self.settings = app, settings
        self.state, self.offline = app.state or State.IDLE, app.offline
        self._events = app.bus.subscribe("led", (StateChanged, ActivationCode, LedLook))
        factory = gpio.acquire(app.simulate)
        self._holds_gpio = True
        self.led = self._open(factory, settings)
        self.show()

    def _open(self, factory: Any, settings: LedSettings) -> Any:
        from gpiozero import RGBLED

        red, green, blue = settings.pins
        try:
            return RGBLED(
                red,
                green,
                blue,
                active_high=not settings.common_anode,
                pwm=True,
                pin_factory=factory,
            )
        except Exception as exc:  # noqa: BLE001 - name the pins, not gpiozero internals
            raise gpio.pin_error("led", f"{red}/{green}/{blue}", exc) from exc

    def look(self) -> Shown:
        """What the LED should show: a LedLook while it lasts, the state's look, or the offline look."""
        if self._override is not None:
            if self._override[1] > asyncio.get_running_loop().time():
                return self._override[0]
            self._override = None
        if self.offline and self.state is State.IDLE and self.settings.offline is not None:
            return resolve(self.settings.offline, "offline")
        return self.settings.states.of(self.state)

    def show(self) -> None:
        """Apply the current look: set it once, or start the animation task."""
        self._stop_animation()
        if self.code and self.state is State.IDLE:
            assert self._app is not None
            self._animation = self._app.spawn(self._blink_code(self.code), "led:code")
            return
        look = self.look()
        log.debug(
            "led %s%s: %s %s",
            self.state.value,
            " (offline)" if self.offline else "",
            look.animation,
            "#{:02x}{:02x}{:02x}".format(
                *(round(c * 255) for c in scaled(look.rgb, self.settings.brightness))
            ),
        )
        if is_static(look):
            self._write(look, 0.0)
        else:
            assert self._app is not None
            self._animation = self._app.spawn(self._animate(look), "led:animation")

    def _write(self, look: Shown, t: float) -> None:
        if self.led is None:
            return
        self.led.color = scaled(look.rgb, level(look, t) * self.settings.brightness)

    async def _animate(self, look: Shown) -> None:
        loop = asyncio.get_running_loop()
        start, step = loop.time(), 1.0 / self.settings.fps
        while True:
            self._write(look, loop.time() - start)
            await asyncio.sleep(step)

    async def _blink_code(self, code: str) -> None:
        steps = code_pattern(code)
        while True:
            for lit, seconds in steps:
                if self.led is not None:
                    self.led.color = scaled(COLOR, self.settings.brightness if lit else 0.0)
                await asyncio.sleep(seconds)

    def _stop_animation(self) -> None:
        if self._animation is not None:
            self._animation.cancel()
            self._animation = None

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("events", self._run)]

    async def _run(self) -> None:
        async for event in self._events:
            if isinstance(event, LedLook):
                await self._show_for(event)
                continue
            if isinstance(event, ActivationCode):
                self.code = event.code
            else:
                self.state, self.offline = event.new, event.offline
            self.show()

    async def _show_for(self, event: LedLook) -> None:
        """A colour over the state's look (a cloud's emotion, an AI tool) for ``event.seconds``."""
        loop = asyncio.get_running_loop()
        red, green, blue = (min(max(c, 0), 255) / 255 for c in event.rgb)
        seconds = max(0.0, min(event.seconds, 60.0))
        self._override = (Shown((red, green, blue), "solid", 1.0), loop.time() + seconds)
        self.show()
        if self._restore is not None:
            self._restore.cancel()
        self._restore = loop.call_later(seconds + 0.01, self.show)

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: LedSettings) -> bool:
        if (settings.pins, settings.common_anode) != (
            self.settings.pins,
            self.settings.common_anode,
        ):
            return False  # wiring is fixed at start-up
        self.settings = settings
        self.show()
        return True

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        if self._restore is not None:
            self._restore.cancel()
        task, self._animation = self._animation, None
        if task is not None:  # the supervisor normally cancelled it already
            task.cancel()
            await asyncio.wait([task], timeout=0.5)
        if self._events is not None:
            self._events.close()
        if self.led is not None:
            self.led.off()
            self.led.close()
            self.led = None
        if self._holds_gpio:
            self._holds_gpio = False
            gpio.release()
