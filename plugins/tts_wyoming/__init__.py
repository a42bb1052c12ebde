"""tts_wyoming: speech synthesis on any Wyoming server (wyoming-piper, ...)."""

from .plugin import WyomingTtsPlugin, WyomingTtsSettings

__all__ = ["WyomingTtsPlugin", "WyomingTtsSettings"]
