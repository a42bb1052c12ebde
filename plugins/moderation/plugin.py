"""The ``moderation`` plugin: a moderation API's opinion, composed with the local filter.

``toyd_check_text`` is first-result and the host asks plugins last-listed first, so
with ``plugins: [safety, moderation]`` this plugin is asked first:

- API flags the text → a verdict in the mapped category, under the safety filter's
  policy (actions, lines, self-harm/abuse always alert), asked for through the
  ``toyd_safety_verdict`` hook: this plugin never imports the safety plugin;
- API says clean → None, and the local ``safety`` filter still judges the text
  (grooming patterns, personal information, profanity the API may not cover);
- API fails → ``on_error: local`` declines (the local filter answers alone);
  ``on_error: block`` fails closed: the local filter's verdict if it flags the text,
  else a gentle redirect, so nothing unchecked reaches the LLM or the speaker.

Personal information is redacted (:mod:`toyd.pii`) before the text leaves for the API.
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Mapping
from typing import Literal

from toyd import App, PluginDeclaration, hookimpl, httpclient, pii, setting
from toyd.turn import SAFETY_CATEGORIES, SafetyVerdict, Speaker, Turn

from .client import ModerationClient, ModerationError, ModerationResult

log = logging.getLogger(__name__)

IGNORE = "ignore"
UNCHECKED = "unchecked"  # the API failed and the text must not pass unchecked
# OpenAI's moderation categories → ours.
DEFAULT_MAP = types.MappingProxyType(
    {
        "sexual": "sexual",
        "sexual/minors": "sexual",
        "harassment": "hate_bullying",
        "harassment/threatening": "violence",
        "hate": "hate_bullying",
        "hate/threatening": "hate_bullying",
        "illicit": "dangerous_activities",
        "illicit/violent": "violence",
        "self-harm": "self_harm",
        "self-harm/intent": "self_harm",
        "self-harm/instructions": "self_harm",
        "violence": "violence",
        "violence/graphic": "violence",
    }
)


@dataclasses.dataclass(frozen=True)
class ModerationSettings:
    """Settings of the ``moderation`` section."""

    base_url: str = setting(
        "https://api.openai.com/v1", doc="API root; the plugin POSTs to {base_url}/moderations."
    )
    api_key: str | None = setting(
        None, doc="Bearer token; use {$env: NAME} or {$file: PATH}, never plain text."
    )
    model: str = setting("omni-moderation-latest", doc="Model name sent with each request.")
    timeout: float = setting(
        2.0, min=0.1, max=30, doc="Seconds to wait for an answer before on_error applies."
    )
    on_error: Literal["local", "block"] = setting(
        "local",
        doc="API down or nonsense: 'local' lets the local filter "
        "decide alone; 'block' fails closed.",
    )
    speakers: tuple[Literal["child", "toy"], ...] = setting(
        ("child", "toy"),
        doc="Whose texts go to the API (each toy sentence costs one request before TTS).",
    )
    threshold: float | None = setting(
        None,
        min=0,
        max=1,
        doc="Flag an API category when its score reaches this (unset = trust the API's own flags).",
    )
    high_score: float = setting(
        0.8, min=0, max=1, doc="Scores from here on count as high severity."
    )
    categories: Mapping[str, str] = setting(
        factory=lambda: types.MappingProxyType({}),
        doc="API category → safety category, over the built-in mapping of "
        "OpenAI's categories; 'ignore' drops one. Unmapped ones are ignored.",
    )

    def __post_init__(self) -> None:
        for api_name, ours in self.categories.items():
            if ours not in SAFETY_CATEGORIES and ours != IGNORE:
                raise ValueError(
                    f"categories.{api_name}: unknown safety category {ours!r}; one of "
                    + ", ".join(SAFETY_CATEGORIES)
                    + f" or {IGNORE!r}"
                )
        httpclient.check_base_url(self.base_url)

    @property
    def mapping(self) -> dict[str, str]:
        """The mapping in force: built-in entries, overridden and extended by the config."""
        merged = {**DEFAULT_MAP, **self.categories}
        return {k: v for k, v in merged.items() if v != IGNORE}


class ModerationPlugin:
    """Consults the moderation API and declines when it sees nothing wrong."""

    def __init__(self) -> None:
        self.settings: ModerationSettings | None = None
        self.client: ModerationClient | None = None
        self.app: App | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=ModerationSettings,
            summary="Moderation API (OpenAI-compatible) in front of the local safety filter",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: ModerationSettings) -> None:
        self.app = app
        self._configure(settings)
        if "safety" not in app.config.core.plugins:
            log.warning(
                "moderation is enabled without the safety plugin: texts the API finds clean pass "
                "unredacted and unchecked for grooming; enable safety too"
            )

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: ModerationSettings) -> bool:
        self._configure(settings)
        return True

    def _configure(self, settings: ModerationSettings) -> None:
        self.client = ModerationClient(
            settings.base_url, settings.model, settings.api_key, settings.timeout
        )
        self.settings = settings

    @hookimpl
    async def toyd_check_text(
        self, turn: Turn, text: str, speaker: Speaker
    ) -> SafetyVerdict | None:
        """Flagged by the API → verdict; clean → None so the local filter runs next."""
        settings, client, app = self.settings, self.client, self.app
        if settings is None or client is None or app is None or speaker not in settings.speakers:
            return None
        if not text.strip():
            return None
        redacted = pii.redact(text).text  # personal information never leaves for a third party
        try:
            result = await app.run_blocking(client.moderate, redacted)
        except ModerationError as exc:
            log.warning(
                "turn %s: moderation API failed (%s); %s",
                turn.turn_id,
                exc,
                "failing closed" if settings.on_error == "block" else "local filter decides",
            )
            if settings.on_error != "block":
                return None
            verdict = await self._policy(app, turn, redacted, speaker, UNCHECKED, "none")
            return verdict or SafetyVerdict(
                safe=False, action="redirect", category=UNCHECKED, text=redacted
            )
        category, severity = self._judge(result, settings)
        if category is None:
            return None
        verdict = await self._policy(app, turn, redacted, speaker, category, severity)
        if verdict is not None:
            log.info(
                "turn %s %s: moderation API flagged %s (%s)",
                turn.turn_id,
                speaker,
                category,
                severity,
            )
        return verdict

    @staticmethod
    async def _policy(
        app: App, turn: Turn, text: str, speaker: Speaker, category: str, severity: str
    ) -> SafetyVerdict | None:
        """The safety filter's verdict for the category; without one, a plain block or redirect."""
        plugins = app.config.core.plugins
        if (
            "safety" in plugins
        ):  # the filter owns actions, lines and alerts (None: allowed by config)
            return await app.host.call_first(
                "toyd_safety_verdict",
                turn=turn,
                text=text,
                speaker=speaker,
                category=category,
                severity=severity,
            )
        if category == UNCHECKED:
            return None
        return SafetyVerdict(
            safe=False,
            action="block" if severity == "high" else "redirect",
            category=category,
            severity=severity,
            text=text,  # type: ignore[arg-type]
            alert=severity == "high" or category in ("self_harm", "abuse"),
        )

    @staticmethod
    def _judge(result: ModerationResult, settings: ModerationSettings) -> tuple[str | None, str]:
        """The worst mapped category the API flagged, and its severity."""
        best: tuple[float, str] | None = None
        for api_name, ours in settings.mapping.items():
            score = result.scores.get(api_name, 0.0)
            hit = (
                score >= settings.threshold
                if settings.threshold is not None
                else result.categories.get(api_name, False)
            )
            if hit and (best is None or score > best[0]):
                best = (score, ours)
        if best is None:
            return None, "none"
        return best[1], "high" if best[0] >= settings.high_score else "medium"
