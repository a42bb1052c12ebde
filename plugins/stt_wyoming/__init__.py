"""stt_wyoming: speech-to-text on any Wyoming server (wyoming-faster-whisper, ...)."""

from .plugin import WyomingSttPlugin, WyomingSttSettings

__all__ = ["WyomingSttPlugin", "WyomingSttSettings"]
