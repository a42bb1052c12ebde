"""tts_http: hosted voices through OpenAI /v1/audio/speech or ElevenLabs-style streaming PCM."""

from .plugin import HttpTtsPlugin, HttpTtsSettings

__all__ = ["HttpTtsPlugin", "HttpTtsSettings"]
