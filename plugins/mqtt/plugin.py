"""The mqtt plugin: parent remote control, Home Assistant discovery, config push, events out."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
import uuid
from typing import Any

from toyd import App, PluginDeclaration, Service, State, Trigger, __version__, hookimpl
from toyd.events import (ButtonPressed, ConfigApplied, ConfigRejected, PersonaSet, SayRequested, StateChanged,
                         StateRequest, UpdateProgress, UpdateRequested, VolumeSet)

from . import commands, controls, discovery
from .bridge import MqttBridge, wait_event
from .commands import CommandError, ParsedCommand
from .outbox import OutboxDrain
from .parental import CONTROLS_FILE, Parental
from .receiver import PushReceiver
from .settings import BrokerSettings, MqttSettings, QuietHours

log = logging.getLogger(__name__)

INBOX_SIZE = 256
SLEEP_LINE_EVERY = 5.0  # seconds between two "it's sleep time" lines


class MqttPlugin:
    """Bridges the toy to an MQTT broker; see README.md for topics and payloads."""

    def __init__(self) -> None:
        self.app: App | None = None
        self._last_state: str | None = None
        self._last_sleep_line = 0.0
        self._say_queue: collections.deque[tuple[str, Any, float]] = collections.deque()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("device",), settings=MqttSettings,
                                 summary="Parent remote control over MQTT, Home Assistant discovery, config push")

    # --- startup ------------------------------------------------------------------------

    @hookimpl
    async def toyd_startup(self, app: App, settings: MqttSettings) -> None:
        self.app, self.settings = app, settings
        self.base = f"{settings.topic_prefix}/{app.device_id}"
        saved = await app.run_blocking(controls.load, app.state_dir / CONTROLS_FILE)
        state = saved or controls.Controls(quiet_hours=settings.quiet_hours,
                                           usage_limit_minutes=settings.usage_limit_minutes, persona=settings.persona)
        self.parental = Parental(app, state, self._dirty)
        self.receiver = PushReceiver(app, f"{self.base}/config", lambda: self.settings.max_config_bytes,
                                     on_applied=self._dirty, on_rejected=self._report_rejection)
        self._state_dirty = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[str, str, bytes, bool]] = asyncio.Queue(INBOX_SIZE)
        self._events = app.bus.subscribe("mqtt", (StateChanged, ConfigApplied, ConfigRejected, VolumeSet, PersonaSet,
                                                  ButtonPressed, UpdateProgress), maxsize=512)
        self.bridge = MqttBridge(settings, client_id=settings.client_id or f"toyd-{app.device_id}",
                                 will_topic=f"{self.base}/status", subscriptions=self._topics,
                                 on_message=self._on_message, on_connected=self._on_connected)
        await app.run_blocking(self.bridge.configure_tls)
        self.outbox = OutboxDrain(app, self.bridge, self.base)
        self.bridge.start(asyncio.get_running_loop())

    @hookimpl
    async def toyd_services(self, app: App) -> list[Service]:
        await self.receiver.apply_saved()
        c = self.parental.controls
        if c.volume is not None:  # a parent's choices survive a restart
            app.bus.publish(VolumeSet(level=min(c.volume, self.settings.max_volume)))
        if c.persona:
            app.bus.publish(PersonaSet(persona=c.persona))
        services = [Service("events", self._run_events), Service("commands", self._run_commands),
                    Service("state", self._run_state), Service("schedule", self.parental.run),
                    Service("save", self.parental.run_saver)]
        if self.outbox.enabled:
            services.append(Service("outbox", self.outbox.run))
        return services

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: MqttSettings) -> bool:
        old, self.settings = self.settings, settings
        c = self.parental.controls
        # newest instruction wins: a changed config value replaces a parent's earlier command
        if settings.quiet_hours != old.quiet_hours:
            c.quiet_hours = settings.quiet_hours
        if settings.usage_limit_minutes != old.usage_limit_minutes:
            c.usage_limit_minutes = settings.usage_limit_minutes
        if settings.persona != old.persona and settings.persona:
            app.bus.publish(PersonaSet(persona=settings.persona))
        if c.volume is not None and c.volume > settings.max_volume:
            app.bus.publish(VolumeSet(level=settings.max_volume))
        self.parental.changed.set()
        self.parental.request_save()
        self._publish_discovery()
        self._dirty()
        broker = [f.name for f in dataclasses.fields(BrokerSettings) if getattr(old, f.name) != getattr(settings, f.name)]
        if broker:
            log.warning("mqtt: %s changed; takes effect after a restart", ", ".join(broker))
        return not broker

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        await self.parental.flush()
        await app.run_blocking(self.bridge.stop, (f"{self.base}/status", "offline"))

    # --- broker side --------------------------------------------------------------------

    def _topics(self) -> list[str]:
        topics = [f"{self.base}/cmd/+", f"{self.base}/config"]
        if self.settings.discovery:
            topics.append(f"{self.settings.discovery_prefix}/status")
        return topics

    def _on_connected(self) -> None:
        self.bridge.publish_nowait(f"{self.base}/status", "online", qos=1, retain=True)
        self._publish_discovery()
        self._last_state = None  # publish the current state even if unchanged
        self._dirty()
        self.outbox.wake()

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        if topic == f"{self.settings.discovery_prefix}/status":
            if payload.strip() == b"online":  # Home Assistant (re)started: announce again
                self._publish_discovery()
            return
        if topic == f"{self.base}/config":
            kind, name = "config", topic
        elif topic.startswith(f"{self.base}/cmd/"):
            kind, name = "cmd", topic.removeprefix(f"{self.base}/cmd/")
        else:
            return
        try:
            self._inbox.put_nowait((kind, name, payload, retain))
        except asyncio.QueueFull:
            if kind == "cmd":
                self._answer(name, commands.result(False, error=f"cmd/{name}: too many commands at once; retry"))

    def _publish_discovery(self) -> None:
        if not self.settings.discovery:
            return
        s = self.settings
        personas = list(s.personas) or ([self.parental.controls.persona] if self.parental.controls.persona else [])
        payload = discovery.discovery_payload(device_id=self.app.device_id, base=self.base,  # type: ignore[union-attr]
                                              name=s.name or f"Toy {self.app.device_id}", personas=personas)  # type: ignore[union-attr]
        self.bridge.publish_nowait(discovery.discovery_topic(s.discovery_prefix, self.app.device_id),  # type: ignore[union-attr]
                                   discovery.encode(payload), qos=1, retain=True)

    def _answer(self, name: str, text: str) -> None:
        self.bridge.publish_nowait(f"{self.base}/cmd/{name}/result", text, qos=1)

    # --- state --------------------------------------------------------------------------

    @property
    def applied_version(self) -> int:
        """Version of the config push in force (0 = none)."""
        receiver = getattr(self, "receiver", None)  # pluggy inspects attributes before start-up
        return receiver.applied_version if receiver else 0

    def _dirty(self) -> None:
        self._state_dirty.set()

    def snapshot(self) -> dict[str, Any]:
        """Everything a parent's dashboard shows; published retained on ``state``."""
        app, c = self.app, self.parental.controls
        assert app is not None
        state = app.state or State.IDLE
        return {
            "state": state.value, "offline": app.offline, "cloud": "offline" if app.offline else "online",
            "volume": c.volume, "muted": state is State.MUTED, "sleeping": state is State.SLEEPING,
            "sleep_reason": c.sleep_reason or None, "persona": c.persona or None,
            "config_version": self.applied_version,
            "quiet_hours": dataclasses.asdict(c.quiet_hours) if c.quiet_hours else None,
            "usage_limit_minutes": c.usage_limit_minutes,
            "usage_today_minutes": round(self.parental.usage_seconds() / 60, 1),
            "firmware": __version__,
        }

    async def _run_state(self) -> None:
        """Coalesce: publish once a burst of changes has been quiet for the window (at most 10 windows late)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._state_dirty.wait()
            window = self.settings.state_coalesce_ms / 1000
            first = loop.time()
            while loop.time() - first < 10 * window:
                self._state_dirty.clear()
                if not await wait_event(self._state_dirty, window):
                    break
            self._state_dirty.clear()
            text = json.dumps(self.snapshot(), separators=(",", ":"))
            if text != self._last_state and self.bridge.publish_nowait(f"{self.base}/state", text, qos=1, retain=True):
                self._last_state = text

    async def _run_events(self) -> None:
        app = self.app
        assert app is not None
        async for event in self._events:
            if isinstance(event, StateChanged):
                await self.parental.on_state(event)
                if event.new is State.IDLE:
                    self._flush_say()
            elif isinstance(event, VolumeSet):
                self.parental.controls.volume = event.level
                self.parental.request_save()
            elif isinstance(event, PersonaSet):
                self.parental.controls.persona = event.persona
                self.parental.request_save()
            elif isinstance(event, ButtonPressed):
                self._sleep_line()
            elif isinstance(event, UpdateProgress):
                self.bridge.publish_nowait(f"{self.base}/event/update", json.dumps(
                    {"stage": event.stage, "percent": event.percent, "version": event.version, "error": event.error,
                     "request_id": event.request_id, "device_id": app.device_id, "time": time.time()}), qos=1)
            elif isinstance(event, ConfigApplied) and not event.source.startswith("mqtt:"):
                await self.receiver.rebase()
            elif isinstance(event, ConfigRejected) and not event.source.startswith("mqtt:") and not self.outbox.enabled:
                self.bridge.publish_nowait(f"{self.base}/event/error", json.dumps(
                    {"source": event.source, "error": event.error, "kind": "config_rejected",
                     "device_id": app.device_id, "time": time.time(), "uid": uuid.uuid4().hex}), qos=1)
            self._dirty()

    def _sleep_line(self) -> None:
        # the state machine ignores the press; the child still deserves an answer
        now = time.monotonic()
        if self.app and self.app.state is State.SLEEPING and self.settings.sleep_line \
                and now - self._last_sleep_line >= SLEEP_LINE_EVERY:
            self._last_sleep_line = now
            self.app.bus.publish(SayRequested(text=self.settings.sleep_line, request_id="sleep_line"))

    # --- commands -----------------------------------------------------------------------

    async def _run_commands(self) -> None:
        while True:
            kind, name, payload, retain = await self._inbox.get()
            if kind == "config":
                await self.receiver.handle(payload)
                continue
            try:
                if retain:
                    raise CommandError(f"cmd/{name}: retained commands are ignored; publish without the retain flag")
                cmd = commands.parse(name, payload, max_bytes=self.settings.max_payload)
                text = commands.result(True, request_id=cmd.request_id, data=await self._execute(cmd))
            except CommandError as exc:
                log.info("rejected command: %s", exc)
                text = commands.result(False, error=str(exc), request_id=exc.request_id)
            except Exception as exc:  # noqa: BLE001 - one bad command must not stop the others
                log.exception("command %s failed", name)
                text = commands.result(False, error=f"cmd/{name}: internal error: {type(exc).__name__}")
            self._answer(name, text)

    async def _execute(self, cmd: ParsedCommand) -> dict[str, Any] | None:
        app, a, rid, c = self.app, cmd.args, cmd.request_id, self.parental.controls
        assert app is not None
        if cmd.name == "volume":
            if a["level"] > self.settings.max_volume:
                raise CommandError(f"cmd/volume: level: above this toy's max_volume {self.settings.max_volume}", rid)
            app.bus.publish(VolumeSet(level=a["level"]))
        elif cmd.name == "mute":
            self._request(cmd, Trigger.MUTE if a["on"] else Trigger.UNMUTE)
        elif cmd.name in ("sleep", "wake"):
            self._request(cmd, Trigger.SLEEP if a.get("on", False) else Trigger.WAKE)
        elif cmd.name == "quiet_hours":
            c.quiet_hours = None if a.get("off") else QuietHours(a["start"], a["end"], a.get("tz", ""))
            await self._controls_changed()
        elif cmd.name == "usage_limit":
            c.usage_limit_minutes = a["minutes"]
            await self._controls_changed()
        elif cmd.name == "say":
            return self._say(a["text"], rid)
        elif cmd.name == "persona":
            if self.settings.personas and a["id"] not in self.settings.personas:
                raise CommandError(f"cmd/persona: id: unknown persona {a['id']!r}; one of: "
                                   + ", ".join(self.settings.personas), rid)
            app.bus.publish(PersonaSet(persona=a["id"]))
        elif cmd.name == "reload_config":
            error = await app.reload_config()
            if error:
                raise CommandError(f"cmd/reload_config: {error}", rid)
        elif cmd.name == "status":
            return self.snapshot()
        elif cmd.name == "update":  # the updater plugin reports on event/update
            app.bus.publish(UpdateRequested(url=a["url"], sha256=a["sha256"].lower(), version=a.get("version", ""),
                                            request_id=str(rid) if rid is not None else None))
            return {"accepted": True}
        return None

    def _request(self, cmd: ParsedCommand, trigger: Trigger) -> None:
        """Ask the state machine; refuse up front what it would refuse, accept no-ops."""
        app = self.app
        assert app is not None and app.conversation is not None
        state = app.state
        if app.conversation.machine.next_state(trigger) is None:
            already = {Trigger.SLEEP: state is State.SLEEPING, Trigger.WAKE: state is not State.SLEEPING,
                       Trigger.MUTE: state is State.MUTED, Trigger.UNMUTE: state is not State.MUTED}
            if already.get(trigger):
                return
            raise CommandError(f"cmd/{cmd.name}: cannot {trigger.value} while {state.value}", cmd.request_id)  # type: ignore[union-attr]
        app.bus.publish(StateRequest(trigger=trigger, cause="parent"))

    async def _controls_changed(self) -> None:
        self.parental.changed.set()
        self.parental.request_save()
        self._dirty()

    def _say(self, text: str, request_id: Any) -> dict[str, Any]:
        """Speak now if idle; mid-conversation, wait politely for the next IDLE."""
        app = self.app
        assert app is not None
        if app.state is State.IDLE:
            app.bus.publish(SayRequested(text=text, request_id=str(request_id) if request_id is not None else None))
            return {"queued": False}
        if app.state not in (State.LISTENING, State.THINKING, State.SPEAKING):
            raise CommandError(f"cmd/say: the toy is {app.state.value}; wake it first", request_id)  # type: ignore[union-attr]
        if len(self._say_queue) >= self.settings.say_queue:
            raise CommandError(f"cmd/say: {len(self._say_queue)} messages are already waiting; try later", request_id)
        self._say_queue.append((text, request_id, time.monotonic() + self.settings.say_max_wait))
        return {"queued": True}

    def _flush_say(self) -> None:
        now = time.monotonic()
        while self._say_queue and self.app is not None:
            text, request_id, deadline = self._say_queue.popleft()
            if now > deadline:
                log.info("dropped a parent message that waited more than %.0f s", self.settings.say_max_wait)
                continue
            self.app.bus.publish(SayRequested(text=text, request_id=str(request_id) if request_id is not None else None))

    # --- events out ---------------------------------------------------------------------

    def _report_rejection(self, source: str, error: str, details: dict[str, Any] | None = None) -> None:
        """ConfigRejected on the bus; the core's recorder puts it in the outbox for ``event/error``.

        Without an outbox (it could not be opened) the error is published directly, in the
        recorder's shape, so parents still see it.
        """
        assert self.app is not None
        self.app.bus.publish(ConfigRejected(source=source, error=error))
        if self.outbox.enabled:
            return
        body = {"source": source, "error": error, "kind": "config_rejected", "device_id": self.app.device_id,
                "time": time.time(), **(details or {}), "uid": uuid.uuid4().hex}
        self.bridge.publish_nowait(f"{self.base}/event/error", json.dumps(body, separators=(",", ":")), qos=1)
