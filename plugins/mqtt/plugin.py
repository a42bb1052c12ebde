"""The mqtt plugin: parent remote control, Home Assistant discovery, config push, events out.

Quiet hours and the daily limit are the parental plugin's: commands for them become
``QuietHoursSet``/``UsageLimitSet`` events, and its ``ParentalStatus`` goes into ``state``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from typing import Any

from toyd import App, PluginDeclaration, Service, State, __version__, hookimpl
from toyd.events import (
    ConfigApplied,
    ConfigRejected,
    ParentalStatus,
    PersonaSet,
    StateChanged,
    UpdateProgress,
    VolumeSet,
)
from toyd.mqtt.bridge import MqttBridge, wait_event

from . import choices, commands, discovery
from .commands import CommandError
from .config_push import ConfigPushHandler
from .executor import CommandExecutor
from .outbox import OutboxDrain
from .settings import BrokerSettings, MqttSettings

log = logging.getLogger(__name__)

INBOX_SIZE = 256
SAVE_EVERY = 0.5  # seconds: fsync on an SD card is slow and wears it


class MqttPlugin:
    """Bridges the toy to an MQTT broker; see README.md for topics and payloads."""

    def __init__(self) -> None:
        self.app: App | None = None
        self._last_state: str | None = None
        self._parental = ParentalStatus()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=MqttSettings,
            summary="Parent remote control over MQTT, Home Assistant discovery, config push",
        )

    # --- startup ------------------------------------------------------------------------

    @hookimpl
    async def toyd_startup(self, app: App, settings: MqttSettings) -> None:
        self.app, self.settings = app, settings
        self.base = f"{settings.topic_prefix}/{app.device_id}"
        self.choices = await app.run_blocking(choices.load, app.state_dir) or choices.Choices(
            persona=settings.persona
        )
        self.config_push = ConfigPushHandler(
            app,
            f"{self.base}/config",
            lambda: self.settings.max_config_bytes,
            on_applied=self._dirty,
            on_rejected=self._report_rejection,
            on_result=self._publish_push_result,
        )
        self.executor = CommandExecutor(app, lambda: self.settings, self.snapshot)
        self._state_dirty = asyncio.Event()
        self._choices_dirty = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[str, str, bytes, bool]] = asyncio.Queue(INBOX_SIZE)
        self._events = app.bus.subscribe(
            "mqtt",
            (
                StateChanged,
                ConfigApplied,
                ConfigRejected,
                VolumeSet,
                PersonaSet,
                ParentalStatus,
                UpdateProgress,
            ),
            maxsize=512,
        )
        self.bridge = MqttBridge(
            settings,
            client_id=settings.client_id or f"toyd-{app.device_id}",
            will_topic=f"{self.base}/status",
            subscriptions=self._topics,
            on_message=self._on_message,
            on_connected=self._on_connected,
        )
        self.outbox = OutboxDrain(app, self.bridge, self.base)
        await self.bridge.start(after=app.ready)

    @hookimpl
    async def toyd_services(self, app: App) -> list[Service]:
        await self.config_push.apply_saved()
        c = self.choices
        if c.volume is not None:  # a parent's choices survive a restart
            app.bus.publish(VolumeSet(level=min(c.volume, self.settings.max_volume)))
        if c.persona:
            app.bus.publish(PersonaSet(persona=c.persona))
        services = [
            Service("events", self._run_events),
            Service("commands", self._run_commands),
            Service("state", self._run_state),
            Service("save", self._run_saver),
        ]
        if self.outbox.enabled:
            services.append(Service("outbox", self.outbox.run))
        return services

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: MqttSettings) -> bool:
        old, self.settings = self.settings, settings
        c = self.choices
        if settings.persona != old.persona and settings.persona:
            app.bus.publish(PersonaSet(persona=settings.persona))
        if c.volume is not None and c.volume > settings.max_volume:
            app.bus.publish(VolumeSet(level=settings.max_volume))
        self._publish_discovery()
        self._dirty()
        broker = [
            f.name
            for f in dataclasses.fields(BrokerSettings)
            if getattr(old, f.name) != getattr(settings, f.name)
        ]
        if broker:
            log.warning("mqtt: %s changed; takes effect after a restart", ", ".join(broker))
        return not broker

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        if self._choices_dirty.is_set():
            await app.run_blocking(choices.save, app.state_dir, self.choices)
        await self.bridge.stop((f"{self.base}/status", "offline"))

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
                self._answer(
                    name,
                    commands.result(False, error=f"cmd/{name}: too many commands at once; retry"),
                )

    def _publish_discovery(self) -> None:
        if not self.settings.discovery:
            return
        s = self.settings
        personas = list(s.personas) or ([self.choices.persona] if self.choices.persona else [])
        payload = discovery.discovery_payload(
            device_id=self.app.device_id,
            base=self.base,  # type: ignore[union-attr]
            name=s.name or f"Toy {self.app.device_id}",
            personas=personas,
        )  # type: ignore[union-attr]
        self.bridge.publish_nowait(
            discovery.discovery_topic(s.discovery_prefix, self.app.device_id),  # type: ignore[union-attr]
            discovery.encode(payload),
            qos=1,
            retain=True,
        )

    def _publish_push_result(self, result: dict[str, Any]) -> None:
        """The answer to a config push, retained so the cloud sees it even if it starts later."""
        self.bridge.publish_nowait(
            f"{self.base}/config/result",
            json.dumps(result, separators=(",", ":")),
            qos=1,
            retain=True,
        )

    def _answer(self, name: str, text: str) -> None:
        self.bridge.publish_nowait(f"{self.base}/cmd/{name}/result", text, qos=1)

    # --- state --------------------------------------------------------------------------

    @property
    def applied_version(self) -> int:
        """Version of the config push in force (0 = none)."""
        config_push = getattr(
            self, "config_push", None
        )  # pluggy inspects attributes before start-up
        return config_push.applied_version if config_push else 0

    def _dirty(self) -> None:
        self._state_dirty.set()

    def snapshot(self) -> dict[str, Any]:
        """Everything a parent's dashboard shows; published retained on ``state``."""
        app, c, p = self.app, self.choices, self._parental
        assert app is not None
        state = app.state or State.IDLE
        return {
            "state": state.value,
            "offline": app.offline,
            "cloud": "offline" if app.offline else "online",
            "volume": c.volume,
            "muted": state is State.MUTED,
            "sleeping": state is State.SLEEPING,
            "sleep_reason": p.sleep_reason or None,
            "persona": c.persona or None,
            "config_version": self.applied_version,
            "quiet_hours": dataclasses.asdict(p.quiet_hours) if p.quiet_hours else None,
            "usage_limit_minutes": p.usage_limit_minutes,
            "usage_today_minutes": p.usage_today_minutes,
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
            if text != self._last_state and self.bridge.publish_nowait(
                f"{self.base}/state", text, qos=1, retain=True
            ):
                self._last_state = text

    async def _run_events(self) -> None:
        app = self.app
        assert app is not None
        async for event in self._events:
            if isinstance(event, StateChanged):
                if event.new is State.IDLE:
                    self.executor.flush_say()
            elif isinstance(event, ParentalStatus):
                self._parental = event
            elif isinstance(event, (VolumeSet, PersonaSet)):
                if isinstance(event, VolumeSet):
                    self.choices.volume = event.level
                else:
                    self.choices.persona = event.persona
                self._choices_dirty.set()
            elif isinstance(event, UpdateProgress):
                self.bridge.publish_nowait(
                    f"{self.base}/event/update",
                    json.dumps(
                        {
                            "stage": event.stage,
                            "percent": event.percent,
                            "version": event.version,
                            "error": event.error,
                            "request_id": event.request_id,
                            "device_id": app.device_id,
                            "time": time.time(),
                        }
                    ),
                    qos=1,
                )
            elif isinstance(event, ConfigApplied) and not event.source.startswith("mqtt:"):
                await self.config_push.rebase()
            elif (
                isinstance(event, ConfigRejected)
                and not event.source.startswith("mqtt:")
                and not self.outbox.enabled
            ):
                self.bridge.publish_nowait(
                    f"{self.base}/event/error",
                    json.dumps(
                        {
                            "source": event.source,
                            "error": event.error,
                            "kind": "config_rejected",
                            "device_id": app.device_id,
                            "time": time.time(),
                            "uid": uuid.uuid4().hex,
                        }
                    ),
                    qos=1,
                )
            self._dirty()

    async def _run_saver(self) -> None:
        """Save the parent's choices at most every SAVE_EVERY s: a burst of changes is one write."""
        assert self.app is not None
        while True:
            await self._choices_dirty.wait()
            self._choices_dirty.clear()
            try:
                await self.app.run_blocking(choices.save, self.app.state_dir, self.choices)
            except OSError as exc:
                log.warning("cannot save the parent's volume/persona: %s", exc.strerror)
            await asyncio.sleep(SAVE_EVERY)

    # --- commands -----------------------------------------------------------------------

    async def _run_commands(self) -> None:
        while True:
            kind, name, payload, retain = await self._inbox.get()
            if kind == "config":
                await self.config_push.handle(payload)
                continue
            try:
                if retain:
                    raise CommandError(
                        f"cmd/{name}: retained commands are ignored; publish without the retain flag"
                    )
                cmd = commands.parse(name, payload, max_bytes=self.settings.max_payload)
                text = commands.result(
                    True, request_id=cmd.request_id, data=await self.executor.execute(cmd)
                )
            except CommandError as exc:
                log.info("rejected command: %s", exc)
                text = commands.result(False, error=str(exc), request_id=exc.request_id)
            except Exception as exc:  # noqa: BLE001 - one bad command must not stop the others
                log.exception("command %s failed", name)
                text = commands.result(
                    False, error=f"cmd/{name}: internal error: {type(exc).__name__}"
                )
            self._answer(name, text)

    # --- events out ---------------------------------------------------------------------

    def _report_rejection(
        self, source: str, error: str, details: dict[str, Any] | None = None
    ) -> None:
        """ConfigRejected on the bus; the core's recorder puts it in the outbox for ``event/error``.

        Without an outbox (it could not be opened) the error is published directly, in the
        recorder's shape, so parents still see it.
        """
        assert self.app is not None
        self.app.bus.publish(ConfigRejected(source=source, error=error))
        if self.outbox.enabled:
            return
        body = {
            "source": source,
            "error": error,
            "kind": "config_rejected",
            "device_id": self.app.device_id,
            "time": time.time(),
            **(details or {}),
            "uid": uuid.uuid4().hex,
        }
        self.bridge.publish_nowait(
            f"{self.base}/event/error", json.dumps(body, separators=(",", ":")), qos=1
        )
