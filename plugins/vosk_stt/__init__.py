"""vosk_stt: offline speech recognition (Vosk) with grammar mode for the cached phrases."""

from .plugin import VoskSttPlugin, VoskSttSettings

__all__ = ["VoskSttPlugin", "VoskSttSettings"]
