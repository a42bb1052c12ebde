"""Settings of the ``activation_server`` section, apart from the plugin so that the
``toyd cloud claim`` commands can read them without importing the plugin module."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from toyd import setting
from toyd.httpclient import check_base_url
from toyd.mqtt import BrokerSettings

from .store import Limits


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
        "activation.sqlite",
        doc="Where codes and tokens live: a SQLite file, relative to state_dir (or absolute), "
        "or a postgresql:// URL that every gateway shares (docs/scaling.md; needs "
        "toyd[postgres]).",
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
    mqtt_share_group: str = setting(
        "toyd-activation",
        doc="Gateways take claims through the MQTT shared subscription $share/<group>/..., "
        "so each claim is handled by one of them (empty = every gateway gets every claim).",
    )
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
        check_base_url(self.websocket_url, "websocket_url", schemes=("ws", "wss"))
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
