"""The ``gateway`` plugin (cloud role): serves toys over WebSocket, drives the AI chain hooks."""

from __future__ import annotations

import logging
import time

from toyd import App, PluginDeclaration, Service, hookimpl
from toyd.events import DeviceRevoked, SafetyAlert
from toyd.store import Alert, Store, StoreError, open_store

from .server import Gateway
from .settings import GatewaySettings

log = logging.getLogger(__name__)


class GatewayPlugin:
    """Binds at start-up (so toys can connect as soon as the daemon is ready)."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.alert_log: Store | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=GatewaySettings,
            summary="WebSocket gateway for toys (protocol v1), drives the AI chain",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: GatewaySettings) -> None:
        if not settings.tokens:
            log.warning("gateway: no device tokens configured; every toy will be refused")
        if settings.alert_log:
            self.alert_log = open_store(settings.alert_log, app.state_dir)
            await self.alert_log.open()
        self.gateway = Gateway(app, settings)
        await self.gateway.start()

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        assert self.gateway is not None
        services = [
            Service("loop-lag", self.gateway.loop_lag.run),
            Service("revocations", self._revocations),
        ]
        if self.alert_log is not None:
            services.append(Service("alert-log", lambda: self._log_alerts(app)))
        parents = self.gateway.parents
        if parents is not None:  # xiaozhi clients' alerts out, their parents' volume commands in
            services += [
                Service("parents-alerts", parents.drain),
                Service("parents-commands", parents.serve),
            ]
        return services

    async def _revocations(self) -> None:
        """A toy whose token was revoked (activation_server) loses its session at once."""
        assert self.gateway is not None
        events = self.gateway.app.bus.subscribe("gateway", (DeviceRevoked,))
        try:
            async for event in events:
                self.gateway.revoke(event.device_id)
        finally:
            events.close()

    async def _log_alerts(self, app: App) -> None:
        """Every safety alert the cloud raises goes into the log (shared by all gateways on PostgreSQL)."""
        assert self.alert_log is not None
        sub = app.bus.subscribe("gateway-alert-log", (SafetyAlert,), maxsize=1000)
        try:
            while True:
                event = await sub.get()
                try:
                    await self.alert_log.record_alert(
                        Alert(
                            event.device_id or "?",
                            time.time(),
                            event.category,
                            event.severity,
                            event.excerpt,
                        )
                    )
                except StoreError as exc:
                    log.error("gateway: safety alert of %s not logged: %s", event.device_id, exc)
        finally:
            sub.close()

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: GatewaySettings) -> bool:
        gateway = self.gateway
        if gateway is None:
            return False
        old = gateway.settings
        if (old.host, old.port, old.tls_cert, old.tls_key, old.parents) != (
            settings.host,
            settings.port,
            settings.tls_cert,
            settings.tls_key,
            settings.parents,
        ):
            return False  # rebinding drops every toy, the parents' link holds an outbox: restart
        gateway.settings = settings  # tokens, limits, timeouts apply to new connections and turns
        app.spawn(
            gateway.recheck_credentials(), "gateway:recheck-credentials"
        )  # revoked tokens end their sessions
        return True

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        try:
            if self.gateway is not None:
                await self.gateway.stop()
        finally:
            # a shutdown cut short (a toy slow to answer the close) still closes the file:
            # aiosqlite's thread would otherwise outlive the daemon
            if self.alert_log is not None:
                await self.alert_log.close()
