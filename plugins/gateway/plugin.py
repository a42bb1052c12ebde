"""The ``gateway`` plugin (cloud role): serves toys over WebSocket, drives the AI chain hooks."""

from __future__ import annotations

import logging

from toyd import App, PluginDeclaration, Service, hookimpl

from .server import Gateway
from .settings import GatewaySettings

log = logging.getLogger(__name__)


class GatewayPlugin:
    """Binds at start-up (so toys can connect as soon as the daemon is ready)."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("cloud",), settings=GatewaySettings,
                                 summary="WebSocket gateway for toys (protocol v1), drives the AI chain")

    @hookimpl
    async def toyd_startup(self, app: App, settings: GatewaySettings) -> None:
        if not settings.tokens:
            log.warning("gateway: no device tokens configured; every toy will be refused")
        self.gateway = Gateway(app, settings)
        await self.gateway.start()

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        assert self.gateway is not None
        return [Service("loop-lag", self.gateway.loop_lag.run)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: GatewaySettings) -> bool:
        gateway = self.gateway
        if gateway is None:
            return False
        old = gateway.settings
        if (old.host, old.port, old.tls_cert, old.tls_key) != (settings.host, settings.port, settings.tls_cert, settings.tls_key):
            return False  # rebinding drops every toy: only on restart
        gateway.settings = settings  # tokens, limits, timeouts apply to new connections and turns
        return True

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
