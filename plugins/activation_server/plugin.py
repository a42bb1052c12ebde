"""The ``activation_server`` plugin (cloud role): toys get their token without anyone typing it.

Serves the OTA/activation endpoint (``http.py``), takes parents' claims over MQTT
(``claims.py``) and from ``toyd cloud claim``, answers the gateway's ``toyd_authenticate``
from the store, and tells the gateway when a toy's token is revoked (``DeviceRevoked``) so
its session ends at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import TYPE_CHECKING

from toyd import App, PluginDeclaration, Service, hookimpl
from toyd.events import DeviceRevoked
from toyd.mqtt.bridge import MqttBridge
from toyd.plugin import CliCommand
from toyd.store import StoreError

from . import claims, command
from .settings import ActivationServerSettings
from .store import ActivationRefused, ActivationStore

if TYPE_CHECKING:  # aiohttp is a cloud dependency: a toy lists this plugin without it
    from aiohttp import web

    from .http import OtaEndpoint

log = logging.getLogger(__name__)
DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REVOKE_POLL = 2.0  # seconds between looks for revocations made by other processes
REVOKE_OVERLAP = 120.0  # look back this far too: other machines' clocks may be behind ours
AWAY_WARNING_EVERY = 60.0  # seconds between warnings that the store is unavailable


class ActivationServerPlugin:
    """HTTP endpoint + claims + token checks, around one :class:`ActivationStore`."""

    def __init__(self) -> None:
        self.store: ActivationStore | None = None
        self.endpoint: OtaEndpoint | None = None
        self.bridge: MqttBridge | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._warned, self._refused = float("-inf"), 0

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
        from aiohttp import web

        from .http import OtaEndpoint

        self.app, self.settings = app, settings
        self.store = ActivationStore.at(settings.db, app.state_dir, settings.limits())
        await self.store.open()
        self.endpoint = OtaEndpoint(self.store, settings, self.authenticate, DEVICE_ID.match)
        self._runner = web.AppRunner(self.endpoint.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("activation endpoint on http://%s:%d%s", settings.host, self.port, settings.path)
        if settings.mqtt_claims:
            s = settings.mqtt
            topics = claims.subscriptions(s.topic_prefix, settings.mqtt_share_group)
            self.bridge = MqttBridge(
                s,
                client_id=s.client_id or f"toyd-activation-{app.device_id}",
                subscriptions=lambda: topics,
                on_message=self._on_message,
                on_connected=self._announce,
            )
            await self.bridge.start(after=app.ready)

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("revocations", self._watch_revocations)]

    @hookimpl
    async def toyd_authenticate(self, device_id: str, token: str) -> bool | None:
        """True for a toy's live activation token; None (ask the next plugin) otherwise.

        With the store away no activation token is let in (a revocation could not be
        seen); one warning a minute says so, not one error per reconnecting toy.
        """
        try:
            return True if await self.authenticate(device_id, token) else None
        except StoreError as exc:
            self._refused += 1
            if time.monotonic() - self._warned >= AWAY_WARNING_EVERY:
                log.warning(
                    "activation: %s; %d connection(s) of activated toys refused meanwhile",
                    exc,
                    self._refused,
                )
                self._warned, self._refused = time.monotonic(), 0
            return None

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        try:
            if self.bridge is not None:
                await self.bridge.stop()
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            if self.store is not None:  # closed even when a shutdown cut short stops the above
                await self.store.close()

    async def authenticate(self, device_id: str, token: str) -> bool:
        """Raises ``StoreError`` when the store is unavailable (the gateway then refuses)."""
        assert self.store is not None
        return await self.store.authenticate(device_id, token)

    async def _watch_revocations(self) -> None:
        """Revocations by any path (another gateway, the CLI) end the toy's session here."""
        assert self.store is not None
        since, seen = time.time(), set[tuple[str, float]]()
        failing = False
        while True:
            await asyncio.sleep(REVOKE_POLL)
            now = time.time()
            try:
                revoked = await self.store.revoked_since(since - REVOKE_OVERLAP)
            except StoreError as exc:
                if not failing:
                    log.warning("activation: cannot look for revocations: %s", exc)
                failing = True
                continue
            if failing:
                log.info("activation: the store answers again")
            failing = False
            for device_id, at in revoked:
                if (device_id, at) not in seen:
                    log.info("activation: %s revoked; ending its session", device_id)
                    self.app.bus.publish(DeviceRevoked(device_id=device_id))
            seen = set(revoked)
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
                device_id = await self.store.claim(cmd.code, cmd.owner, "mqtt")
                result.update(
                    ok=True,
                    device_id=device_id,
                    message=f"{device_id} claimed by {cmd.owner}; it connects within seconds",
                )
            else:
                found = await self.store.revoke(cmd.device_id)
                result.update(
                    ok=found,
                    device_id=cmd.device_id,
                    message=f"{cmd.device_id} revoked"
                    if found
                    else f"{cmd.device_id} has no live token",
                )
        except (ActivationRefused, StoreError) as exc:
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
