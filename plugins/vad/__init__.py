"""vad: end-of-speech detection while listening (webrtcvad)."""

from .plugin import VadPlugin
from .settings import VadSettings

__all__ = ["VadPlugin", "VadSettings"]
