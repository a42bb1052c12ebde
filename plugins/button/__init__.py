"""button: push-to-talk button on a GPIO pin, with hold and double-press gestures."""

from .plugin import ButtonPlugin, ButtonSettings

__all__ = ["ButtonPlugin", "ButtonSettings"]
