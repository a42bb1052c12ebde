"""echochain: a stand-in cloud AI chain that echoes the child's audio back."""

from .plugin import EchoChainPlugin, EchoChainSettings

__all__ = ["EchoChainPlugin", "EchoChainSettings"]
