"""updater: over-the-air updates of toyd (signed RAUC bundles, A/B slots)."""

from .plugin import UpdaterPlugin, UpdaterSettings

__all__ = ["UpdaterPlugin", "UpdaterSettings"]
