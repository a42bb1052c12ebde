"""Config sections of the mqtt plugin: broker connection, parent controls, discovery."""

from __future__ import annotations

import dataclasses
import re
import zoneinfo

from toyd import setting

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def check_hhmm(value: str, key: str) -> None:
    """Raise ValueError unless ``value`` is a 24-hour ``HH:MM`` time."""
    if not _HHMM.match(value):
        raise ValueError(f"{key} must be a 24-hour time HH:MM, like 19:30 (got {value!r})")


def check_tz(value: str) -> None:
    """Raise ValueError unless ``value`` is an IANA time zone (empty = the system's)."""
    if not value:
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Paris") from None


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """TLS to the broker (port 8883 by convention)."""

    enabled: bool = setting(False, doc="Connect with TLS.")
    ca: str = setting("", doc="CA certificate (PEM) that signed the broker's certificate; empty = the system's CAs.")
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
    password: str = setting("", doc='Password; keep it out of the file: {"$env": TOYD_MQTT_PASSWORD}.')
    client_id: str = setting("", doc="MQTT client id; empty = derived from device_id.")
    topic_prefix: str = setting("toyd", doc="Root of every topic: <prefix>/<device_id>/...")
    keepalive: int = setting(30, min=5, max=3600, doc="Seconds between pings; the broker declares the toy offline after 1.5x this.")
    reconnect_min: float = setting(0.5, min=0.05, max=60, doc="First reconnect delay in seconds (doubles up to reconnect_max).")
    reconnect_max: float = setting(30.0, min=0.1, max=3600, doc="Longest reconnect delay in seconds.")
    tls: TlsSettings = setting(factory=TlsSettings, doc="TLS settings.")

    def __post_init__(self) -> None:
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#") or self.topic_prefix.endswith("/"):
            raise ValueError("topic_prefix must be non-empty, without + or #, and not end with /")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must be at least reconnect_min")


@dataclasses.dataclass(frozen=True)
class QuietHours:
    """A daily window in which the toy sleeps (may span midnight)."""

    start: str = setting(doc="Start, HH:MM (24 h).")
    end: str = setting(doc="End, HH:MM (24 h); before start means the next morning.")
    tz: str = setting("", doc="IANA time zone, like Europe/Paris; empty = the system's.")

    def __post_init__(self) -> None:
        check_hhmm(self.start, "start")
        check_hhmm(self.end, "end")
        if self.start == self.end:
            raise ValueError("start and end must differ")
        check_tz(self.tz)


# Keys of the mqtt section a config push may set; the rest decide how the toy reaches
# the broker, and a bad push must never cut the toy off from the parent.
PUSHABLE_KEYS = frozenset({"name", "personas", "persona", "max_volume", "quiet_hours",
                           "usage_limit_minutes", "sleep_line"})


@dataclasses.dataclass(frozen=True)
class MqttSettings(BrokerSettings):
    """Settings of the ``mqtt`` section (device role)."""

    name: str = setting("", doc="Name shown in Home Assistant; empty = 'Toy <device_id>'.")
    max_payload: int = setting(4096, min=256, max=65536, doc="Largest accepted command payload in bytes.")
    max_config_bytes: int = setting(65536, min=1024, max=1048576, doc="Largest accepted config push in bytes.")
    state_coalesce_ms: int = setting(100, min=0, max=5000, doc="A burst of state changes within this window is one state message.")
    discovery: bool = setting(True, doc="Announce the toy to Home Assistant (MQTT discovery).")
    discovery_prefix: str = setting("homeassistant", doc="Home Assistant's discovery prefix.")
    personas: tuple[str, ...] = setting(factory=tuple, doc="Personas a parent may choose; empty = any.")
    persona: str = setting("", doc="Persona at first start (a parent's choice is kept across restarts).")
    max_volume: int = setting(100, min=0, max=100, doc="Highest volume a parent command may set.")
    quiet_hours: QuietHours | None = setting(None, doc="Daily sleep window, e.g. {start: '19:30', end: '07:00', tz: Europe/Paris}.")
    usage_limit_minutes: int = setting(0, min=0, max=1440, doc="Minutes of talking per day before the toy sleeps until tomorrow; 0 = no limit.")
    sleep_line: str = setting("It's sleep time. Let's talk again later!", doc="Said when the button is pressed while sleeping (needs a speaker plugin); empty = silent.")
    say_queue: int = setting(5, min=1, max=100, doc="Parent messages that may wait for the toy to be idle.")
    say_max_wait: float = setting(120.0, min=1, max=3600, doc="Seconds a queued parent message may wait before it is dropped.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.personas and self.persona and self.persona not in self.personas:
            raise ValueError(f"persona {self.persona!r} is not in personas")
