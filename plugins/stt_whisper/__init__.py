"""stt_whisper: local speech-to-text with faster-whisper, one model shared by all toys."""

from .plugin import WhisperPlugin, WhisperSettings

__all__ = ["WhisperPlugin", "WhisperSettings"]
