"""offline: the switch that answers turns on the device when the cloud cannot."""

from .plugin import OfflinePlugin, OfflineSettings

__all__ = ["OfflinePlugin", "OfflineSettings"]
