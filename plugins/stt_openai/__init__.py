"""stt_openai: speech-to-text through an OpenAI-compatible /v1/audio/transcriptions server."""

from .plugin import OpenAISttPlugin, OpenAISttSettings

__all__ = ["OpenAISttPlugin", "OpenAISttSettings"]
