"""Writes ``status.json`` (role, state, plugins, pid) so scripts and boot tests can see the daemon."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from toyd import App, PluginDeclaration, Service, hookimpl, setting
from toyd.events import ConfigApplied, PluginFailed, StateChanged

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StatusFileSettings:
    """Settings of the ``statusfile`` section."""

    path: str = setting("status.json", doc="File name, relative to state_dir (or absolute).")


class StatusFilePlugin:
    """Keeps the status file current on every state change."""

    def __init__(self) -> None:
        self.file: Path | None = None
        self.status: dict[str, object] = {}

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device", "cloud"),
            settings=StatusFileSettings,
            summary="JSON status file in the state directory",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: StatusFileSettings) -> None:
        self.file = app.state_dir / settings.path
        self.status = {
            "role": app.role,
            "device_id": app.device_id,
            "pid": os.getpid(),
            "plugins": list(app.host.plugins),
            "state": app.state.value if app.state else None,
            "offline": app.offline,
            "ready": True,
            "config_version": 0,
            "failures": 0,
        }
        self._write()
        self._events = app.bus.subscribe("statusfile", (StateChanged, ConfigApplied, PluginFailed))

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("events", self._run)]

    async def _run(self) -> None:
        async for event in self._events:
            if isinstance(event, StateChanged):
                self.status.update(state=event.new.value, offline=event.offline)
            elif isinstance(event, ConfigApplied):
                self.status["config_version"] = event.version
            elif isinstance(event, PluginFailed):
                self.status["failures"] = int(self.status["failures"]) + 1  # type: ignore[call-overload]
            self._write()

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        self.status["ready"] = False
        self._write()

    def _write(self) -> None:
        """Atomic replace, so a reader never sees half a file."""
        assert self.file is not None
        self.status["updated"] = time.time()
        tmp = self.file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.status, indent=1))
            tmp.replace(self.file)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.file, exc.strerror)
