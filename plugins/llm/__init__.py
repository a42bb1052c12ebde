"""llm: the toy's answers from an OpenAI-compatible chat model, or the offline responder."""

from .plugin import LlmPlugin
from .settings import LlmSettings, Persona

__all__ = ["LlmPlugin", "LlmSettings", "Persona"]
