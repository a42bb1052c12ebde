"""audio: microphone and speaker (PyAudio or the file/pipe device), jitter buffer, barge-in."""

from .plugin import AudioPlugin
from .settings import AudioSettings

__all__ = ["AudioPlugin", "AudioSettings"]
