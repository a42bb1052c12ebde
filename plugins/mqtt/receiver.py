"""The toy's side of config push: validate, apply, persist, re-apply after restarts and reloads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from toyd import App, Config, ConfigError

from . import pushed

log = logging.getLogger(__name__)


class PushReceiver:
    """Holds the applied push (version + overlay) and the file config it sits on."""

    def __init__(self, app: App, topic: str, max_bytes: Callable[[], int], *, on_applied: Callable[[], None],
                 on_rejected: Callable[[str, str, dict[str, Any]], None]) -> None:
        self.app = app
        self.topic = topic
        self.source = f"mqtt:{topic}"
        self.max_bytes = max_bytes
        self.on_applied = on_applied
        self.on_rejected = on_rejected
        self.applied_version = 0
        self.push: pushed.Push | None = None
        self.file_base = pushed.file_base(app.config)

    async def handle(self, payload: bytes) -> None:
        """One message on the config topic: ignore stale, refuse invalid, apply and save good."""
        if not payload:
            log.info("config push on %s was cleared; the applied config (version %d) stays",
                     self.topic, self.applied_version)
            return
        try:
            push = pushed.parse(payload, self.source, self.max_bytes())
            if push.version <= self.applied_version:
                level = logging.DEBUG if push.version == self.applied_version else logging.INFO
                log.log(level, "ignored config push version %d from %s: version %d is applied",
                        push.version, self.topic, self.applied_version)
                return
            new = pushed.build(self.app, self.file_base, push, self.source)
        except ConfigError as exc:
            log.error("config push rejected, the current config stays: %s", exc)
            self.on_rejected(self.source, str(exc), {"path": exc.path, "problem": exc.problem, "hint": exc.hint})
            return
        await self._apply(push, new)
        await self.app.run_blocking(pushed.save, self.app.state_dir, self.topic, push)

    async def apply_saved(self) -> None:
        """At start: re-apply the last good push, before the broker is even reached."""
        saved = await self.app.run_blocking(pushed.load, self.app.state_dir)
        if saved is None or saved[0] != self.topic:
            return
        push = saved[1]
        try:
            new = pushed.build(self.app, self.file_base, push, self.source)
        except ConfigError as exc:
            log.warning("the saved config push version %d no longer fits this toy's config and is ignored: %s",
                        push.version, exc)
            return
        await self._apply(push, new)

    async def rebase(self) -> None:
        """The config file was reloaded: keep the pushed overlay on top of the new file."""
        self.file_base = pushed.file_base(self.app.config)
        if self.push is None:
            return
        try:
            new = pushed.build(self.app, self.file_base, self.push, self.source)
        except ConfigError as exc:
            log.warning("the pushed config version %d does not fit the reloaded file and is dropped: %s",
                        self.push.version, exc)
            self.push, self.applied_version = None, 0
            return
        await self._apply(self.push, new)

    async def _apply(self, push: pushed.Push, new: Config) -> None:
        self.applied_version, self.push = push.version, push
        restart = await self.app.apply_config(new, version=push.version, source=self.source)
        log.info("config version %d from %s applied%s", push.version, self.topic,
                 f"; after a restart: {', '.join(restart)}" if restart else "")
        self.on_applied()
