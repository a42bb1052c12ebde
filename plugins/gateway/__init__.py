"""gateway: the cloud side of protocol v1 (one WebSocket session per toy)."""

from .plugin import GatewayPlugin
from .settings import GatewaySettings

__all__ = ["GatewayPlugin", "GatewaySettings"]
