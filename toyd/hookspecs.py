"""Lifecycle hooks every plugin may implement, for both roles, grouped by phase.

Phases: declare (what the plugin is and which config section it owns) → CLI →
startup → services (long-running work) → reconfigure (live config changes) →
shutdown. Plugins talk to each other through events on ``app.bus``, never through
these hooks. Role-specific hooks live in :mod:`toyd.device_hookspecs` and
:mod:`toyd.cloud_hookspecs`.

Any implementation may be ``async def``; the host awaits it
(:func:`toyd.asyncutil.await_me_maybe`). Hooks are called per plugin with their own
error handling, so one faulty plugin cannot silence the others. Call hooks with
keyword arguments only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

from .markers import hookimpl, hookspec

if TYPE_CHECKING:
    from .app import App
    from .plugin import CliCommand, PluginDeclaration, Service

__all__ = ["hookimpl", "hookspec"]  # kept importable from here for existing plugins


# --- declare ---------------------------------------------------------------------------


@hookspec
def toyd_declare() -> PluginDeclaration:
    """Say which roles the plugin serves and which settings dataclass its section uses.

    Contract: required for every plugin; must be cheap and free of I/O (it runs for
    ``toyd plugins`` and ``toyd check-config``). Return a
    :class:`~toyd.plugin.PluginDeclaration`. The section is the top-level YAML key named
    like the plugin's entry point.

    Example::

        @hookimpl
        def toyd_declare(self):
            return PluginDeclaration(roles=("device",), settings=ButtonSettings,
                                     summary="Push-to-talk button on a GPIO pin")
    """


# --- CLI -------------------------------------------------------------------------------


@hookspec
def toyd_cli_commands() -> Iterable[CliCommand]:
    """Add sub-commands to the ``toyd`` CLI (``toyd wakeword``, ``toyd safety`` ...).

    Contract: return an iterable of :class:`~toyd.plugin.CliCommand`; called for every
    installed plugin when the command line may name a plugin command (``toyd --help``,
    or a command that is not a core one), never for ``--version`` or the core commands,
    so a plugin costs nothing there. Import heavy modules inside ``run`` only. A name
    that clashes with a core command or another plugin's is an error.

    Example::

        @hookimpl
        def toyd_cli_commands(self):
            return [CliCommand("hello", "say hello", add_arguments=lambda p: None,
                               run=lambda args: print("hello") or 0)]
    """


# --- startup ---------------------------------------------------------------------------


@hookspec
def toyd_startup(app: App, settings: Any) -> None | Awaitable[None]:
    """Prepare the plugin: keep references, open devices, load models, subscribe to events.

    Contract: called once per enabled plugin, in the order of ``plugins:`` in the config,
    before any service runs; ``settings`` is this plugin's validated section (an
    instance of the dataclass from :func:`toyd_declare`, or None). May be async. Bounded
    by ``startup_timeout``: a built-in plugin that raises or times out stops the daemon
    with a clear error; a third-party plugin is logged and disabled. Blocking work
    (model loading) goes to ``app.run_blocking``.

    Example::

        @hookimpl
        async def toyd_startup(self, app, settings):
            self.settings = settings
            self.events = app.bus.subscribe("button", (StateChanged,))
    """


# --- services --------------------------------------------------------------------------


@hookspec
def toyd_services(app: App) -> Iterable[Service]:
    """Contribute long-running work: each :class:`~toyd.plugin.Service` runs as a named task.

    Contract: called once after every plugin started. The supervisor restarts a
    service that raises, with exponential backoff, and cancels and awaits every
    service on shutdown; a service must re-raise ``CancelledError``. A service that
    returns is finished and not restarted.

    Example::

        @hookimpl
        def toyd_services(self, app):
            return [Service("events", self.run_events)]
    """


# --- live reconfiguration --------------------------------------------------------------


@hookspec
def toyd_reconfigure(app: App, settings: Any) -> bool | Awaitable[bool]:
    """Apply a new, already validated settings section while running.

    Contract: called per plugin whose section changed (file reload on SIGHUP or a
    config push). Return True when the change is in force, False when it needs a
    restart of the daemon (the host logs that). May be async. Raising keeps the old
    settings in force for that plugin and is logged.

    Example::

        @hookimpl
        def toyd_reconfigure(self, app, settings):
            self.settings = settings
            return True
    """


# --- shutdown --------------------------------------------------------------------------


@hookspec
def toyd_shutdown(app: App) -> None | Awaitable[None]:
    """Release what the plugin holds (devices, files, connections).

    Contract: called in reverse start order after every service has been cancelled;
    may be async; bounded by the remaining ``shutdown_timeout``. Errors are logged.

    Example::

        @hookimpl
        async def toyd_shutdown(self, app):
            await self.db.close()
    """
