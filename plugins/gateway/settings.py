"""Settings of the ``gateway`` section (validated when the config loads)."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping

from toyd import setting
from toyd.text import compact

from .parents import ParentsSettings


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """Settings of the ``gateway`` section."""

    host: str = setting("127.0.0.1", doc="Address to listen on; 0.0.0.0 for every interface.")
    port: int = setting(8765, min=0, max=65535, doc="TCP port (0 = any free port).")
    tls_cert: str | None = setting(
        None, doc="PEM certificate (chain) file: serve wss://. Unset = plain ws://."
    )
    tls_key: str | None = setting(
        None, doc="PEM private key of tls_cert (unset if the cert file holds it)."
    )
    tokens: Mapping[str, str] = setting(
        factory=dict, doc="device_id -> token; use {$env: ...} or {$file: ...} for each token."
    )
    config_versions: Mapping[str, int] = setting(
        factory=dict, doc="device_id -> config version announced in hello (0 = unknown)."
    )
    hello_timeout: float = setting(
        10.0, min=0.5, max=120, doc="Seconds a new connection has to send hello."
    )
    handshake_timeout: float = setting(
        3.0,
        min=0.5,
        max=60,
        doc="Seconds a new connection may take to "
        "authenticate (TLS and the WebSocket upgrade); then it is dropped.",
    )
    max_unauthenticated: int = setting(
        256,
        min=8,
        max=100000,
        doc="Connections that have not authenticated yet "
        "held at once; beyond it the oldest silent one (no whole request yet) is dropped (flood "
        "defence).",
    )
    downlink_lead_ms: int = setting(
        250,
        min=0,
        max=2000,
        doc="How far ahead of real time reply audio is sent (the toy's jitter buffer).",
    )
    stage_timeout: float = setting(
        30.0, min=0.5, max=300, doc="Seconds one AI hook (or one item of its stream) may take."
    )
    first_clause: bool = setting(
        True,
        doc='Start speaking a reply at its first clause ("Once upon a time,") instead of its '
        "first whole sentence: the child hears the answer sooner; later pieces are sentences.",
    )
    max_sessions: int = setting(
        2000, min=1, max=100000, doc="Toys connected at once; more are refused with 503."
    )
    max_listen_seconds: float = setting(
        30.0, min=1, max=120, doc="Longest utterance; longer is cut and answered."
    )
    trusted_proxies: tuple[str, ...] = setting(
        factory=tuple,
        doc="Addresses or networks (CIDR) of proxies in front (HAProxy) whose X-Forwarded-For names "
        "the real client; from anyone else the header is ignored.",
    )
    public_url: str = setting(
        "",
        doc="The URL toys use to reach this gateway (e.g. the proxy's wss://...); "
        "empty = this process's own address.",
    )
    alert_log: str = setting(
        "gateway_alerts.sqlite",
        doc="Where the safety alerts the cloud raised are logged: a "
        "SQLite file (relative to state_dir) or a postgresql:// URL shared by every gateway "
        "(docs/scaling.md); empty = not logged.",
    )
    cacheable_phrases: tuple[str, ...] = setting(
        factory=tuple,
        doc="Questions whose answer a toy may keep in its response cache and reuse offline (compared "
        "normalised: case, punctuation and spaces ignored). Empty = no reply is marked cacheable.",
    )
    wake_words: tuple[str, ...] = setting(
        ("hey toy", "你好小智", "你好小志", "嘿你好呀"),
        doc="A xiaozhi client's `listen detect` text that is one of these (compared normalised) is "
        "the wake word alone and gets the greeting; any other text is answered as the child's words.",
    )
    wake_greeting: str = setting(
        "Hello!",
        doc="What a wake word alone is answered as: the words go through the safety filter, the "
        "LLM and speech as if the child had said them (as xiaozhi-esp32-server does). Empty = "
        "no greeting.",
    )
    parents: ParentsSettings = setting(
        factory=ParentsSettings,
        doc="MQTT to parents for xiaozhi clients, which cannot reach them themselves: their safety "
        "alerts and volume commands (docs/protocol.md). Needs a restart.",
    )

    def __post_init__(self) -> None:
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy {proxy!r} is not an address or network") from None
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key is set but tls_cert is not")
        for phrase in self.cacheable_phrases:
            if not compact(phrase):
                raise ValueError(f"cacheable phrase {phrase!r} has no words")
        for device, token in self.tokens.items():
            if len(token) < 8:
                raise ValueError(f"the token of {device!r} is shorter than 8 characters")
