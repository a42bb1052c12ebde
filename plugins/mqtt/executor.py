"""Parent commands carried out: each parsed ``cmd/<name>`` becomes an event or a state request.

Apart from the plugin (which owns the broker, the inbox and the answers) so that what a
command *does* reads in one place. Quiet hours and the daily limit go to the parental
plugin as events; ``say`` waits for the next IDLE when the toy is mid-conversation.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from toyd import App, State, Trigger
from toyd.events import (
    PersonaSet,
    QuietHoursSet,
    SayRequested,
    StateRequest,
    UpdateRequested,
    UsageLimitSet,
    VolumeSet,
)
from toyd.quiet_hours import QuietHours

from .commands import CommandError, ParsedCommand
from .settings import MqttSettings

log = logging.getLogger(__name__)


class CommandExecutor:
    """Runs commands for one toy; ``settings`` is read at each call (a reload may change it)."""

    def __init__(
        self,
        app: App,
        settings: Callable[[], MqttSettings],
        snapshot: Callable[[], dict[str, Any]],
    ) -> None:
        self.app, self.settings, self.snapshot = app, settings, snapshot
        self._say_queue: collections.deque[tuple[str, Any, float]] = collections.deque()

    async def execute(self, cmd: ParsedCommand) -> dict[str, Any] | None:
        """Carry out one parsed command; its result data (None = nothing to add)."""
        app, a, rid, s = self.app, cmd.args, cmd.request_id, self.settings()
        if cmd.name == "volume":
            if a["level"] > s.max_volume:
                raise CommandError(
                    f"cmd/volume: level: above this toy's max_volume {s.max_volume}",
                    rid,
                )
            app.bus.publish(VolumeSet(level=a["level"]))
        elif cmd.name == "mute":
            self._request(cmd, Trigger.MUTE if a["on"] else Trigger.UNMUTE)
        elif cmd.name in ("sleep", "wake"):
            self._request(cmd, Trigger.SLEEP if a.get("on", False) else Trigger.WAKE)
        elif cmd.name == "quiet_hours":
            self._need_parental(cmd)
            app.bus.publish(
                QuietHoursSet(
                    window=None
                    if a.get("off")
                    else QuietHours(a["start"], a["end"], a.get("tz", ""))
                )
            )
        elif cmd.name == "usage_limit":
            self._need_parental(cmd)
            app.bus.publish(UsageLimitSet(minutes=a["minutes"]))
        elif cmd.name == "say":
            return self.say(a["text"], rid)
        elif cmd.name == "persona":
            if s.personas and a["id"] not in s.personas:
                raise CommandError(
                    f"cmd/persona: id: unknown persona {a['id']!r}; one of: "
                    + ", ".join(s.personas),
                    rid,
                )
            app.bus.publish(PersonaSet(persona=a["id"]))
        elif cmd.name == "reload_config":
            error = await app.reload_config()
            if error:
                raise CommandError(f"cmd/reload_config: {error}", rid)
        elif cmd.name == "status":
            return self.snapshot()
        elif cmd.name == "update":  # the updater plugin reports on event/update
            app.bus.publish(
                UpdateRequested(
                    url=a["url"],
                    sha256=a["sha256"].lower(),
                    version=a.get("version", ""),
                    request_id=str(rid) if rid is not None else None,
                )
            )
            return {"accepted": True}
        return None

    def _request(self, cmd: ParsedCommand, trigger: Trigger) -> None:
        """Ask the state machine; refuse up front what it would refuse, accept no-ops."""
        app = self.app
        assert app.conversation is not None
        state = app.state
        if app.conversation.machine.next_state(trigger) is None:
            already = {
                Trigger.SLEEP: state is State.SLEEPING,
                Trigger.WAKE: state is not State.SLEEPING,
                Trigger.MUTE: state is State.MUTED,
                Trigger.UNMUTE: state is not State.MUTED,
            }
            if already.get(trigger):
                return
            raise CommandError(
                f"cmd/{cmd.name}: cannot {trigger.value} while {state.value}", cmd.request_id
            )  # type: ignore[union-attr]
        app.bus.publish(StateRequest(trigger=trigger, cause="parent"))

    def _need_parental(self, cmd: ParsedCommand) -> None:
        """Quiet hours and limits are enforced by the parental plugin; without it, say so."""
        if "parental" not in self.app.host.plugins:
            raise CommandError(
                f"cmd/{cmd.name}: parental controls are not enabled on this toy "
                "(add parental to plugins)",
                cmd.request_id,
            )

    def say(self, text: str, request_id: Any) -> dict[str, Any]:
        """Speak now if idle; mid-conversation, wait politely for the next IDLE."""
        app, s = self.app, self.settings()
        if app.state is State.IDLE:
            app.bus.publish(
                SayRequested(
                    text=text, request_id=str(request_id) if request_id is not None else None
                )
            )
            return {"queued": False}
        if app.state not in (State.LISTENING, State.THINKING, State.SPEAKING):
            raise CommandError(f"cmd/say: the toy is {app.state.value}; wake it first", request_id)  # type: ignore[union-attr]
        if len(self._say_queue) >= s.say_queue:
            raise CommandError(
                f"cmd/say: {len(self._say_queue)} messages are already waiting; try later",
                request_id,
            )
        self._say_queue.append((text, request_id, time.monotonic() + s.say_max_wait))
        return {"queued": True}

    def flush_say(self) -> None:
        """The toy is idle again: say what parents sent meanwhile (unless it waited too long)."""
        now = time.monotonic()
        while self._say_queue:
            text, request_id, deadline = self._say_queue.popleft()
            if now > deadline:
                log.info(
                    "dropped a parent message that waited more than %.0f s",
                    self.settings().say_max_wait,
                )
                continue
            self.app.bus.publish(
                SayRequested(
                    text=text, request_id=str(request_id) if request_id is not None else None
                )
            )
