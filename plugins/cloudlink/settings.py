"""The ``cloudlink`` section, and the one rule about the token a toy may use."""

from __future__ import annotations

import dataclasses

from toyd import ConfigError, setting
from toyd.audio.opus import DEFAULT_BITRATE

# Tokens printed in the example configs and docs: anyone may know them.
KNOWN_DEFAULT_TOKENS = frozenset({"dev-token-demo-toy"})


@dataclasses.dataclass(frozen=True)
class CloudLinkSettings:
    """Settings of the ``cloudlink`` section."""

    url: str = setting("ws://127.0.0.1:8765", doc="Gateway URL, ws:// or wss://.")
    token: str = setting("", doc="This toy's token; use {$env: NAME} or {$file: PATH}.")
    ca_file: str | None = setting(
        None,
        doc="PEM CA bundle that signed the gateway's certificate (wss://); unset = system CAs.",
    )
    connect_timeout: float = setting(5.0, min=0.5, max=60, doc="Seconds to open the connection.")
    hello_timeout: float = setting(
        10.0, min=0.5, max=60, doc="Seconds to wait for the server's hello."
    )
    reply_timeout: float = setting(
        6.0,
        min=0.5,
        max=60,
        doc="Seconds after the child stops talking for the reply to start; then ReplyTimeout (local answer).",
    )
    backoff_initial: float = setting(
        0.5,
        min=0.05,
        max=60,
        doc="First reconnect delay, seconds (doubles up to backoff_max, ±25% jitter).",
    )
    backoff_max: float = setting(30.0, min=0.1, max=600, doc="Longest reconnect delay, seconds.")
    bitrate: int = setting(
        DEFAULT_BITRATE, min=6000, max=64000, doc="Uplink Opus bitrate, bits per second."
    )
    persona: str | None = setting(
        None, doc="Persona id sent with every turn (a PersonaSet command overrides it)."
    )
    language: str | None = setting(
        None, doc="Language of the child (en, ko, ...); unset = the cloud detects it."
    )

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss:// (got {self.url!r})")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be at least backoff_initial")


def refuse_known_default_token(settings: CloudLinkSettings, source: str, *, simulate: bool) -> None:
    """A real toy must not use a token the whole world knows (``--simulate`` and the demo may).

    Raises a ConfigError naming the file and the key; the daemon does not start.
    """
    if settings.token in KNOWN_DEFAULT_TOKENS and not simulate:
        raise ConfigError(
            "this is the publicly known example token: anyone could act as this toy",
            source=source,
            path="cloudlink.token",
            hint="give the toy its own token (the gateway's tokens entry for this device_id), "
            'e.g. set TOYD_CLOUD_TOKEN or use {"$file": /etc/toyd/cloud-token}; '
            "--simulate allows the example token for trying toyd out",
        )
