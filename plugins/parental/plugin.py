"""The parental plugin: a parent's limits enforced on the toy itself.

Quiet hours and the daily talking limit come from this section (file or config push) and
from remote commands (``QuietHoursSet``/``UsageLimitSet`` events, e.g. from ``mqtt``);
the newest instruction wins. The toy sleeps through ``StateRequest`` events, so the state
machine alone decides, and ``ParentalStatus`` tells dashboards what is in force.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable

from toyd import App, PluginDeclaration, Service, State, hookimpl, setting
from toyd.events import (
    ButtonPressed,
    ParentalStatus,
    QuietHoursSet,
    SayRequested,
    StateChanged,
    UsageLimitSet,
)
from toyd.quiet_hours import QuietHours

from . import controls
from .scheduler import Parental

log = logging.getLogger(__name__)

SLEEP_LINE_EVERY = 5.0  # seconds between two "it's sleep time" lines


@dataclasses.dataclass(frozen=True)
class ParentalSettings:
    """Settings of the ``parental`` section."""

    quiet_hours: QuietHours | None = setting(
        None, doc="Daily sleep window, e.g. {start: '19:30', end: '07:00', tz: Europe/Paris}."
    )
    usage_limit_minutes: int = setting(
        0,
        min=0,
        max=1440,
        doc="Minutes of talking per day before the toy sleeps until tomorrow; 0 = no limit.",
    )
    sleep_line: str = setting(
        "It's sleep time. Let's talk again later!",
        doc="Said when the button is pressed while sleeping (needs a speaker plugin); "
        "empty = silent.",
    )


class ParentalPlugin:
    """Owns the controls file, counts talking time, sleeps and wakes the toy by the clock."""

    def __init__(self, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.settings = ParentalSettings()
        self._clock = clock
        self._last_sleep_line = 0.0

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=ParentalSettings,
            summary="Quiet hours, a daily usage limit and the sleep line (works without MQTT)",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: ParentalSettings) -> None:
        self.app, self.settings = app, settings
        saved = await app.run_blocking(controls.load, app.state_dir)
        state = saved or controls.Controls(
            quiet_hours=settings.quiet_hours, usage_limit_minutes=settings.usage_limit_minutes
        )
        extra = {"clock": self._clock} if self._clock else {}
        self.parental = Parental(app, state, self._publish_status, **extra)
        self._events = app.bus.subscribe(
            "parental", (StateChanged, ButtonPressed, QuietHoursSet, UsageLimitSet), maxsize=512
        )

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        self._publish_status()
        return [
            Service("events", self._run),
            Service("schedule", self.parental.run),
            Service("save", self.parental.run_saver),
        ]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: ParentalSettings) -> bool:
        old, self.settings = self.settings, settings
        c = self.parental.controls
        # newest instruction wins: a changed config value replaces a parent's earlier command
        if settings.quiet_hours != old.quiet_hours:
            c.quiet_hours = settings.quiet_hours
        if settings.usage_limit_minutes != old.usage_limit_minutes:
            c.usage_limit_minutes = settings.usage_limit_minutes
        self._changed()
        return True

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        await self.parental.flush()

    def _changed(self) -> None:
        self.parental.changed.set()
        self.parental.request_save()
        self._publish_status()

    def _publish_status(self) -> None:
        c = self.parental.controls
        self.app.bus.publish(
            ParentalStatus(
                quiet_hours=c.quiet_hours,
                usage_limit_minutes=c.usage_limit_minutes,
                usage_today_minutes=round(self.parental.usage_seconds() / 60, 1),
                sleep_reason=c.sleep_reason,
            )
        )

    async def _run(self) -> None:
        async for event in self._events:
            if isinstance(event, StateChanged):
                await self.parental.on_state(event)
                self._publish_status()
            elif isinstance(event, QuietHoursSet):
                self.parental.controls.quiet_hours = event.window
                self._changed()
            elif isinstance(event, UsageLimitSet):
                self.parental.controls.usage_limit_minutes = event.minutes
                self._changed()
            elif isinstance(event, ButtonPressed):
                self._sleep_line()

    def _sleep_line(self) -> None:
        # the state machine ignores the press; the child still deserves an answer
        now = time.monotonic()
        if (
            self.app.state is State.SLEEPING
            and self.settings.sleep_line
            and now - self._last_sleep_line >= SLEEP_LINE_EVERY
        ):
            self._last_sleep_line = now
            self.app.bus.publish(
                SayRequested(text=self.settings.sleep_line, request_id="sleep_line")
            )
