"""The ``safety`` config section: actions per category, extra words, replacement lines."""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping
from typing import Literal

from toyd import setting
from toyd.schema import did_you_mean

Action = Literal["allow", "redirect", "block"]
Severity = Literal["low", "medium", "high"]

BUILTIN_CATEGORIES = ("sexual", "violence", "self_harm", "abuse", "dangerous_activities",
                      "drugs_alcohol_gambling", "hate_bullying", "profanity", "personal_info", "grooming")
# A child telling us they want to hurt themselves, or are being hurt, always reaches a parent.
ALWAYS_ALERT = frozenset({"self_harm", "abuse"})


@dataclasses.dataclass(frozen=True)
class CategorySettings:
    """One category's tuning: its action, and words or lines a maker adds."""

    action: Action | None = setting(None, doc="allow | redirect | block (block also alerts a parent); "
                                              "unset = the built-in default.")
    words: tuple[str, ...] = setting(factory=tuple, doc="Extra words or phrases; '*' ends a word with any "
                                                        "ending ('stab*'). Matched after normalisation.")
    severity: Severity = setting("medium", doc="Severity of the extra words and patterns.")
    patterns: tuple[str, ...] = setting(factory=tuple, doc="Extra regular expressions over the normalised "
                                                           "text (lowercase, no apostrophes, single spaces).")
    benign: tuple[str, ...] = setting(factory=tuple, doc="Phrases in which a match is fine ('kill the "
                                                         "lights'); prefix 're:' for a regular expression.")
    lines: tuple[str, ...] = setting(factory=tuple, doc="What the toy says instead (replaces the built-in lines).")

    def __post_init__(self) -> None:
        for pattern in self.patterns + tuple(b[3:] for b in self.benign if b.startswith("re:")):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class SafetySettings:
    """Settings of the ``safety`` section."""

    categories: Mapping[str, CategorySettings] = setting(
        factory=lambda: types.MappingProxyType({}),
        doc="Per category: action, words, benign, lines. A name that is not built in defines a new "
            "category (it then needs words or patterns).")
    word_lists: tuple[str, ...] = setting(factory=tuple, doc="Extra lexicon files (same YAML format as the "
                                                             "built-in ones), relative to the config file.")
    toy_lines: tuple[str, ...] = setting(factory=tuple, doc="What the toy says instead of one of its own "
                                                            "sentences that was stopped (empty = built-in).")
    high_severity_blocks: bool = setting(True, doc="A high-severity match is blocked (and alerts) even where "
                                                   "the category's action is redirect.")
    alert_toy_blocks: bool = setting(True, doc="Alert a parent when a sentence of the toy's own reply is blocked.")

    def __post_init__(self) -> None:
        for name, cat in self.categories.items():
            if name in BUILTIN_CATEGORIES:
                if name in ALWAYS_ALERT and cat.action == "allow":
                    raise ValueError(f"categories.{name}.action cannot be 'allow': self-harm and abuse "
                                     "disclosures always get a caring answer and alert a parent")
                continue
            if not cat.words and not cat.patterns and not self.word_lists:  # word lists are checked on load
                hint = did_you_mean(name, BUILTIN_CATEGORIES)
                raise ValueError(f"unknown category {name!r}" + (f" ({hint})" if hint else "")
                                 + "; built-in: " + ", ".join(BUILTIN_CATEGORIES)
                                 + "; a new category needs words or patterns")
