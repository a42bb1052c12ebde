"""Precision and recall of the filter over a labelled set: the numbers to tune against.

The set is YAML::

    unsafe:
      <category>:
        child: ["texts the child might say that must be flagged as <category>"]
        toy: ["reply sentences that must be flagged as <category>"]
    benign:
      child: ["texts that must pass untouched"]
      toy: [...]

A text counts as flagged when the verdict names a category (for personal information
that means it was redacted, even when the action is allow).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from toyd.errors import ConfigError

from .corpus import Line

BENIGN = "benign"


class Judged(Protocol):
    """What :func:`evaluate` needs of a result: its verdict."""

    @property
    def verdict(self) -> Any: ...


class Checker(Protocol):
    """The lexicon engine or the whole layered filter."""

    def check(self, text: str, speaker: Any = "child", key: str = "") -> Judged: ...


@dataclasses.dataclass(frozen=True)
class Sample:
    """One labelled text; ``label`` is a category or ``"benign"``."""

    text: str
    speaker: str
    label: str
    lang: str = "en"


@dataclasses.dataclass
class Score:
    """Counts for one category (or for flagged-vs-benign overall)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclasses.dataclass
class Report:
    """Per-category scores, the overall score, and the texts that were judged wrongly."""

    categories: dict[str, Score]
    overall: Score
    samples: int
    mistakes: list[tuple[Sample, str | None]]

    def table(self) -> str:
        """A fixed-width table, one row per category plus the overall row."""
        rows = [
            f"{'category':<24} {'n':>4} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}"
        ]
        for name, s in sorted(self.categories.items()):
            rows.append(
                f"{name:<24} {s.tp + s.fn:>4} {s.tp:>4} {s.fp:>4} {s.fn:>4} {s.precision:>9.3f} {s.recall:>7.3f}"
            )
        o = self.overall
        counts = f"{o.tp + o.fn:>4} {o.tp:>4} {o.fp:>4} {o.fn:>4}"
        rows.append(f"{'overall (flagged)':<24} {counts} {o.precision:>9.3f} {o.recall:>7.3f}")
        return "\n".join(rows)


def load(path: str | Path) -> list[Sample]:
    """Read a labelled set (format in the module docstring)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read evaluation set: {exc}", source=str(path)) from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            "an evaluation set is a mapping with 'unsafe' and 'benign'", source=str(path)
        )
    samples = []
    for category, by_speaker in (data.get("unsafe") or {}).items():
        samples.extend(_speakers(by_speaker, category, str(path)))
    samples.extend(_speakers(data.get("benign") or {}, BENIGN, str(path)))
    return samples


def _speakers(by_speaker: Any, label: str, source: str) -> Iterable[Sample]:
    if not isinstance(by_speaker, Mapping):
        raise ConfigError(f"{label}: expected child: [...] and/or toy: [...]", source=source)
    for speaker, texts in by_speaker.items():
        if speaker not in ("child", "toy"):
            raise ConfigError(
                f"{label}: unknown speaker {speaker!r}", source=source, hint="child or toy"
            )
        for text in texts or []:
            yield Sample(str(text), speaker, label)


def from_lines(lines: Iterable[Line]) -> list[Sample]:
    """Corpus lines as evaluation samples."""
    return [Sample(line.text, line.speaker, line.label, line.lang) for line in lines]


def evaluate(engine: Checker, samples: Iterable[Sample]) -> Report:
    """Judge every sample and count per category and overall."""
    cats: dict[str, Score] = {}
    overall = Score()
    mistakes: list[tuple[Sample, str | None]] = []
    n = 0
    for sample in samples:
        n += 1
        got = engine.check(sample.text, sample.speaker).verdict.category  # type: ignore[arg-type]
        if sample.label != BENIGN:
            score = cats.setdefault(sample.label, Score())
            if got == sample.label:
                score.tp += 1
            else:
                score.fn += 1
        if got is not None and got != sample.label:
            cats.setdefault(got, Score()).fp += 1
        if got != (None if sample.label == BENIGN else sample.label):
            mistakes.append((sample, got))
        flagged, unsafe = got is not None, sample.label != BENIGN
        overall.tp += flagged and unsafe
        overall.fp += flagged and not unsafe
        overall.fn += unsafe and not flagged
    return Report(cats, overall, n, mistakes)
