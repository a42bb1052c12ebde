"""rollout: staged over-the-air updates of the fleet (cloud side)."""

from .plugin import RolloutPlugin, RolloutSettings

__all__ = ["RolloutPlugin", "RolloutSettings"]
