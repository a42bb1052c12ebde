"""Runs plugin services as named tasks, restarts them with backoff, stops them bounded."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

from .bus import EventBus
from .events import PluginFailed
from .plugin import Service

log = logging.getLogger(__name__)


class Supervisor:
    """Owner of every long-running task in a daemon."""

    def __init__(
        self,
        bus: EventBus,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
    ) -> None:
        self.bus = bus
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.restarts: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, plugin: str, service: Service) -> asyncio.Task[None]:
        """Run ``service`` under supervision as task ``plugin:service``."""
        name = f"{plugin}:{service.name}"
        self.restarts.setdefault(name, 0)
        return self._track(asyncio.create_task(self._supervise(plugin, service, name), name=name))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a one-off task that is cancelled on shutdown; its errors are logged."""
        task = self._track(asyncio.create_task(coro, name=name))
        task.add_done_callback(_log_failure)
        return task

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def task_names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    async def _supervise(self, plugin: str, service: Service, name: str) -> None:
        delay = self.backoff_initial
        while True:
            started = time.monotonic()
            try:
                await service.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                if time.monotonic() - started >= self.stable_after:
                    delay = self.backoff_initial
                restart = service.restart
                log.error(
                    "service %s failed: %s: %s%s",
                    name,
                    type(exc).__name__,
                    exc,
                    f"; restarting in {delay:.1f} s" if restart else "; not restarted",
                )
                log.debug("service %s traceback", name, exc_info=exc)
                self.bus.publish(
                    PluginFailed(
                        plugin=plugin,
                        service=service.name,
                        error=f"{type(exc).__name__}: {exc}",
                        restart_in=delay if restart else None,
                    )
                )
                if not restart:
                    return
                await asyncio.sleep(delay * random.uniform(0.9, 1.1))
                self.restarts[name] += 1
                delay = min(delay * 2, self.backoff_max)
            else:
                log.info("service %s finished", name)
                return

    async def stop(self, timeout: float) -> list[str]:
        """Cancel every task and wait up to ``timeout``; returns names that did not stop."""
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        stuck = sorted(t.get_name() for t in pending)
        if stuck:
            log.warning(
                "tasks did not stop within %.1f s and were abandoned: %s", timeout, ", ".join(stuck)
            )
        return stuck


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task %s failed: %s: %s", task.get_name(), type(exc).__name__, exc)
        log.debug("task %s traceback", task.get_name(), exc_info=exc)
