"""cache: the response cache (SQLite) that answers known phrases with text and audio."""

from .plugin import CachePlugin, CacheSettings

__all__ = ["CachePlugin", "CacheSettings"]
