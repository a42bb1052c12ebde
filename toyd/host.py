"""The plugin host: one pluggy manager per daemon, hooks called per plugin, isolated."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Iterable
from typing import Any

import pluggy

from .asyncutil import await_me_maybe
from .errors import PluginError
from .markers import PROJECT
from .registry import PluginInfo, Registry

log = logging.getLogger(__name__)

# Hookspec modules, one per role plus the shared lifecycle; importable without extras.
SPEC_MODULES = ("toyd.hookspecs", "toyd.device_hookspecs", "toyd.cloud_hookspecs")


def new_manager() -> pluggy.PluginManager:
    """A plugin manager with every toyd hookspec added."""
    pm = pluggy.PluginManager(PROJECT)
    for name in SPEC_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        pm.add_hookspecs(module)
    return pm


class PluginHost:
    """Instantiates the enabled plugins of one role and calls their hooks safely."""

    def __init__(self, role: str, registry: Registry) -> None:
        self.role = role
        self.registry = registry
        self.pm = new_manager()
        self.plugins: dict[str, Any] = {}
        self.infos: dict[str, PluginInfo] = {}

    @property
    def hook(self) -> Any:
        """pluggy's hook caller, for role hooks (``host.hook.toyd_transcribe(...)``)."""
        return self.pm.hook

    def load(self, names: Iterable[str]) -> list[str]:
        """Instantiate and register ``names``; returns the names of skipped plugins."""
        skipped = []
        for name in names:
            try:
                info = self.registry.info(name)
                if self.role not in info.declaration.roles:
                    raise PluginError(name, f"serves {', '.join(info.declaration.roles)}, not the {self.role} role")
                plugin = info.factory()
                self.pm.register(plugin, name=name)
            except PluginError as exc:
                if self._is_builtin(name):
                    raise
                log.error("%s; skipped", exc)
                skipped.append(name)
                continue
            self.plugins[name] = plugin
            self.infos[name] = info
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(getattr(exc, "plugin_name", "?") or "?", f"implements an unknown hook: {exc}") from None
        return skipped

    def _is_builtin(self, name: str) -> bool:
        try:
            return self.registry.info(name).builtin
        except (KeyError, PluginError):
            return False

    def unregister(self, name: str) -> None:
        """Disable a plugin (after it failed to start)."""
        plugin = self.plugins.pop(name, None)
        self.infos.pop(name, None)
        if plugin is not None:
            self.pm.unregister(plugin)

    def implementations(self, hook_name: str) -> list[tuple[str, Any]]:
        """``(plugin name, hookimpl)`` for ``hook_name`` in start order."""
        caller = getattr(self.pm.hook, hook_name)
        by_plugin = {self.pm.get_name(impl.plugin): impl for impl in caller.get_hookimpls()}
        return [(name, by_plugin[name]) for name in self.plugins if name in by_plugin]

    async def call_one(self, name: str, impl: Any, timeout: float | None, **kwargs: Any) -> Any:
        """Call one implementation with the arguments it takes, awaiting if needed."""
        args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
        return await asyncio.wait_for(await_me_maybe(impl.function(**args)), timeout)

    async def call_each(self, hook_name: str, *, timeout: float | None = None, reverse: bool = False,
                        **kwargs: Any) -> dict[str, Any]:
        """Call ``hook_name`` on every plugin; returns results, or the exception per plugin."""
        results: dict[str, Any] = {}
        impls = self.implementations(hook_name)
        for name, impl in reversed(impls) if reverse else impls:
            try:
                results[name] = await self.call_one(name, impl, timeout, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one plugin must not silence others
                if isinstance(exc, TimeoutError):
                    exc = TimeoutError(f"{hook_name} did not finish within {timeout:.1f} s")
                log.error("plugin %s: %s failed: %s: %s", name, hook_name, type(exc).__name__, exc)
                log.debug("plugin %s: %s traceback", name, hook_name, exc_info=exc)
                results[name] = exc
        return results

    async def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """The first non-None result of ``hook_name`` (last registered wins ties), awaited."""
        for name, impl in reversed(self.implementations(hook_name)):
            result = await self.call_one(name, impl, None, **kwargs)
            if result is not None:
                return result
        return None
