"""xiaozhi: the toy talks to any server of the xiaozhi WebSocket protocol (xiaozhi-esp32-server)."""

from .plugin import XiaozhiPlugin
from .settings import XiaozhiSettings

__all__ = ["XiaozhiPlugin", "XiaozhiSettings"]
