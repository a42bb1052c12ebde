"""The plugin host: the one place that calls hooks.

One pluggy manager per daemon. Every hook is called per plugin through pluggy (so a
plugin's faults stay its own), with the host's policy in one file: start-up in config
order where a failing built-in plugin is fatal and a failing third-party plugin is
logged and disabled, live reconfiguration, services, shutdown in reverse order, and
first-result hooks that may be async. The registry and the CLI ask a single, not yet
loaded plugin through the module functions :func:`declare`, :func:`cli_commands` and
:func:`hook_names`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from .asyncutil import await_me_maybe
from .errors import PluginError
from .markers import PROJECT
from .plugin import CliCommand, PluginDeclaration

if TYPE_CHECKING:
    from .app import App
    from .config import Config
    from .registry import PluginInfo, Registry

log = logging.getLogger(__name__)

# Hookspec modules, one per role plus the shared lifecycle; importable without extras.
SPEC_MODULES = ("toyd.hookspecs", "toyd.device_hookspecs", "toyd.cloud_hookspecs")


def spec_modules() -> list[ModuleType]:
    """The hookspec modules of :data:`SPEC_MODULES` that exist, in that order."""
    modules = []
    for name in SPEC_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def new_manager() -> pluggy.PluginManager:
    """A plugin manager with every toyd hookspec added."""
    pm = pluggy.PluginManager(PROJECT)
    for module in spec_modules():
        pm.add_hookspecs(module)
    return pm


def _register(pm: pluggy.PluginManager, name: str, plugin: object) -> None:
    """Register ``plugin``; a hook whose arguments the contract lacks is a PluginError."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(name, f"implements a hook wrongly: {exc}") from None


_lone_manager: pluggy.PluginManager | None = None


@contextlib.contextmanager
def _alone(name: str, plugin: object) -> Iterator[pluggy.PluginManager]:
    """A manager holding only ``plugin``, for asking a plugin that no daemon has loaded.

    One manager is reused: building one with every hookspec costs as much as the call
    itself, and start-up asks every enabled plugin for its declaration.
    """
    global _lone_manager
    pm, _lone_manager = _lone_manager or new_manager(), None  # taken while in use
    _register(pm, name, plugin)  # when this fails the manager is dropped: pluggy may hold half
    try:
        yield pm
    finally:
        pm.unregister(plugin)
    _lone_manager = pm


def _call_alone(name: str, plugin: object, hook_name: str, **kwargs: Any) -> list[Any]:
    """Call one hook of one plugin that no daemon has loaded (declarations, CLI commands)."""
    with _alone(name, plugin) as pm:
        return getattr(pm.hook, hook_name)(**kwargs)


def declare(name: str, plugin: object) -> PluginDeclaration:
    """``toyd_declare`` of ``plugin``; PluginError when it is missing, fails or returns junk."""
    try:
        results = _call_alone(name, plugin, "toyd_declare")
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure names the plugin
        raise PluginError(name, f"toyd_declare failed: {type(exc).__name__}: {exc}") from exc
    if not results:
        raise PluginError(name, "toyd_declare failed: the plugin does not implement it")
    if not isinstance(results[0], PluginDeclaration):
        raise PluginError(name, "toyd_declare must return a PluginDeclaration")
    return results[0]


def cli_commands(name: str, plugin: object) -> list[CliCommand]:
    """The sub-commands ``plugin`` adds to the ``toyd`` command line."""
    return [
        command
        for commands in _call_alone(name, plugin, "toyd_cli_commands")
        for command in commands
    ]


def hook_names(name: str, plugin: object) -> list[str]:
    """The hooks ``plugin`` implements, sorted (``toyd plugins``)."""
    with _alone(name, plugin) as pm:
        return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])


