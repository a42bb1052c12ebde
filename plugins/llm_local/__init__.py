"""llm_local: a language model in the cloud process (GGUF through llama.cpp), no network."""

from .plugin import LocalLlmPlugin, LocalLlmSettings

__all__ = ["LocalLlmPlugin", "LocalLlmSettings"]
