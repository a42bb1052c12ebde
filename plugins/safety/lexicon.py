"""Word lists in YAML → one compiled matcher per category.

A lexicon file describes one category (the built-in ones live in ``lexicon/``; makers
add their own through ``safety.word_lists``); files naming the same category merge::

    category: violence
    action: redirect        # default action (config may override)
    negatable: true         # "don't" / "never" just before a term cancels it
    fantasy: true           # in a story or game, low/medium terms are fine
    terms:                  # phrases; "*" ends a word with any ending; repeated letters always match
      medium: [kill*, stab*]
      high: [behead*]
    toy_terms: {...}        # only when the toy says it
    child_terms: {...}      # only when the child says it
    patterns: {high: ["regex over the normalised text"]}   # also toy_patterns, child_patterns
    benign: [kill the lights, "killing it"]                 # a match inside one of these is fine
    lines: ["What the toy says instead."]

Terms and benign phrases are written like normal text; they are normalised like the
input, so ``don't`` and ``dont`` are the same.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from toyd.errors import ConfigError

from .normalize import normalize

# libyaml's loader when present: the lexicon is parsed at every start and reload
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SEVERITIES = ("low", "medium", "high")
SPEAKERS = ("child", "toy")
BUILTIN_DIR = Path(__file__).with_name("lexicon")
COMMON_FILE = "_common.yaml"
ACTIONS = ("allow", "redirect", "block")


@dataclasses.dataclass
class CategorySource:
    """A category as read from one or more files, before compiling."""

    name: str
    action: str = "redirect"
    negatable: bool = False
    fantasy: bool = False
    always_alert: bool = False
    terms: dict[tuple[str, str], list[str]] = dataclasses.field(
        default_factory=dict
    )  # (speaker, severity)
    patterns: dict[tuple[str, str], list[str]] = dataclasses.field(default_factory=dict)
    benign: list[str] = dataclasses.field(default_factory=list)
    lines: list[str] = dataclasses.field(default_factory=list)

    def add_terms(
        self, speakers: Iterable[str], severity: str, words: Iterable[str], *, raw: bool = False
    ) -> None:
        """Add words (or raw regexes) for some speakers at one severity."""
        target, words = (self.patterns if raw else self.terms), list(words)
        for speaker in speakers:
            target.setdefault((speaker, severity), []).extend(words)


def _term_text(term: str) -> str:
    """A phrase → normalised text, keeping "*" at the end of a word ("stab* him")."""
    return normalize(term.replace("*", " STARSUFFIX")).replace(" starsuffix", "*")


def _char(c: str) -> str:
    """One character of a term: any run of a letter ("fuuuck"); "*" = the rest of the word."""
    if c == "*":
        return "[a-z]*"
    return re.escape(c) + "+" if c.isalpha() else re.escape(c)


def term_regex(term: str) -> str:
    """A phrase → regex over normalised text: any run of each letter, "*" = any word ending."""
    return trie_regex([term])


def trie_regex(terms: Iterable[str]) -> str:
    """Many phrases → one regex with shared prefixes factored out (see :func:`_trie`)."""
    return _trie([(_term_text(t), None) for t in terms])


def _trie(items: Iterable[tuple[str, str | None]]) -> str:
    """``(text, group name)`` items → one regex; a named group marks where each item ends.

    Python's ``re`` tries alternatives one by one at every position; a trie lets it
    reject a position after one character instead of after every phrase (about 10x
    faster on the built-in lexicon).
    """
    root: dict[str, Any] = {}
    for text, name in items:
        if not text:
            continue
        node = root
        for c in text:
            node = node.setdefault(c, {})
        ends = node.setdefault("", [])
        if name not in ends:
            ends.append(name)
    return r"\b" + _emit(root) if root else ""


def _emit(node: dict[str, Any]) -> str:
    # longer phrases first ("kill my" before "kill"); "*" sorts before letters but only
    # where a word may continue, so "kill*" and "kill my" do not shadow each other
    alts = [_char(c) + _emit(child) for c, child in sorted((k, v) for k, v in node.items() if k)]
    for name in node.get("", []):
        alts.append(f"(?P<{name}>\\b)" if name else r"\b")
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


def _top_level_alternatives(pattern: str) -> list[str]:
    """Split a regex at its top-level ``|`` (outside groups, classes and escapes)."""
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    return parts + [pattern[start:]]


def _combine(named: list[str]) -> re.Pattern[str] | None:
    """Named patterns → one regex; those that only match at a word start share one ``\\b``.

    A regex of alternatives each starting with ``\\b`` makes Python test every
    alternative at every character; hoisting the ``\\b`` rejects the middle of a word
    once for all of them (about 5x faster on the built-in patterns).
    """
    hoisted, rest = [], []
    for item in named:
        body = item[item.index(">") + 1 : -1]  # inside (?P<name>...)
        at_word_start = all(alt.startswith(r"\b") for alt in _top_level_alternatives(body))
        (hoisted if at_word_start else rest).append(item)
    alts = ([r"\b(?:" + "|".join(hoisted) + ")"] if hoisted else []) + rest
    return re.compile("|".join(alts)) if alts else None


@dataclasses.dataclass(frozen=True)
class Scanner:
    """Every category's terms for one speaker in one trie regex, its raw patterns in another.

    One pass over the text finds candidates of all categories; ``hits[group]`` says
    which categories (and at which severity) the matched group stands for.
    """

    terms: re.Pattern[str] | None
    patterns: re.Pattern[str] | None
    hits: Mapping[
        str, tuple[tuple[int, str], ...]
    ]  # group name → ((category index, severity), ...)

    @classmethod
    def build(cls, sources: Sequence[CategorySource], speaker: str) -> Scanner:
        """Compile the scanner of ``speaker`` over ``sources`` (index = category index)."""
        hits: dict[str, list[tuple[int, str]]] = {}
        names: dict[str, str] = {}
        patterns: list[str] = []
        for index, src in enumerate(sources):
            for severity in SEVERITIES:
                for term in src.terms.get((speaker, severity), []):
                    key = _term_text(term)
                    if key:
                        name = names.setdefault(key, f"t{len(names)}")
                        hits.setdefault(name, []).append((index, severity))
                for pattern in dict.fromkeys(src.patterns.get((speaker, severity), [])):
                    name = f"p{len(patterns)}"
                    patterns.append(f"(?P<{name}>{pattern})")
                    hits[name] = [(index, severity)]
        trie = _trie(names.items())
        return cls(
            re.compile(trie) if trie else None,
            _combine(patterns),
            {k: tuple(v) for k, v in hits.items()},
        )


def _as_list(value: Any, source: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("expected a list of text", source=source, path=key)
    return list(value)


def _by_severity(value: Any, source: str, key: str, default: str) -> dict[str, list[str]]:
    """Accept ``[words]`` (default severity) or ``{low: [...], medium: [...], high: [...]}``."""
    if isinstance(value, Mapping):
        out = {}
        for severity, words in value.items():
            if severity not in SEVERITIES:
                raise ConfigError(
                    f"unknown severity {severity!r}",
                    source=source,
                    path=f"{key}.{severity}",
                    hint="low, medium or high",
                )
            out[severity] = _as_list(words, source, f"{key}.{severity}")
        return out
    return {default: _as_list(value, source, key)}


FILE_KEYS = frozenset(
    {
        "category",
        "action",
        "severity",
        "negatable",
        "fantasy",
        "always_alert",
        "terms",
        "toy_terms",
        "child_terms",
        "patterns",
        "toy_patterns",
        "child_patterns",
        "benign",
        "lines",
    }
)


def read_file(path: Path, into: dict[str, CategorySource]) -> None:
    """Merge one lexicon file into ``into`` (category name → source)."""
    source = str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise ConfigError(f"cannot read word list: {exc.strerror}", source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"YAML syntax error: {getattr(exc, 'problem', exc)}",
            source=source,
            line=mark.line + 1 if mark else None,
        ) from None
    if not isinstance(data, Mapping) or not isinstance(data.get("category"), str):
        raise ConfigError(
            "a word list is a mapping with a 'category' name",
            source=source,
            hint="start the file with 'category: <name>'",
        )
    unknown = set(data) - FILE_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key {sorted(unknown)[0]!r}",
            source=source,
            hint="keys: " + ", ".join(sorted(FILE_KEYS)),
        )
    name = data["category"]
    cat = into.setdefault(name, CategorySource(name))
    if "action" in data:
        if data["action"] not in ACTIONS:
            raise ConfigError(
                "not an allowed action",
                source=source,
                path="action",
                value=data["action"],
                has_value=True,
                hint="allow, redirect or block",
            )
        cat.action = data["action"]
    for flag in ("negatable", "fantasy", "always_alert"):
        if flag in data:
            setattr(cat, flag, bool(data[flag]))
    default = data.get("severity", "medium")
    for prefix, speakers in (("", SPEAKERS), ("toy_", ("toy",)), ("child_", ("child",))):
        for kind in ("terms", "patterns"):
            key = prefix + kind
            for severity, words in _by_severity(data.get(key), source, key, default).items():
                if kind == "patterns":
                    for w in words:
                        _check_regex(w, source, key)
                cat.add_terms(speakers, severity, words, raw=kind == "patterns")
    cat.benign.extend(_as_list(data.get("benign"), source, "benign"))
    cat.lines.extend(_as_list(data.get("lines"), source, "lines"))


def _check_regex(pattern: str, source: str, key: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"bad regular expression: {exc}", source=source, path=key, value=pattern, has_value=True
        ) from None


def read_builtin() -> tuple[dict[str, CategorySource], dict[str, Any]]:
    """The shipped categories, and the shared data (negators, story words, toy lines)."""
    cats: dict[str, CategorySource] = {}
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        if path.name != COMMON_FILE:
            read_file(path, cats)
    common = yaml.load((BUILTIN_DIR / COMMON_FILE).read_text(encoding="utf-8"), Loader=SafeLoader)  # noqa: S506
    return cats, common


@dataclasses.dataclass(frozen=True)
class CompiledCategory:
    """One category's policy and context rules (its words live in the :class:`Scanner`)."""

    name: str
    action: str
    negatable: bool
    fantasy: bool
    always_alert: bool
    benign: re.Pattern[str] | None
    lines: tuple[str, ...]
    words: tuple[str, ...]  # single words, to resolve starred tokens ("f**k") and spelled runs


def compile_category(src: CategorySource) -> CompiledCategory:
    """Compile a category's benign phrases; keep its policy."""
    benign = [f"(?:{b[3:]})" for b in src.benign if b.startswith("re:")]
    plain = trie_regex(b for b in src.benign if not b.startswith("re:"))
    benign += [plain] if plain else []
    words = tuple(
        dict.fromkeys(
            t.rstrip("*") for terms in src.terms.values() for t in terms if " " not in t.strip()
        )
    )
    return CompiledCategory(
        name=src.name,
        action=src.action,
        negatable=src.negatable,
        fantasy=src.fantasy,
        always_alert=src.always_alert,
        benign=re.compile("|".join(benign)) if benign else None,
        lines=tuple(src.lines),
        words=words,
    )
