"""What a session may use of its gateway: live settings, AI hooks, the cloud bus, parents' link, frame meter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from toyd.audio import SAMPLE_RATE, SAMPLE_WIDTH
from toyd.text import compact

from .meters import FrameTimer
from .parents import ParentLink
from .settings import GatewaySettings

CallFirst = Callable[
    ..., Awaitable[Any]
]  # ``PluginHost.call_first``: (hook name, **kwargs) -> answer
Publish = Callable[[Any], None]  # ``EventBus.publish``


class SessionContext:
    """The narrow handle a :class:`~.session.Session` gets instead of the whole gateway.

    ``settings`` follows a live reconfigure: sessions read it when they need a value, so
    new turns use the new limits and timeouts.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        call_first: CallFirst,
        publish: Publish,
        parents: ParentLink | None = None,
    ) -> None:
        self.settings = settings
        self.call_first = call_first
        self.publish = publish
        self.parents = parents  # MQTT to parents of xiaozhi clients (gateway.parents), if enabled
        self.frame_timer = FrameTimer()
        self._cacheable: tuple[tuple[str, ...], frozenset[str]] = ((), frozenset())

    @property
    def cacheable(self) -> frozenset[str]:
        """The normalised questions whose answers toys may cache."""
        phrases = self.settings.cacheable_phrases
        if phrases != self._cacheable[0]:
            self._cacheable = (phrases, frozenset(compact(p) for p in phrases))
        return self._cacheable[1]

    @property
    def max_listen_bytes(self) -> int:
        """PCM bytes of the longest utterance."""
        return int(self.settings.max_listen_seconds * SAMPLE_RATE * SAMPLE_WIDTH)

    def config_version(self, device_id: str) -> int:
        """The config version the cloud holds for this toy (0 = none known)."""
        return int(self.settings.config_versions.get(device_id, 0))
