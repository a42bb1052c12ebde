"""Quiet hours and the daily usage limit, enforced through the state machine.

The scheduler never changes state itself: it publishes ``StateRequest(SLEEP)`` when quiet
hours begin or the day's talking time is used up (at the end of the current turn), and
``StateRequest(WAKE)`` when quiet hours end or a new day starts, but only if it was the
one that put the toy to sleep: a parent's own "sleep" is never undone by the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from toyd import App, State, Trigger
from toyd.events import StateChanged, StateRequest
from toyd.quiet_hours import in_quiet_hours, next_boundary
from toyd.statedir import write_atomic

from .controls import CONTROLS_FILE, Controls

log = logging.getLogger(__name__)

ACTIVE = frozenset({State.LISTENING, State.THINKING, State.SPEAKING})
SAVE_EVERY = 0.5  # seconds


class Parental:
    """Owns :class:`Controls`: counts usage, runs the quiet-hours / limit scheduler, saves."""

    def __init__(
        self,
        app: App,
        controls: Controls,
        on_change: Callable[[], None],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.app = app
        self.controls = controls
        self.on_change = on_change
        self.clock = clock
        self.path: Path = app.state_dir / CONTROLS_FILE
        self.changed = asyncio.Event()
        self._quiet: bool | None = None
        self._active_since: float | None = None
        self._save_lock = asyncio.Lock()
        self._save_wanted = asyncio.Event()

    # --- usage ----------------------------------------------------------------------------

    def usage_seconds(self) -> float:
        """Talking time today, including the turn in progress."""
        running = time.monotonic() - self._active_since if self._active_since is not None else 0.0
        return self.controls.usage_seconds + running

    async def on_state(self, event: StateChanged) -> None:
        """Count LISTENING/THINKING/SPEAKING time; note why the toy sleeps; check the limit."""
        c = self.controls
        if event.new in ACTIVE and self._active_since is None:
            self._active_since = time.monotonic()
        elif event.new not in ACTIVE and self._active_since is not None:
            c.roll_day(self.clock())
            c.usage_seconds += time.monotonic() - self._active_since
            self._active_since = None
        if event.new is State.SLEEPING and event.old is not State.SLEEPING:
            c.sleep_reason = (
                event.cause if event.cause in ("quiet_hours", "usage_limit") else "parent"
            )
        elif event.new is not State.SLEEPING:
            c.sleep_reason = ""
        self.check_limit()
        self.request_save()

    def check_limit(self) -> None:
        """Sleep at the end of a turn once the limit is reached; wake if it was lifted."""
        state, c = self.app.state, self.controls
        if c.limit_reached() and state is State.IDLE:
            log.info(
                "daily usage limit of %d minutes reached; sleeping until tomorrow",
                c.usage_limit_minutes,
            )
            self.request(Trigger.SLEEP, "usage_limit")
        elif not c.limit_reached() and state is State.SLEEPING and c.sleep_reason == "usage_limit":
            self.request(Trigger.WAKE, "usage_limit_lifted")

    # --- scheduler --------------------------------------------------------------------------

    def evaluate(self) -> None:
        """Apply the clock: new day, quiet hours starting or ending, the usage limit."""
        now, c, state = self.clock(), self.controls, self.app.state
        if c.roll_day(now):
            self.request_save()
        quiet = c.quiet_hours is not None and in_quiet_hours(c.quiet_hours, now)
        if quiet != self._quiet:
            if quiet and state is not State.SLEEPING:
                log.info("quiet hours %s-%s began", c.quiet_hours.start, c.quiet_hours.end)  # type: ignore[union-attr]
                self.request(Trigger.SLEEP, "quiet_hours")
            elif not quiet and state is State.SLEEPING and c.sleep_reason == "quiet_hours":
                log.info("quiet hours ended")
                self.request(Trigger.WAKE, "quiet_hours_end")
            self._quiet = quiet
        if not quiet:
            self.check_limit()

    async def run(self) -> None:
        """Evaluate at every boundary (quiet start/end, midnight) and whenever controls change."""
        while True:
            self.evaluate()
            now = self.clock()
            delay = (next_boundary(self.controls.quiet_hours, now) - now).total_seconds()
            self.changed.clear()
            # capped: a wall-clock jump (NTP sync at boot) is noticed within a minute
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(delay, 0.0) + 0.05, 60.0)):
                    await self.changed.wait()

    def request(self, trigger: Trigger, cause: str) -> None:
        """Ask the state machine; it alone decides."""
        self.app.bus.publish(StateRequest(trigger=trigger, cause=cause))
        self.on_change()

    # --- persistence ------------------------------------------------------------------------

    def request_save(self) -> None:
        """Mark the controls changed; the saver writes them soon (a burst is one write)."""
        self._save_wanted.set()

    async def run_saver(self) -> None:
        """Write at most every SAVE_EVERY seconds: fsync on an SD card is slow and wears it."""
        while True:
            await self._save_wanted.wait()
            await self.flush()
            await asyncio.sleep(SAVE_EVERY)

    async def flush(self) -> None:
        """Write now if anything changed; the snapshot is taken under the lock, so the newest lands last."""
        async with self._save_lock:
            if not self._save_wanted.is_set():
                return
            self._save_wanted.clear()
            text = json.dumps(self.controls.to_json(), indent=1)
            try:
                await self.app.run_blocking(write_atomic, self.path, text)
            except OSError as exc:
                log.warning("cannot save %s: %s", self.path, exc.strerror)
