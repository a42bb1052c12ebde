"""How to reach an MQTT broker: shared by the toy's mqtt plugin and the cloud's configpush."""

from __future__ import annotations

import dataclasses

from ..schema import setting


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """TLS to the broker (port 8883 by convention)."""

    enabled: bool = setting(False, doc="Connect with TLS.")
    ca: str = setting(
        "",
        doc="CA certificate (PEM) that signed the broker's certificate; empty = the system's CAs.",
    )
    cert: str = setting("", doc="Client certificate (PEM) for mutual TLS; empty = none.")
    key: str = setting("", doc="Private key (PEM) of the client certificate.")
    insecure: bool = setting(False, doc="Do not check the broker's host name (test brokers only).")

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise ValueError("tls.cert and tls.key go together: set both or neither")


@dataclasses.dataclass(frozen=True)
class BrokerSettings:
    """How to reach the MQTT broker; shared by the device and the cloud config service."""

    host: str = setting("127.0.0.1", doc="Broker host name or address.")
    port: int = setting(1883, min=1, max=65535, doc="Broker port (1883 plain, 8883 TLS).")
    username: str = setting("", doc="User name; empty = anonymous.")
    password: str = setting(
        "", doc='Password; keep it out of the file: {"$env": TOYD_MQTT_PASSWORD}.'
    )
    client_id: str = setting("", doc="MQTT client id; empty = derived from device_id.")
    topic_prefix: str = setting("toyd", doc="Root of every topic: <prefix>/<device_id>/...")
    keepalive: int = setting(
        30,
        min=5,
        max=3600,
        doc="Seconds between pings; the broker declares the toy offline after 1.5x this.",
    )
    reconnect_min: float = setting(
        0.5, min=0.05, max=60, doc="First reconnect delay in seconds (doubles up to reconnect_max)."
    )
    reconnect_max: float = setting(
        30.0, min=0.1, max=3600, doc="Longest reconnect delay in seconds."
    )
    tls: TlsSettings = setting(factory=TlsSettings, doc="TLS settings.")

    def __post_init__(self) -> None:
        if (
            not self.topic_prefix
            or any(c in self.topic_prefix for c in "+#")
            or self.topic_prefix.endswith("/")
        ):
            raise ValueError("topic_prefix must be non-empty, without + or #, and not end with /")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must be at least reconnect_min")
