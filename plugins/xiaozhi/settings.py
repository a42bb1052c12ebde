"""Settings of the ``xiaozhi`` section, and the toy's identity in the xiaozhi world."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from typing import Literal

from toyd import setting
from toyd.audio.opus import DEFAULT_BITRATE

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
FRAME_DURATIONS = (20, 40, 60)


@dataclasses.dataclass(frozen=True)
class XiaozhiSettings:
    """Settings of the ``xiaozhi`` section."""

    url: str = setting(
        "ws://127.0.0.1:8000/xiaozhi/v1/",
        doc="The xiaozhi server's WebSocket URL, ws:// or wss://.",
    )
    token: str = setting(
        "", doc="Access token, sent as 'Authorization: Bearer <token>'; use {$env: NAME}."
    )
    mac: str | None = setting(
        None,
        doc="Device-Id header (MAC form aa:bb:cc:dd:ee:ff); unset = derived "
        "from device_id (a stable, locally administered address).",
    )
    client_id: str | None = setting(
        None, doc="Client-Id header (a UUID); unset = derived from device_id."
    )
    listen_mode: Literal["manual", "auto", "realtime"] = setting(
        "manual",
        doc="manual: the toy decides when the child stopped (its own VAD or button) and sends "
        "listen stop; auto/realtime: the server's VAD may end the turn first.",
    )
    frame_duration: int = setting(
        60,
        min=20,
        max=60,
        doc="Uplink Opus frame length in ms: 20, 40 or 60 (the ESP32 firmware sends 60).",
    )
    wake_word_detect: bool = setting(
        False,
        doc="Tell the server about a wake word (listen detect) before "
        "listening; some servers answer it with a greeting.",
    )
    wake_text: str = setting("hey toy", doc="Text sent with listen detect.")
    connect_timeout: float = setting(5.0, min=0.5, max=60, doc="Seconds to open the connection.")
    hello_timeout: float = setting(
        10.0,
        min=0.5,
        max=60,
        doc="Seconds to wait for the server's hello (the firmware also gives up after 10).",
    )
    reply_timeout: float = setting(
        10.0,
        min=0.5,
        max=120,
        doc="Seconds after the child stopped talking for "
        "the reply to start; then ReplyTimeout (local answer).",
    )
    backoff_initial: float = setting(
        0.5, min=0.05, max=60, doc="First reconnect delay, seconds (doubles)."
    )
    backoff_max: float = setting(30.0, min=0.1, max=600, doc="Longest reconnect delay, seconds.")
    bitrate: int = setting(
        DEFAULT_BITRATE, min=6000, max=64000, doc="Uplink Opus bitrate, bits per second."
    )

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss:// (got {self.url!r})")
        if self.frame_duration not in FRAME_DURATIONS:
            raise ValueError(
                f"frame_duration must be one of {FRAME_DURATIONS} (got {self.frame_duration})"
            )
        if self.mac is not None and not MAC.match(self.mac.lower()):
            raise ValueError(f"mac must look like aa:bb:cc:dd:ee:ff (got {self.mac!r})")
        if self.client_id is not None:
            try:
                uuid.UUID(self.client_id)
            except ValueError:
                raise ValueError(f"client_id must be a UUID (got {self.client_id!r})") from None
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be at least backoff_initial")


def device_mac(settings: XiaozhiSettings, device_id: str) -> str:
    """The Device-Id header: the configured MAC, or one derived from ``device_id`` (stable per toy)."""
    if settings.mac:
        return settings.mac.lower()
    digest = hashlib.sha256(device_id.encode()).digest()
    # 0x02 in the first octet: a locally administered unicast address, never a vendor's
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def client_uuid(settings: XiaozhiSettings, device_id: str) -> str:
    """The Client-Id header: the configured UUID, or a UUID5 of ``device_id``."""
    return settings.client_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"toyd:{device_id}"))
