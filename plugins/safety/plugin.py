"""The ``safety`` plugin: answers ``toyd_check_text`` with the layered filter; adds ``toyd safety``."""

from __future__ import annotations

import logging
from pathlib import Path

from toyd import App, CliCommand, PluginDeclaration, hookimpl
from toyd.turn import SafetyVerdict, Speaker, Turn

from .layers import SafetyFilter
from .settings import SafetySettings

log = logging.getLogger(__name__)


def _base_dir(app: App) -> Path | None:
    """Word lists and model paths are relative to the config file, like every other path in it."""
    source = Path(app.config.source)
    return source.parent if source.is_file() else None


class SafetyPlugin:
    """Judges every text of a turn: the child's words and each sentence of the reply."""

    def __init__(self) -> None:
        self.filter: SafetyFilter | None = None
        self.app: App | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud", "device"),
            settings=SafetySettings,
            summary="Child-safety filter: lexicon, learned classifier, conversation "
            "context, redaction, optional LLM judge",
        )

    @hookimpl
    def toyd_cli_commands(self) -> list[CliCommand]:
        from .cli import COMMAND

        return [COMMAND]

    @hookimpl
    async def toyd_startup(self, app: App, settings: SafetySettings) -> None:
        self.app = app
        # word lists, weights and the embedding model are file I/O: loaded once, off the event loop
        self.filter = await app.run_blocking(SafetyFilter.build, settings, _base_dir(app))
        log.info(
            "safety filter ready: %d lexicon categories, classifier %s, judge %s",
            len(self.filter.engine.categories),
            "on" if self.filter.classifier else "off",
            "on" if self.filter.judge else "off",
        )

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: SafetySettings) -> bool:
        # a bad word list raises here and the old filter stays in force
        self.filter = await app.run_blocking(SafetyFilter.build, settings, _base_dir(app))
        return True

    @hookimpl
    async def toyd_check_text(
        self, turn: Turn, text: str, speaker: Speaker
    ) -> SafetyVerdict | None:
        """Judge in an executor: an embedding takes milliseconds, a judge a round trip."""
        safety, app = self.filter, self.app
        if safety is None or app is None:
            return None
        session = f"{turn.device_id}\0{turn.session_id}"
        if safety.classifier is None and safety.judge is None:
            decision = safety.check(
                text, speaker, turn.turn_id, session
            )  # tens of µs: no thread hop
        else:
            decision = await app.run_blocking(safety.check, text, speaker, turn.turn_id, session)
        verdict = decision.verdict
        if verdict.category is not None:
            log.info(
                "turn %s %s: %s %s (%s) by %s, score %s",
                turn.turn_id,
                speaker,
                verdict.action,
                verdict.category,
                verdict.severity,
                decision.layer,
                "-" if decision.score is None else f"{decision.score:.2f}",
            )
        return verdict

    @hookimpl
    def toyd_safety_verdict(
        self, turn: Turn, text: str, speaker: Speaker, category: str, severity: str
    ) -> SafetyVerdict | None:
        """A category another plugin found, under this filter's policy (its actions and lines)."""
        safety = self.filter
        if safety is None:
            return None
        engine = safety.engine
        if (
            category == "unchecked"
        ):  # the other plugin could not check: the lexicon's verdict, else redirect
            local = engine.check(text, speaker, key=turn.turn_id).verdict
            if not local.safe:
                return local
            return engine.redirect("unchecked", text, speaker, turn.turn_id)
        return engine.verdict_for(category, severity, text, speaker, turn.turn_id)