class PluginHost:
    """Instantiates the enabled plugins of one role and calls their hooks safely."""

    def __init__(self, role: str, registry: Registry) -> None:
        self.role = role
        self.registry = registry
        self.pm = new_manager()
        self.plugins: dict[str, Any] = {}
        self.infos: dict[str, PluginInfo] = {}
        self._callers: dict[
            tuple[str, str], Any
        ] = {}  # (hook, plugin) -> pluggy caller of that plugin alone

    # --- loading ---------------------------------------------------------------------

    def load(self, names: Iterable[str]) -> list[str]:
        """Instantiate and register ``names``; returns the names of skipped plugins."""
        skipped = []
        for name in names:
            try:
                info = self.registry.info(name)
                if self.role not in info.declaration.roles:
                    raise PluginError(
                        name,
                        f"serves {', '.join(info.declaration.roles)}, not the {self.role} role",
                    )
                plugin = info.factory()
                _register(self.pm, name, plugin)
            except PluginError as exc:
                if self._is_builtin(name):
                    raise
                log.error("%s; skipped", exc)
                skipped.append(name)
                continue
            self.plugins[name] = plugin
            self.infos[name] = info
        self._callers.clear()
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or "?"
            raise PluginError(name, f"implements an unknown hook: {exc}") from None
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
            self._callers.clear()

    # --- calling hooks ---------------------------------------------------------------

    def implementations(self, hook_name: str) -> list[str]:
        """The plugins that implement ``hook_name``, in start order."""
        caller = getattr(self.pm.hook, hook_name)
        having = {self.pm.get_name(impl.plugin) for impl in caller.get_hookimpls()}
        return [name for name in self.plugins if name in having]

    def _caller_of(self, hook_name: str, name: str) -> Any:
        """pluggy's caller of ``hook_name`` restricted to plugin ``name`` (cached until the set changes)."""
        caller = self._callers.get((hook_name, name))
        if caller is None:
            others = [p for n, p in self.pm.list_name_plugin() if n != name]
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            self._callers[hook_name, name] = caller
        return caller

    async def call_one(
        self, name: str, hook_name: str, timeout: float | None, **kwargs: Any
    ) -> Any:
        """Call plugin ``name``'s ``hook_name`` through pluggy, awaiting it if it is async."""
        caller = self._caller_of(hook_name, name)
        result = caller(**kwargs)
        if not (caller.spec and caller.spec.opts.get("firstresult")):
            result = result[0] if result else None  # pluggy leaves None out of the list
        return await asyncio.wait_for(await_me_maybe(result), timeout)

    async def call_each(
        self, hook_name: str, *, timeout: float | None = None, reverse: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """Call ``hook_name`` on every plugin; returns results, or the exception per plugin."""
        results: dict[str, Any] = {}
        names = self.implementations(hook_name)
        for name in reversed(names) if reverse else names:
            try:
                results[name] = await self.call_one(name, hook_name, timeout, **kwargs)
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
        for name in reversed(self.implementations(hook_name)):
            result = await self.call_one(name, hook_name, None, **kwargs)
            if result is not None:
                return result
        return None

    # --- the lifecycle ---------------------------------------------------------------

    async def start(self, app: App, timeout: float) -> None:
        """``toyd_startup`` per plugin in config order; a built-in that fails is fatal.

        A third-party plugin that raises or times out is logged and disabled.
        """
        for name in self.implementations("toyd_startup"):
            started = time.perf_counter()
            try:
                await self.call_one(
                    name, "toyd_startup", timeout, app=app, settings=app.config.section(name)
                )
                log.debug(
                    "plugin %s started in %.0f ms", name, 1000 * (time.perf_counter() - started)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the rule below decides
                if isinstance(exc, TimeoutError):
                    problem = f"did not start within {timeout} s"
                else:
                    problem = f"failed to start: {type(exc).__name__}: {exc}"
                log.debug("plugin %s start-up traceback", name, exc_info=exc)
                if self.infos[name].builtin:
                    raise PluginError(name, problem) from exc
                log.error("plugin %r %s; disabled", name, problem)
                self.unregister(name)

    async def start_services(self, app: App, timeout: float) -> None:
        """Hand every plugin's ``toyd_services`` to the supervisor."""
        results = await self.call_each("toyd_services", timeout=timeout, app=app)
        for name, services in results.items():
            if isinstance(services, BaseException) or services is None:
                continue
            for service in services:
                app.supervisor.start(name, service)

    async def reconfigure(self, app: App, new: Config, timeout: float) -> list[str]:
        """``toyd_reconfigure`` for each plugin whose section changed; returns those needing a restart.

        A plugin that raises keeps its old settings; one without the hook, or that
        returns False, needs a restart for the change.
        """
        changed = [name for name in self.plugins if app.config.section(name) != new.section(name)]
        live = set(self.implementations("toyd_reconfigure"))
        needs_restart = []
        for name in changed:
            if name not in live:
                needs_restart.append(name)
                continue
            try:
                applied = await self.call_one(
                    name, "toyd_reconfigure", timeout, app=app, settings=new.section(name)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the old settings stay in force
                log.error("plugin %s kept its old settings: %s: %s", name, type(exc).__name__, exc)
                applied = False
            if not applied:
                needs_restart.append(name)
        return needs_restart

    async def shutdown(self, app: App, timeout: float) -> None:
        """``toyd_shutdown`` in reverse start order, bounded; errors are logged."""
        await self.call_each("toyd_shutdown", timeout=timeout, reverse=True, app=app)
