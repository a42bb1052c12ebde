"""The ``safety`` plugin: answers ``toyd_check_text`` with the local engine; adds ``toyd safety``."""

from __future__ import annotations

import logging
from pathlib import Path

from toyd import App, CliCommand, PluginDeclaration, hookimpl
from toyd.turn import SafetyVerdict, Speaker, Turn

from .engine import SafetyEngine
from .settings import SafetySettings

log = logging.getLogger(__name__)


def _base_dir(app: App) -> Path | None:
    """Word lists are relative to the config file, like every other path in it."""
    source = Path(app.config.source)
    return source.parent if source.is_file() else None


class SafetyPlugin:
    """Judges every text of a turn: the child's words and each sentence of the reply."""

    def __init__(self) -> None:
        self.engine: SafetyEngine | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("cloud", "device"), settings=SafetySettings,
                                 summary="Local child-safety filter: lexicons, patterns, context rules, redaction")

    @hookimpl
    def toyd_cli_commands(self) -> list[CliCommand]:
        from .cli import COMMAND

        return [COMMAND]

    @hookimpl
    async def toyd_startup(self, app: App, settings: SafetySettings) -> None:
        # reading and compiling the word lists is file I/O: off the event loop
        self.engine = await app.run_blocking(SafetyEngine.build, settings, _base_dir(app))
        log.info("safety filter ready: %d categories", len(self.engine.categories))

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: SafetySettings) -> bool:
        # a bad word list raises here and the old engine stays in force
        self.engine = await app.run_blocking(SafetyEngine.build, settings, _base_dir(app))
        return True

    @hookimpl
    def toyd_check_text(self, turn: Turn, text: str, speaker: Speaker) -> SafetyVerdict | None:
        """Judge synchronously: tens of microseconds, cheaper than a thread hop."""
        if self.engine is None:
            return None
        finding = self.engine.check(text, speaker, key=turn.turn_id)
        if finding.verdict.category is not None:
            log.info("turn %s %s: %s %s (%s)", turn.turn_id, speaker, finding.verdict.action,
                     finding.verdict.category, finding.verdict.severity)
        return finding.verdict
