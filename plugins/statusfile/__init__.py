"""statusfile: keeps a small JSON status file in the state directory."""

from .plugin import StatusFilePlugin, StatusFileSettings

__all__ = ["StatusFilePlugin", "StatusFileSettings"]
