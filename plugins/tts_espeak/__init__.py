"""tts_espeak: local speech synthesis with espeak-ng, streamed as 16 kHz PCM."""

from .plugin import EspeakPlugin, EspeakSettings, EspeakVoice

__all__ = ["EspeakPlugin", "EspeakSettings", "EspeakVoice"]
