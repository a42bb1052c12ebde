"""A daemon of one role: start-up → main loop → bounded graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from . import pushed_config, statedir, systemd
from .app import App
from .bus import EventBus
from .config import Config
from .conversation import Conversation
from .errors import ToydError
from .host import PluginHost
from .outbox import Outbox, OutboxError
from .parent_events import ParentEventWriter
from .plugin import Service
from .registry import Registry
from .supervisor import Supervisor

log = logging.getLogger(__name__)


class Daemon:
    """Owns the plugin host, the bus, the supervisor and (device role) the conversation."""

    def __init__(
        self,
        config: Config,
        *,
        registry: Registry | None = None,
        simulate: bool = False,
        state_dir: str | None = None,
        config_path: str | None = None,
        overrides: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.role = config.core.role
        self.registry = registry or Registry()
        self.simulate = simulate
        self._state_dir_override = state_dir
        self._overrides = overrides  # core keys set on the command line; a reload keeps them
        self.app: App | None = None
        self.started_at = 0.0
        self.ready_at = 0.0
        self._stop = asyncio.Event()
        self._parent_events: ParentEventWriter | None = None

    async def start(self) -> App:
        """Load and start every enabled plugin and its services; then tell systemd READY."""
        self.started_at = time.monotonic()
        core = self.config.core
        path = statedir.prepare(statedir.resolve(core.state_dir, self._state_dir_override))
        # a pushed overlay is in force before any plugin starts: settings that need a restart take effect
        self.config = pushed_config.apply_saved(
            self.config, path, self.registry.schema, self.registry.names
        )
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        host = PluginHost(self.role, self.registry)
        host.load(core.plugins)
        supervisor = Supervisor(bus)
        conversation = (
            Conversation(bus, turn_timeout=core.turn_timeout) if self.role == "device" else None
        )
        app = App(self.role, self.config, bus, supervisor, host, path, self.simulate, conversation)
        if self.config_path:
            app.reloader = self.reload
        self.app = app
        if self.role == "device":
            await self._open_outbox(app)
        await host.start(app, core.startup_timeout)
        if conversation is not None:
            supervisor.start("core", Service("conversation", conversation.run))
        await host.start_services(app, core.startup_timeout)
        interval = systemd.watchdog_interval()
        if interval:
            supervisor.spawn(_watchdog(interval), "core:watchdog")
        self.ready_at = time.monotonic()
        systemd.notify(f"READY=1\nSTATUS=toyd {self.role} running with {len(host.plugins)} plugins")
        app.ready.set()
        log.info(
            "READY: toyd %s %s, plugins: %s (%.0f ms)",
            self.role,
            core.device_id,
            ", ".join(host.plugins) or "none",
            (self.ready_at - self.started_at) * 1000,
        )
        return app

    async def _open_outbox(self, app: App) -> None:
        """The outbox takes parent events before any plugin runs; without it the toy still works."""
        try:
            app.outbox = await Outbox(
                app.state_dir / "outbox.db", max_items=self.config.core.outbox_max_items
            ).open()
        except OutboxError as exc:
            log.error("%s; parent events will not be kept", exc)
            return
        self._parent_events = ParentEventWriter(app.bus, app.outbox, app.device_id)
        app.supervisor.start("core", Service("parent-events", self._parent_events.run))

    async def reload(self) -> str | None:
        """Re-read the config file (SIGHUP); an invalid file keeps the running config.

        Returns None when the new file is in force, else the error message.
        """
        from .config import load_file
        from .events import ConfigRejected

        if self.app is None or not self.config_path:
            return "the daemon was not started from a config file; nothing to reload"
        try:
            new = load_file(self.config_path, self.registry.schema, self.registry.names)
        except ToydError as exc:
            log.error("reload rejected, the running config stays: %s", exc)
            self.app.bus.publish(ConfigRejected(source=self.config_path, error=str(exc)))
            return str(exc)
        # keep the command-line overrides (--device-id, --log-level, --disable) in force
        new = new.replace_core(**{k: getattr(self.config.core, k) for k in self._overrides})
        await self.app.apply_config(new, source=self.config_path)
        self.config = new
        return None

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down (signal handlers call this)."""
        self._stop.set()

    async def stop(self) -> None:
        """Cancel services, then call ``toyd_shutdown`` in reverse order; bounded."""
        app = self.app
        if app is None:
            return
        deadline = time.monotonic() + self.config.core.shutdown_timeout
        systemd.notify("STOPPING=1")
        await app.supervisor.stop(max(deadline - time.monotonic(), 0.05) * 0.6)
        await app.host.shutdown(app, max(deadline - time.monotonic(), 0.05))
        if app.conversation is not None:
            app.conversation.close()
        if app.outbox is not None:
            if self._parent_events is not None:  # events published before the stop are kept too
                await self._parent_events.drain()
            await app.outbox.close()
        app.bus.close()
        self.app = None
        log.info("stopped")

    async def run(self, on_ready: Callable[[App], Any] | None = None) -> None:
        """Start, wait for SIGTERM/SIGINT (SIGHUP reloads), stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            app = await self.start()
            if self.config_path:
                loop.add_signal_handler(
                    signal.SIGHUP, lambda: app.spawn(app.reload_config(), "core:reload")
                )
            if on_ready:
                on_ready(app)
            await self._stop.wait()
            log.info("stopping")
        finally:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)


async def _watchdog(interval: float) -> None:
    """Ping systemd from the event loop itself: a stuck loop stops the pings."""
    while True:
        systemd.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


__all__ = ["Daemon", "ToydError"]
