"""The ``activation_server`` plugin (cloud role): toys get their token without anyone typing it.

Serves the OTA/activation endpoint (``http.py``), takes parents' claims over MQTT
(``claims.py``) and from ``toyd cloud claim``, answers the gateway's ``toyd_authenticate``
from the store, and tells the gateway when a toy's token is revoked (``DeviceRevoked``) so
its session ends at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web
from toyd_plugins.mqtt.bridge import MqttBridge
from toyd_plugins.mqtt.settings import BrokerSettings

from toyd import App, PluginDeclaration, Service, hookimpl, setting
from toyd.events import DeviceRevoked
from toyd.plugin import CliCommand

from . import claims, command
from .http import OtaEndpoint
from .store import ActivationRefused, ActivationStore, Limits

log = logging.getLogger(__name__)
DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REVOKE_POLL = 2.0  # seconds between looks for revocations made by `toyd cloud revoke`


@dataclasses.dataclass(frozen=True)
class ActivationServerSettings:
    """Settings of the ``activation_server`` section."""

    host: str = setting(
        "127.0.0.1", doc="Address of the HTTP endpoint; 0.0.0.0 for every interface."
    )
    port: int = setting(
        8766, min=0, max=65535, doc="TCP port of the HTTP endpoint (0 = any free port)."
    )
    path: str = setting(
        "/toyd/ota/", doc="OTA URL path; toys POST board info here and poll <path>activate."
    )
    websocket_url: str = setting(
        "ws://127.0.0.1:8765/", doc="The gateway URL handed to toys (ws:// or wss://)."
    )
    db: str = setting(
        "activation.sqlite", doc="SQLite file of codes and tokens (relative = in state_dir)."
    )
    code_ttl: float = setting(
        600.0, min=30, max=86400, doc="Seconds an activation code stays valid."
    )
    codes_per_toy_per_hour: int = setting(
        6, min=1, max=1000, doc="New codes one device id may ask for per hour."
    )
    requests_per_minute: float = setting(
        10.0, min=0.1, max=10000, doc="Board-info POSTs per client address and minute."
    )
    polls_per_minute: float = setting(
        30.0, min=0.1, max=10000, doc="Activation polls per client address and minute."
    )
    burst: int = setting(
        5,
        min=1,
        max=1000,
        doc="Requests a client address may make at once before the rate applies.",
    )
    failed_claims_per_source: int = setting(
        5, min=1, max=1000, doc="Wrong codes one claimer (MQTT, CLI) may try per window."
    )
    failed_claims_global: int = setting(
        20, min=1, max=10000, doc="Wrong codes all claimers together may try per window."
    )
    failed_claim_window: float = setting(
        600.0, min=10, max=86400, doc="Seconds over which wrong codes are counted."
    )
    message: str = setting(
        "To set me up, a grown-up enters the code {code}.",
        doc="What the toy says; {code} becomes the digits.",
    )
    license_keys: Mapping[str, str] = setting(
        factory=dict,
        doc="device_id -> licence key: its HMAC must use it "
        "(unset = the empty key, as xiaozhi-sdk sends by default).",
    )
    trust_forwarded_for: bool = setting(
        False, doc="Take the client address from X-Forwarded-For (behind a proxy only)."
    )
    mqtt_claims: bool = setting(
        False, doc="Take claims and revocations over MQTT (topics in docs/activation.md)."
    )
    mqtt: BrokerSettings = setting(factory=BrokerSettings, doc="Broker for MQTT claims.")
    default_owner: str = setting(
        "home", doc="Owner of a toy claimed with a bare code (Home Assistant text box)."
    )
    ha_discovery: bool = setting(
        True, doc="Announce the claim text box to Home Assistant (MQTT discovery)."
    )
    discovery_prefix: str = setting("homeassistant", doc="Home Assistant's discovery topic prefix.")

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or not self.path.endswith("/"):
            raise ValueError(f"path must start and end with / (got {self.path!r})")
        if not self.websocket_url.startswith(("ws://", "wss://")):
            raise ValueError(
                f"websocket_url must start with ws:// or wss:// (got {self.websocket_url!r})"
            )
        if "{code}" not in self.message:
            raise ValueError("message must contain {code}")
        if self.failed_claims_global < self.failed_claims_per_source:
            raise ValueError("failed_claims_global must be at least failed_claims_per_source")

    def limits(self) -> Limits:
        return Limits(
            code_ttl=self.code_ttl,
            codes_per_toy_per_hour=self.codes_per_toy_per_hour,
            failed_claims_per_source=self.failed_claims_per_source,
            failed_claims_global=self.failed_claims_global,
            failed_claim_window=self.failed_claim_window,
        )


def db_path(settings: ActivationServerSettings, state_dir: Path) -> Path:
    path = Path(settings.db).expanduser()
    return path if path.is_absolute() else state_dir / path


class ActivationServerPlugin:
    """HTTP endpoint + claims + token checks, around one :class:`ActivationStore`."""

    def __init__(self) -> None:
        self.store: ActivationStore | None = None
        self.endpoint: OtaEndpoint | None = None
        self.bridge: MqttBridge | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=ActivationServerSettings,
            summary="Activation of new toys: codes, parents' claims, per-toy tokens",
        )

    @hookimpl
    def toyd_cli_commands(self) -> list[CliCommand]:
        return command.commands()

    @hookimpl
    async def toyd_startup(self, app: App, settings: ActivationServerSettings) -> None:
        self.app, self.settings = app, settings
        self.store = await app.run_blocking(
            ActivationStore, db_path(settings, app.state_dir), settings.limits()
        )
        self.endpoint = OtaEndpoint(
            self.store, settings, app.run_blocking, self.authenticate, DEVICE_ID.match
        )
        self._runner = web.AppRunner(self.endpoint.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("activation endpoint on http://%s:%d%s", settings.host, self.port, settings.path)
        if settings.mqtt_claims:
            s = settings.mqtt
            t = claims.topics(s.topic_prefix)
            self.bridge = MqttBridge(
                s,
                client_id=s.client_id or f"toyd-activation-{app.device_id}",
                will_topic=None,
                subscriptions=lambda: [t["claim"], t["revoke"]],
                on_message=self._on_message,
                on_connected=self._announce,
            )
            await app.run_blocking(self.bridge.configure_tls)
            self.bridge.start(asyncio.get_running_loop())

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("revocations", self._watch_revocations)]

    @hookimpl
    async def toyd_authenticate(self, device_id: str, token: str) -> bool | None:
        """True for a toy's live activation token; None (ask the next plugin) otherwise."""
        return True if await self.authenticate(device_id, token) else None

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        if self.bridge is not None:
            await app.run_blocking(self.bridge.stop)
        if self._runner is not None:
            await self._runner.cleanup()

    async def authenticate(self, device_id: str, token: str) -> bool:
        assert self.store is not None
        return await self.app.run_blocking(self.store.authenticate, device_id, token)

    async def _watch_revocations(self) -> None:
        """Revocations by any path (CLI in another process too) end the toy's session."""
        assert self.store is not None
        since = time.time()
        while True:
            await asyncio.sleep(REVOKE_POLL)
            now = time.time()
            for device_id in await self.app.run_blocking(self.store.revoked_since, since):
                log.info("activation: %s revoked; ending its session", device_id)
                self.app.bus.publish(DeviceRevoked(device_id=device_id))
            since = now

    # --- MQTT claims ---------------------------------------------------------------------------

    def _announce(self) -> None:
        if self.settings.ha_discovery and self.bridge is not None:
            s = self.settings
            for topic, config in claims.discovery(
                s.mqtt.topic_prefix, s.discovery_prefix, self.app.device_id
            ).items():
                self.bridge.publish_nowait(topic, json.dumps(config), qos=1, retain=True)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        t = claims.topics(self.settings.mqtt.topic_prefix)
        action = "claim" if topic == t["claim"] else "revoke" if topic == t["revoke"] else None
        if action is None or retained:
            return  # a retained claim would replay on every restart: ignore it
        self.app.spawn(
            self._handle(claims.parse(action, payload, self.settings.default_owner), topic),
            f"activation:{action}",
        )

    async def _handle(self, cmd: claims.ClaimCommand, topic: str) -> None:
        assert self.store is not None and self.bridge is not None
        result: dict[str, object] = {
            "request_id": cmd.request_id,
            "action": cmd.action,
            "ok": False,
        }
        try:
            if cmd.error:
                raise ActivationRefused(400, cmd.error)
            if cmd.action == "claim":
                device_id = await self.app.run_blocking(
                    self.store.claim, cmd.code, cmd.owner, "mqtt"
                )
                result.update(
                    ok=True,
                    device_id=device_id,
                    message=f"{device_id} claimed by {cmd.owner}; it connects within seconds",
                )
            else:
                found = await self.app.run_blocking(self.store.revoke, cmd.device_id)
                result.update(
                    ok=found,
                    device_id=cmd.device_id,
                    message=f"{cmd.device_id} revoked"
                    if found
                    else f"{cmd.device_id} has no live token",
                )
        except ActivationRefused as exc:
            log.warning("activation: %s on %s refused: %s", cmd.action, topic, exc)
            result.update(error=str(exc), message=str(exc))
        else:
            log.info("activation: %s", result["message"])
        try:
            await self.bridge.publish(
                claims.topics(self.settings.mqtt.topic_prefix)["result"], json.dumps(result)
            )
        except Exception as exc:  # noqa: BLE001 - the claim is stored; only the answer is lost
            log.warning("activation: cannot publish the %s result: %s", cmd.action, exc)
