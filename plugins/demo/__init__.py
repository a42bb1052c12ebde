"""demo: ``toyd demo``, the whole voice chain on one machine with embedded defaults."""

from .plugin import DemoPlugin

__all__ = ["DemoPlugin"]
