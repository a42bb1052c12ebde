"""The handle a plugin gets: config, bus, state, supervisor, state directory."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from .bus import EventBus
from .config import Config
from .conversation import Conversation
from .host import PluginHost
from .outbox import Outbox
from .state import State
from .supervisor import Supervisor

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclasses.dataclass
class App:
    """Everything a running daemon shares with its plugins."""

    role: str
    config: Config
    bus: EventBus
    supervisor: Supervisor
    host: PluginHost
    state_dir: Path
    simulate: bool = False
    conversation: Conversation | None = None
    outbox: Outbox | None = None
    # Set by the daemon when it runs from a config file: re-reads it (the SIGHUP path).
    reloader: Callable[[], Coroutine[Any, Any, str | None]] | None = dataclasses.field(
        default=None, repr=False
    )
    # Set once the daemon has told systemd READY. Work that can wait for it (importing a
    # network library before the first connect) does, so start-up has the CPU to itself:
    # an import on a thread during start-up took 0.15 s longer to READY than in line.
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event, repr=False)

    @property
    def device_id(self) -> str:
        return self.config.core.device_id

    @property
    def state(self) -> State | None:
        """The conversation state (device role), or None in the cloud role."""
        return self.conversation.state if self.conversation else None

    @property
    def offline(self) -> bool:
        return bool(self.conversation and self.conversation.machine.offline)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Start a task owned by the daemon (cancelled and awaited on shutdown)."""
        return self.supervisor.spawn(coro, name)

    async def run_blocking(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (model inference, file I/O) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))

    async def reload_config(self) -> str | None:
        """Re-read the config file like SIGHUP does; returns None on success, else the error."""
        if self.reloader is None:
            return "the daemon was not started from a config file; nothing to reload"
        return await self.reloader()

    async def apply_config(self, new: Config, *, version: int = 0, source: str = "") -> list[str]:
        """Put an already validated config in force; returns what needs a restart.

        Each plugin whose section changed gets ``toyd_reconfigure``; a plugin that
        raises keeps its old settings. Changes to core settings or to the plugin list
        are reported as needing a restart.
        """
        from .events import ConfigApplied

        old, needs_restart = self.config, []
        for key in ("plugins", "state_dir", "device_id", "role"):
            if getattr(old.core, key) != getattr(new.core, key):
                needs_restart.append(key)
        needs_restart += await self.host.reconfigure(self, new, self.config.core.startup_timeout)
        self.config = new
        if needs_restart:
            log.warning(
                "config %s applied; these take effect after a restart: %s",
                source or new.source,
                ", ".join(needs_restart),
            )
        self.bus.publish(ConfigApplied(version=version, source=source or new.source))
        return needs_restart
