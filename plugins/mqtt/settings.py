"""The ``mqtt`` section: the broker connection (shared with configpush), remote control, discovery."""

from __future__ import annotations

import dataclasses

from toyd import setting
from toyd.mqtt import BrokerSettings, TlsSettings

__all__ = ["BrokerSettings", "MqttSettings", "PUSHABLE_KEYS", "TlsSettings"]


# Keys of the mqtt section a config push may set; the rest decide how the toy reaches
# the broker, and a bad push must never cut the toy off from the parent.
PUSHABLE_KEYS = frozenset({"name", "personas", "persona", "max_volume"})


@dataclasses.dataclass(frozen=True)
class MqttSettings(BrokerSettings):
    """Settings of the ``mqtt`` section (device role)."""

    name: str = setting("", doc="Name shown in Home Assistant; empty = 'Toy <device_id>'.")
    max_payload: int = setting(
        4096, min=256, max=65536, doc="Largest accepted command payload in bytes."
    )
    max_config_bytes: int = setting(
        65536, min=1024, max=1048576, doc="Largest accepted config push in bytes."
    )
    state_coalesce_ms: int = setting(
        100,
        min=0,
        max=5000,
        doc="A burst of state changes within this window is one state message.",
    )
    discovery: bool = setting(True, doc="Announce the toy to Home Assistant (MQTT discovery).")
    discovery_prefix: str = setting("homeassistant", doc="Home Assistant's discovery prefix.")
    personas: tuple[str, ...] = setting(
        factory=tuple, doc="Personas a parent may choose; empty = any."
    )
    persona: str = setting(
        "", doc="Persona at first start (a parent's choice is kept across restarts)."
    )
    max_volume: int = setting(100, min=0, max=100, doc="Highest volume a parent command may set.")
    say_queue: int = setting(
        5, min=1, max=100, doc="Parent messages that may wait for the toy to be idle."
    )
    say_max_wait: float = setting(
        120.0, min=1, max=3600, doc="Seconds a queued parent message may wait before it is dropped."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.personas and self.persona and self.persona not in self.personas:
            raise ValueError(f"persona {self.persona!r} is not in personas")
