"""led: an RGB LED (PWM) that shows the conversation state."""

from .plugin import LedPlugin, LedSettings

__all__ = ["LedPlugin", "LedSettings"]
