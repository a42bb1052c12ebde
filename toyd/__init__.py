"""toyd: plugin-based firmware for AI voice toys, and the companion cloud.

The public API for plugin authors is re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import events
from .app import App
from .bus import EventBus, Subscription
from .config import Config, CoreSettings
from .errors import BackendBusy, BackendError, ConfigError, PluginError, StateDirError, ToydError
from .markers import hookimpl
from .plugin import CliCommand, PluginDeclaration, Service
from .schema import Secret, setting
from .state import State, Trigger

__all__ = [
    "App",
    "BackendBusy",
    "BackendError",
    "CliCommand",
    "Config",
    "ConfigError",
    "CoreSettings",
    "EventBus",
    "PluginDeclaration",
    "PluginError",
    "Secret",
    "Service",
    "State",
    "StateDirError",
    "Subscription",
    "ToydError",
    "Trigger",
    "__version__",
    "events",
    "hookimpl",
    "httpclient",
    "setting",
]


def __getattr__(name: str) -> object:
    """``toyd.httpclient`` loads on first use: only the cloud's HTTP backends need it."""
    if name == "httpclient":
        import importlib

        return importlib.import_module(f"{__name__}.httpclient")
    raise AttributeError(f"module 'toyd' has no attribute {name!r}")
