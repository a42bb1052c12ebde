"""activation: the device side of toy activation (speak the code, store the token)."""

from .plugin import ActivationPlugin, ActivationSettings

__all__ = ["ActivationPlugin", "ActivationSettings"]
