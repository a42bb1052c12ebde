"""Handles each config push: validate, apply, persist, answer, re-apply after reloads.

Every push gets one answer on ``<prefix>/<id>/config/result`` (retained):
``applied`` (in force now), ``pending`` (saved; some sections take effect at the next
start, named in ``restart``) or ``refused`` (with the reason; the config in force stays).
No payload can make the handler raise: the command service never restarts because of input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from toyd import App, Config, ConfigError, pushed_config

from . import config_overlay as overlay

log = logging.getLogger(__name__)


class ConfigPushHandler:
    """Holds the applied push (version + overlay) and the file config it sits on."""

    def __init__(
        self,
        app: App,
        topic: str,
        max_bytes: Callable[[], int],
        *,
        on_applied: Callable[[], None],
        on_rejected: Callable[[str, str, dict[str, Any]], None],
        on_result: Callable[[dict[str, Any]], None] = lambda result: None,
    ) -> None:
        self.app = app
        self.topic = topic
        self.source = f"mqtt:{topic}"
        self.max_bytes = max_bytes
        self.on_applied = on_applied
        self.on_rejected = on_rejected
        self.on_result = on_result
        self.applied_version = 0
        self.push: overlay.Push | None = None
        self.last_result: dict[str, Any] | None = None
        self.file_base = pushed_config.file_base(app.config)

    async def handle(self, payload: bytes) -> None:
        """One message on the config topic: answer it whatever it holds."""
        if not payload:
            log.info(
                "config push on %s was cleared; the applied config (version %d) stays",
                self.topic,
                self.applied_version,
            )
            return
        try:
            await self._handle(payload)
        except Exception as exc:  # noqa: BLE001 - no input may restart the command service
            log.error("config push from %s failed: %s: %s", self.topic, type(exc).__name__, exc)
            log.debug("config push traceback", exc_info=exc)
            self._refuse(
                None, ConfigError(f"could not be applied: {type(exc).__name__}", source=self.source)
            )

    async def _handle(self, payload: bytes) -> None:
        version = None
        try:
            push = overlay.parse(payload, self.source, self.max_bytes())
            version = push.version
            if push.version == self.applied_version and self.last_result is not None:
                log.debug(
                    "config push version %d from %s is the one in force", push.version, self.topic
                )
                self.on_result(self.last_result)  # a retained push seen again: the same answer
                return
            if push.version < self.applied_version:
                raise ConfigError(
                    f"version {push.version} is older than the version in force "
                    f"({self.applied_version})",
                    source=self.source,
                    path="version",
                    hint="raise the version on every edit",
                )
            new = overlay.build(self.app, self.file_base, push, self.source)
        except ConfigError as exc:
            self._refuse(version, exc)
            return
        restart = await self._apply(push, new)
        await self.app.run_blocking(
            pushed_config.save,
            self.app.state_dir,
            pushed_config.SavedPush(self.source, push.version, push.overlay),
        )
        self._answer(push, restart)

    def _refuse(self, version: int | None, exc: ConfigError) -> None:
        log.error("config push rejected, the current config stays: %s", exc)
        self.on_rejected(
            self.source, str(exc), {"path": exc.path, "problem": exc.problem, "hint": exc.hint}
        )
        self.on_result(
            {
                "version": version,
                "result": "refused",
                "error": str(exc),
                "path": exc.path,
                "config_version": self.applied_version,
                "time": time.time(),
            }
        )

    def _answer(self, push: overlay.Push, restart: list[str]) -> None:
        live = [name for name in push.overlay if name not in restart]
        self.last_result = {
            "version": push.version,
            "result": "pending" if restart else "applied",
            "applied": live,
            "restart": restart,
            "config_version": push.version,
            "time": time.time(),
        }
        self.on_result(self.last_result)

    async def apply_saved(self) -> None:
        """At start: the daemon already put the saved push in force; take over its version."""
        saved = await self.app.run_blocking(pushed_config.load, self.app.state_dir)
        if saved is None or saved.source != self.source:
            return
        push = overlay.Push(saved.version, saved.overlay)
        try:
            new = overlay.build(self.app, self.file_base, push, self.source)
        except ConfigError as exc:
            log.warning(
                "the saved config push version %d no longer fits this toy's config and is ignored: %s",
                push.version,
                exc,
            )
            return
        self._answer(push, await self._apply(push, new))

    async def rebase(self) -> None:
        """The config file was reloaded: keep the pushed overlay on top of the new file."""
        self.file_base = pushed_config.file_base(self.app.config)
        if self.push is None:
            return
        try:
            new = overlay.build(self.app, self.file_base, self.push, self.source)
        except ConfigError as exc:
            log.warning(
                "the pushed config version %d does not fit the reloaded file and is dropped: %s",
                self.push.version,
                exc,
            )
            self.push, self.applied_version = None, 0
            return
        await self._apply(self.push, new)

    async def _apply(self, push: overlay.Push, new: Config) -> list[str]:
        self.applied_version, self.push = push.version, push
        restart = await self.app.apply_config(new, version=push.version, source=self.source)
        log.info(
            "config version %d from %s applied%s",
            push.version,
            self.topic,
            f"; at the next start: {', '.join(restart)}" if restart else "",
        )
        self.on_applied()
        return restart
