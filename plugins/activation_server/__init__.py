"""activation_server: the cloud side of toy activation (codes, claims, per-toy tokens)."""

from .plugin import ActivationServerPlugin, ActivationServerSettings

__all__ = ["ActivationServerPlugin", "ActivationServerSettings"]
