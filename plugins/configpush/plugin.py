"""configpush: publishes each toy's config, kept as YAML files, retained on ``<prefix>/<id>/config``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from toyd import App, ConfigError, PluginDeclaration, Service, hookimpl, setting
from toyd.config import parse_yaml
from toyd.mqtt import BrokerSettings
from toyd.mqtt.bridge import MqttBridge, wait_event

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConfigPushSettings(BrokerSettings):
    """Settings of the ``configpush`` section (cloud role)."""

    dir: str = setting(
        "/etc/toyd/toys", doc="Folder of per-toy configs: <dir>/<device_id>.yaml with a version."
    )
    poll_interval: float = setting(
        2.0, min=0.05, max=3600, doc="Seconds between checks for changed files."
    )


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """One toy's file: its version and the overlay to push."""

    device_id: str
    version: int
    config: dict[str, Any]
    mtime: float

    def payload(self) -> str:
        return json.dumps({"version": self.version, "config": self.config}, separators=(",", ":"))


def read_toy(path: Path) -> ToyConfig:
    """Read ``<device_id>.yaml``; ConfigError names the file, line and key."""
    source = str(path)
    mtime = path.stat().st_mtime
    parsed = parse_yaml(path.read_text(encoding="utf-8"), source)
    data = parsed.data or {}
    if not isinstance(data, dict):
        raise ConfigError("a toy config must be a mapping with a version", source=source)
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(
            "expected a whole number of at least 1; raise it on every edit",
            source=source,
            line=parsed.line("version"),
            path="version",
            value=version,
            has_value=True,
        )
    config = {k: v for k, v in data.items() if k != "version"}
    json.dumps(config)  # YAML dates and the like cannot travel as JSON
    return ToyConfig(path.stem, version, config, mtime)


def scan(folder: Path) -> dict[str, float]:
    """``device_id -> mtime`` of every ``*.yaml`` in the folder."""
    try:
        return {p.stem: p.stat().st_mtime for p in folder.glob("*.yaml") if p.is_file()}
    except OSError:
        return {}


class ConfigPushPlugin:
    """Keeps one retained config message per toy in step with its file."""

    def __init__(self) -> None:
        self.published: dict[str, int] = {}  # device_id -> version on the broker
        self.results: dict[str, dict[str, Any]] = {}  # device_id -> the toy's last answer
        self._seen: dict[str, float] = {}

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=ConfigPushSettings,
            summary="Pushes per-toy config (YAML folder) to toys over MQTT, retained and versioned",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: ConfigPushSettings) -> None:
        self.app, self.settings = app, settings
        self.folder = Path(settings.dir).expanduser()  # noqa: ASYNC240 - no I/O: only $HOME
        self._connected = asyncio.Event()
        self.bridge = MqttBridge(
            settings,
            client_id=settings.client_id or f"toyd-configpush-{app.device_id}",
            subscriptions=lambda: [f"{self.settings.topic_prefix}/+/config/result"],
            on_message=self._on_result,
            on_connected=self._on_connected,
        )
        await self.bridge.start(after=app.ready)
        if not await app.run_blocking(self.folder.is_dir):
            log.warning(
                "configpush: folder %s does not exist yet; toys get their config once it does",
                self.folder,
            )

    def _on_result(self, topic: str, payload: bytes, retain: bool) -> None:
        """A toy's answer to its config: applied, pending (needs its restart) or refused."""
        device_id = topic.removeprefix(f"{self.settings.topic_prefix}/").partition("/")[0]
        try:
            result = json.loads(payload.decode("utf-8"))
            if not isinstance(result, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            log.warning("configpush: %s: unreadable config result on %s: %s", device_id, topic, exc)
            return
        self.results[device_id] = result
        if result.get("result") == "refused":
            log.warning(
                "configpush: %s refused config version %s: %s",
                device_id,
                result.get("version"),
                result.get("error"),
            )
        elif result.get("result") == "pending":
            log.info(
                "configpush: %s saved config version %s; %s take effect at its next start",
                device_id,
                result.get("version"),
                ", ".join(map(str, result.get("restart") or [])),
            )
        else:
            log.info("configpush: %s applied config version %s", device_id, result.get("version"))

    def _on_connected(self) -> None:
        self._seen.clear()  # publish everything again: the broker may have lost retained messages
        self._connected.set()

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("publish", self._run)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: ConfigPushSettings) -> bool:
        broker = [
            f.name
            for f in dataclasses.fields(BrokerSettings)
            if getattr(self.settings, f.name) != getattr(settings, f.name)
        ]
        self.settings, self.folder = settings, Path(settings.dir).expanduser()
        self._seen.clear()
        return not broker

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        await self.bridge.stop()

    async def _run(self) -> None:
        """Poll mtimes; publish new and changed files; clear the message of a deleted file."""
        while True:
            if self.bridge.connected:
                await self.sync()
            await wait_event(self._connected, self.settings.poll_interval)
            self._connected.clear()

    async def sync(self) -> None:
        """One pass over the folder."""
        app = self.app
        now = await app.run_blocking(scan, self.folder)
        for device_id, mtime in now.items():
            if self._seen.get(device_id) == mtime:
                continue
            try:
                toy = await app.run_blocking(read_toy, self.folder / f"{device_id}.yaml")
            except (ConfigError, OSError, TypeError, ValueError) as exc:
                # the retained message on the broker stays: toys keep the last good config
                log.error("configpush: %s: not published: %s", device_id, exc)
                self._seen[device_id] = mtime
                continue
            if await self._publish(device_id, toy.payload()):
                self._seen[device_id] = mtime
                self.published[device_id] = toy.version
                log.info("configpush: published %s version %d", device_id, toy.version)
        for device_id in set(self.published) - set(now):
            if await self._publish(device_id, b""):  # an empty retained message deletes it
                del self.published[device_id]
                self._seen.pop(device_id, None)
                log.info("configpush: %s config file removed; retained message cleared", device_id)

    async def _publish(self, device_id: str, payload: str | bytes) -> bool:
        topic = f"{self.settings.topic_prefix}/{device_id}/config"
        try:
            async with asyncio.timeout(10):
                await self.bridge.publish(topic, payload, qos=1, retain=True)
        except Exception as exc:  # noqa: BLE001 - retried on the next pass
            log.debug("configpush: %s not published yet: %s", topic, exc)
            return False
        return True
