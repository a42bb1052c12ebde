"""wakeword: openWakeWord models on a lean tflite pipeline, plus the ``toyd wakeword`` tool."""

from .plugin import WakeWordPlugin
from .settings import WakeWordModel, WakeWordSettings

__all__ = ["WakeWordModel", "WakeWordPlugin", "WakeWordSettings"]
