"""parental: quiet hours, a daily usage limit and the sleep line, with or without remote control."""

from .plugin import ParentalPlugin, ParentalSettings

__all__ = ["ParentalPlugin", "ParentalSettings"]
