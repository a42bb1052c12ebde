"""The local safety engine: redact, normalise, match every category, pick the verdict.

Pure and synchronous (no I/O after it is built): a typical sentence takes tens of
microseconds (``bench/bench_safety.py``), so the hook calls it directly on the event
loop. The order of work for one text:

1. personal information is replaced by ``[phone]``, ``[email]``... (on the raw text);
2. the rest is normalised (:mod:`.normalize`);
3. each category scans it; a match is dropped when it lies inside a benign phrase
   ("kill the lights"), follows a negation in a negatable category ("don't do drugs"),
   or is a low/medium match in a story or game for a category that allows fantasy;
4. the worst finding wins: block > redirect, then always-alert categories, then
   severity. Self-harm and abuse always alert and get a caring line.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from toyd import pii
from toyd.errors import ConfigError
from toyd.turn import SafetyVerdict, Speaker

from .lexicon import (
    SPEAKERS,
    CategorySource,
    CompiledCategory,
    Scanner,
    compile_category,
    read_builtin,
    read_file,
)
from .normalize import masked_matcher, normalize
from .settings import ALWAYS_ALERT, BUILTIN_CATEGORIES, SafetySettings

SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}
ACTION_RANK = {"allow": 0, "redirect": 1, "block": 2}
HANGUL = re.compile("[\uac00-\ud7a3]")
NEGATION_WINDOW = 2  # words before a match that may negate it ("don't ever ...")
PII_SEVERITY = {
    "phone": "medium",
    "email": "medium",
    "address": "medium",
    "password": "medium",
    "school": "low",
    "surname": "low",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """A verdict plus what explains it (for ``toyd safety`` and logs)."""

    verdict: SafetyVerdict
    match: str | None = None  # the normalised words that matched
    redacted: tuple[str, ...] = ()  # kinds of personal information replaced

    def as_dict(self) -> dict[str, Any]:
        """The JSON line ``toyd safety`` prints: the four documented keys first."""
        v = self.verdict
        return {
            "text": v.text,
            "safe": v.safe,
            "category": v.category,
            "action": v.action,
            "severity": v.severity,
            "alert": v.alert,
            "match": self.match,
            "redacted": list(self.redacted),
            "replacement": v.replacement,
        }


def _overlapping(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """Every match, overlapping ones too: "going to kill my brother" has a medium and a high reading."""
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        yield m
        pos = m.start() + 1


class SafetyEngine:
    """Compiled categories and policy; :meth:`check` judges one text."""

    def __init__(
        self,
        categories: Sequence[CompiledCategory],
        common: Mapping[str, Any],
        settings: SafetySettings,
        scanners: Mapping[str, Scanner],
        allowed: frozenset[str] = frozenset(),
    ) -> None:
        self.categories = tuple(categories)
        self.allowed = allowed  # categories turned off by config
        self.scanners = scanners
        self.by_name = {c.name: c for c in self.categories}
        self.settings = settings
        self.negators = frozenset(normalize(" ".join(common["negators"])).split())
        self.fantasy = re.compile(
            r"\b(?:" + "|".join(re.escape(normalize(w)) for w in common["fantasy"]) + r")[a-z]*\b"
        )
        self.toy_lines = tuple(settings.toy_lines) or tuple(common["toy_lines"])
        self.default_lines = tuple(common["default_lines"])
        self.korean_lines = {k: tuple(v) for k, v in (common.get("korean_lines") or {}).items()}
        pi = settings.categories.get("personal_info")
        self.pii_action = (
            pi.action if pi and pi.action else common.get("personal_info_action", "allow")
        )
        self.pii_lines = (
            tuple(pi.lines) if pi and pi.lines else tuple(common["personal_info_lines"])
        )
        # starred words are nearly always swearing: profanity's words are tried first
        ranked = sorted(self.categories, key=lambda c: c.name != "profanity")
        words = list(dict.fromkeys(w for c in ranked for w in c.words if w.isalpha()))
        self.resolve = masked_matcher(words)
        self.known = frozenset(words)

    @classmethod
    def build(
        cls, settings: SafetySettings | None = None, base_dir: Path | None = None
    ) -> SafetyEngine:
        """Read the built-in lexicon, the maker's word lists and config; compile (blocking I/O)."""
        settings = settings or SafetySettings()
        sources, common = read_builtin()
        for name in settings.word_lists:
            path = Path(name).expanduser()
            read_file(path if path.is_absolute() or base_dir is None else base_dir / path, sources)
        for name, cat in settings.categories.items():
            if name == "personal_info":
                continue  # found by the redactor, not by words
            if name not in sources and not (cat.words or cat.patterns):
                raise ConfigError(
                    f"unknown category {name!r}",
                    path=f"safety.categories.{name}",
                    hint="built-in: "
                    + ", ".join(BUILTIN_CATEGORIES)
                    + "; a new category needs words or patterns",
                )
            src = sources.setdefault(name, CategorySource(name))
            if cat.action:
                src.action = cat.action
            src.add_terms(("child", "toy"), cat.severity, cat.words)
            src.add_terms(("child", "toy"), cat.severity, cat.patterns, raw=True)
            src.benign.extend(cat.benign)
            if cat.lines:
                src.lines = list(cat.lines)
        for name in ALWAYS_ALERT:
            if name in sources:
                sources[name].always_alert = True
                if sources[name].action == "allow":
                    raise ConfigError(
                        f"the {name} category cannot be allowed", path=f"safety.categories.{name}"
                    )
        order = {n: i for i, n in enumerate(BUILTIN_CATEGORIES)}
        ordered = sorted(sources.values(), key=lambda s: (order.get(s.name, len(order)), s.name))
        # an allowed category is off: its words are not even scanned for
        active = [s for s in ordered if s.action != "allow"]
        scanners = {speaker: Scanner.build(active, speaker) for speaker in SPEAKERS}
        allowed = frozenset(s.name for s in ordered if s.action == "allow")
        return cls([compile_category(s) for s in active], common, settings, scanners, allowed)

    def check(self, text: str, speaker: Speaker = "child", key: str = "") -> Finding:
        """Judge one text said by ``speaker``; ``key`` varies the replacement line (e.g. a turn id)."""
        if speaker not in self.scanners:
            raise ValueError(f"speaker must be 'child' or 'toy', not {speaker!r}")
        red = pii.redact(text)
        norm = normalize(red.text, self.resolve, self.known)
        best: tuple[tuple[int, int, int, int], CompiledCategory, str, str] | None = None
        fantasy: bool | None = None
        scanner = self.scanners[speaker]
        for regex in (scanner.terms, scanner.patterns):
            if regex is None:
                continue
            for m in _overlapping(regex, norm):
                for index, severity in scanner.hits.get(m.lastgroup or "", ()):
                    cat = self.categories[index]
                    if self._benign(cat, norm, m.start(), m.end()) or self._negated(
                        cat, norm, m.start()
                    ):
                        continue
                    if cat.fantasy and severity != "high":
                        fantasy = bool(self.fantasy.search(norm)) if fantasy is None else fantasy
                        if fantasy:
                            continue
                    action = self._action(cat, severity)
                    rank = (ACTION_RANK[action], cat.always_alert, SEVERITY_RANK[severity], -index)
                    if best is None or rank > best[0]:
                        best = (rank, cat, severity, m.group())
        if best is not None:
            _, cat, severity, matched = best
            return Finding(
                self._verdict(
                    cat.name,
                    self._action(cat, severity),
                    severity,
                    red.text,
                    speaker,
                    key,
                    cat.lines,
                    cat.always_alert,
                ),
                matched,
                red.kinds,
            )
        if red.kinds:
            severity = max(
                (PII_SEVERITY.get(k, "low") for k in red.kinds), key=SEVERITY_RANK.__getitem__
            )
            action = (
                "redirect" if speaker == "toy" and self.pii_action == "allow" else self.pii_action
            )
            return Finding(
                self._verdict(
                    "personal_info", action, severity, red.text, speaker, key, self.pii_lines, False
                ),
                None,
                red.kinds,
            )
        return Finding(SafetyVerdict(safe=True, text=red.text))

    def _benign(self, cat: CompiledCategory, norm: str, start: int, end: int) -> bool:
        if cat.benign is None:
            return False
        return any(b.start() <= start and end <= b.end() for b in cat.benign.finditer(norm))

    def _negated(self, cat: CompiledCategory, norm: str, start: int) -> bool:
        if not cat.negatable:
            return False
        return any(w in self.negators for w in norm[:start].split()[-NEGATION_WINDOW:])

    def _action(self, cat: CompiledCategory, severity: str) -> str:
        action = cat.action
        if severity == "high" and action == "redirect" and self.settings.high_severity_blocks:
            action = "block"
        return action

    def verdict_for(
        self, category: str, severity: str, text: str, speaker: Speaker, key: str = ""
    ) -> SafetyVerdict | None:
        """A verdict for a category found elsewhere (a moderation API) under this policy; None if allowed."""
        cat = self.by_name.get(category)
        if category == "personal_info":  # seen but not redactable: keep it from the LLM
            return self._verdict(
                category, "redirect", severity, text, speaker, key, self.pii_lines, False
            )
        if category in self.allowed:
            return None
        if cat is None:
            return self._verdict(
                category,
                "block" if severity == "high" else "redirect",
                severity,
                text,
                speaker,
                key,
                (),
                category in ALWAYS_ALERT,
            )
        action = self._action(cat, severity)
        if action == "allow":
            return None
        return self._verdict(
            category, action, severity, text, speaker, key, cat.lines, cat.always_alert
        )

    def redirect(self, category: str, text: str, speaker: Speaker, key: str = "") -> SafetyVerdict:
        """A gentle change of subject with no alert (a text that could not be checked)."""
        return self._verdict(category, "redirect", "none", text, speaker, key, (), False)

    def _verdict(
        self,
        category: str,
        action: str,
        severity: str,
        text: str,
        speaker: Speaker,
        key: str,
        lines: Sequence[str],
        always_alert: bool,
    ) -> SafetyVerdict:
        alert = always_alert or (
            action == "block" and (speaker == "child" or self.settings.alert_toy_blocks)
        )
        replacement = None
        if action != "allow":
            # the toy's own sentence is replaced by a neutral line; the child gets the category's line
            pool = self.toy_lines if speaker == "toy" else (lines or self.default_lines)
            if HANGUL.search(text) and self.korean_lines:  # a Korean child hears Korean
                ko = self.korean_lines
                pool = ko["toy"] if speaker == "toy" else ko.get(category, ko["default"])
            replacement = pool[zlib.crc32(f"{key}\0{text}".encode()) % len(pool)]
        return SafetyVerdict(
            safe=action == "allow",
            action=action,
            category=category,  # type: ignore[arg-type]
            severity=severity,
            text=text,
            replacement=replacement,
            alert=alert,
        )  # type: ignore[arg-type]
