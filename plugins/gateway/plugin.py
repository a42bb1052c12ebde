"""The ``gateway`` plugin (cloud role): serves toys over WebSocket, drives the AI chain hooks."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from toyd import App, PluginDeclaration, Service, hookimpl, setting
from toyd.events import DeviceRevoked
from toyd.text import compact

from .server import Gateway

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """Settings of the ``gateway`` section."""

    host: str = setting("127.0.0.1", doc="Address to listen on; 0.0.0.0 for every interface.")
    port: int = setting(8765, min=0, max=65535, doc="TCP port (0 = any free port).")
    tls_cert: str | None = setting(None, doc="PEM certificate (chain) file: serve wss://. Unset = plain ws://.")
    tls_key: str | None = setting(None, doc="PEM private key of tls_cert (unset if the cert file holds it).")
    tokens: Mapping[str, str] = setting(factory=dict, doc="device_id -> token; use {$env: ...} or {$file: ...} for each token.")
    config_versions: Mapping[str, int] = setting(factory=dict, doc="device_id -> config version announced in hello (0 = unknown).")
    hello_timeout: float = setting(10.0, min=0.5, max=120, doc="Seconds a new connection has to send hello.")
    downlink_lead_ms: int = setting(250, min=0, max=2000, doc="How far ahead of real time reply audio is sent (the toy's jitter buffer).")
    stage_timeout: float = setting(30.0, min=0.5, max=300, doc="Seconds one AI hook (or one item of its stream) may take.")
    max_sessions: int = setting(2000, min=1, max=100000, doc="Toys connected at once; more are refused with 503.")
    max_listen_seconds: float = setting(30.0, min=1, max=120, doc="Longest utterance; longer is cut and answered.")
    cacheable_phrases: tuple[str, ...] = setting(
        factory=tuple, doc="Questions whose answer a toy may keep in its response cache and reuse offline (compared "
                           "normalised: case, punctuation and spaces ignored). Empty = no reply is marked cacheable.")

    def __post_init__(self) -> None:
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key is set but tls_cert is not")
        for phrase in self.cacheable_phrases:
            if not compact(phrase):
                raise ValueError(f"cacheable phrase {phrase!r} has no words")
        for device, token in self.tokens.items():
            if len(token) < 8:
                raise ValueError(f"the token of {device!r} is shorter than 8 characters")


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
        return [Service("loop-lag", self.gateway.loop_lag.run), Service("revocations", self._revocations)]

    async def _revocations(self) -> None:
        assert self.gateway is not None
        events = self.gateway.app.bus.subscribe("gateway", (DeviceRevoked,))
        try:
            async for event in events:
                self.gateway.revoke(event.device_id)
        finally:
            events.close()

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
