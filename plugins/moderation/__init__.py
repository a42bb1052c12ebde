"""moderation: asks an OpenAI-compatible /v1/moderations API about each text (optional, cloud)."""

from .client import ModerationClient, ModerationError, ModerationResult
from .plugin import ModerationPlugin, ModerationSettings

__all__ = [
    "ModerationClient",
    "ModerationError",
    "ModerationPlugin",
    "ModerationResult",
    "ModerationSettings",
]
