"""cloudlink: the toy's cloud backend over WebSocket (protocol v1)."""

from .plugin import CloudLinkPlugin
from .settings import CloudLinkSettings

__all__ = ["CloudLinkPlugin", "CloudLinkSettings"]
