"""safety: the local child-safety filter (normalisation, lexicons, patterns, context rules)."""

from .engine import Finding, SafetyEngine
from .plugin import SafetyPlugin
from .settings import ALWAYS_ALERT, BUILTIN_CATEGORIES, CategorySettings, SafetySettings

__all__ = [
    "ALWAYS_ALERT",
    "BUILTIN_CATEGORIES",
    "CategorySettings",
    "Finding",
    "SafetyEngine",
    "SafetyPlugin",
    "SafetySettings",
]
