"""The labelled corpus the classifier learns from, and the held-out set it is judged on.

Two sources, written differently on purpose:

- ``data/train_<lang>.txt``: templates ("{adult} wants to meet me at {place}") expanded
  with slot fillers, each line once clean and once with child-speech noise
  (misspellings, fillers, run-ons, speech-recognition slips; Korean: missing spaces,
  되/돼 and 안/않 slips, ㅋㅋ/ㅠㅠ). Training only.
- ``data/heldout.tsv``: lines written one by one, by hand, in free child phrasing,
  with no template. Never used for training or tuning: the honest figures.

Noise is seeded from the text itself, so the corpus is the same on every run.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from toyd.errors import ConfigError

DATA = Path(__file__).resolve().parent / "data"
BENIGN = "benign"
LABELS = (
    "benign",
    "self_harm",
    "violence",
    "sexual",
    "grooming",
    "personal_info",
    "dangerous_activities",
    "hate_bullying",
    "drugs_alcohol_gambling",
    "abuse",
)
PER_TEMPLATE = 6  # filled variants per template at most
SLOT = re.compile(r"\{(\w+)\}")


@dataclasses.dataclass(frozen=True)
class Line:
    """One labelled text of the corpus."""

    text: str
    label: str
    lang: str
    speaker: str = "child"
    source: str = ""  # file:line of the template (and "noisy" for augmented lines)


def read_templates(path: Path) -> tuple[dict[str, list[str]], list[tuple[str, str, int]]]:
    """Slots and ``(label, template, line number)`` of one template file."""
    slots: dict[str, list[str]] = {}
    templates: list[tuple[str, str, int]] = []
    label = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or (line.startswith("#") and not line.startswith("## ")):
            continue
        if line.startswith("@"):
            name, _, values = line[1:].partition(":")
            slots[name.strip()] = [v.strip() for v in values.split("|")]
        elif line.startswith("## "):
            label = line[3:].strip()
            if label not in LABELS:
                raise ConfigError(
                    f"unknown label {label!r}", source=f"{path}:{number}", hint=", ".join(LABELS)
                )
        elif label is None:
            raise ConfigError("a template before any '## <label>' line", source=f"{path}:{number}")
        else:
            templates.append((label, line, number))
    return slots, templates


def expand(template: str, slots: dict[str, list[str]], where: str) -> list[str]:
    """Up to PER_TEMPLATE fillings of ``template``, picked by a seed from the template."""
    names = list(dict.fromkeys(SLOT.findall(template)))
    missing = [n for n in names if n not in slots]
    if missing:
        raise ConfigError(f"unknown slot {{{missing[0]}}}", source=where)
    if not names:
        return [template]
    combos = list(itertools.product(*(slots[n] for n in names)))
    random.Random(zlib.crc32(template.encode())).shuffle(combos)
    out = []
    for combo in combos[:PER_TEMPLATE]:
        values = dict(zip(names, combo))
        filled = SLOT.sub(lambda m, v=values: v[m.group(1)], template)  # type: ignore[misc]
        out.append(" ".join(filled.split()))
    return out


EN_SLANG = (
    ("want to", "wanna"),
    ("going to", "gonna"),
    ("you", "u"),
    ("because", "cuz"),
    ("are", "r"),
    ("please", "pls"),
    ("really", "rly"),
    ("don't", "dont"),
    ("i'm", "im"),
    ("what", "wat"),
)
EN_ASR = (
    ("to", "two"),
    ("there", "their"),
    ("know", "no"),
    ("right", "write"),
    ("meet", "meat"),
    ("die", "dye"),
    ("kill", "kil"),
    ("hurt", "hurts"),
    ("my", "mai"),
    ("secret", "secrete"),
)
EN_FILLERS = ("um", "like", "so", "uh", "and um", "you know")
KO_TAILS = ("ㅋㅋ", "ㅠㅠ", "ㅎㅎ", "ㅋㅋㅋ", "진짜", "ㅜㅜ")
KO_FILLERS = ("근데", "아 진짜", "있잖아", "음", "그니까")
KO_SLIPS = (
    ("돼", "되"),
    ("안", "않"),
    ("했어", "햇어"),
    ("거야", "꺼야"),
    ("싶어", "시퍼"),
    ("없어", "업서"),
)


def _misspell(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.randrange(3)
    if op == 0:
        return word[:i] + word[i + 1 :]  # dropped letter
    if op == 1:
        return word[:i] + word[i] + word[i:]  # doubled letter
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]  # swapped letters


def noisy(text: str, lang: str, filler_pool: list[str] | None = None) -> str:
    """A child-speech variant of ``text``: the same meaning, messier words."""
    rng = random.Random(zlib.crc32(("noise\0" + text).encode()))
    if lang == "ko":
        out = text
        for a, b in KO_SLIPS:
            if a in out and rng.random() < 0.5:
                out = out.replace(a, b, 1)
        if rng.random() < 0.4:
            out = out.replace(" ", "")  # speech recognisers often drop Korean spacing
        if rng.random() < 0.4:
            out = f"{rng.choice(KO_FILLERS)} {out}"
        if rng.random() < 0.5:
            out = f"{out} {rng.choice(KO_TAILS)}"
        if filler_pool and rng.random() < 0.2:
            out = f"{out} 그리고 {rng.choice(filler_pool)}"  # run-on
        return out
    out = text.lower().replace(".", "").replace(",", "").replace("?", "")
    for a, b in EN_SLANG + EN_ASR:
        if rng.random() < 0.35:
            out = re.sub(rf"\b{re.escape(a)}\b", b, out, count=1)
    words = out.split()
    for _ in range(rng.randrange(1, 3)):
        if words:
            j = rng.randrange(len(words))
            words[j] = _misspell(words[j], rng)
    if rng.random() < 0.4 and words:
        words.insert(rng.randrange(len(words)), rng.choice(EN_FILLERS))
    out = " ".join(words)
    if filler_pool and rng.random() < 0.25:
        out = f"{out} and {rng.choice(filler_pool)}"  # a run-on: the child keeps going
    return out


def training_lines(data: Path = DATA) -> list[Line]:
    """Every training line: templates expanded, each clean and with noise."""
    lines: list[Line] = []
    for path in sorted(data.glob("train_*.txt")):
        lang = path.stem.split("_", 1)[1]
        slots, templates = read_templates(path)
        clean: list[tuple[str, str, str]] = []
        for label, template, number in templates:
            where = f"{path.name}:{number}"
            clean.extend((label, t, where) for t in expand(template, slots, where))
        benign = [t for label, t, _ in clean if label == BENIGN]
        for label, text, where in clean:
            lines.append(Line(text, label, lang, source=where))
            lines.append(Line(noisy(text, lang, benign), label, lang, source=where + " noisy"))
    held = {line.text for line in heldout_lines()}  # a template may happen to write a held-out line
    return list({(x.text, x.label): x for x in lines if x.text not in held}.values())


def heldout_lines(path: Path = DATA / "heldout.tsv") -> list[Line]:
    """The hand-written held-out set: ``label<TAB>speaker<TAB>lang<TAB>text`` per line."""
    return list(read_tsv(path))


def read_tsv(path: Path) -> Iterator[Line]:
    """Labelled lines from a tab-separated file; '#' starts a comment line."""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        parts = raw.split("\t")
        if len(parts) != 4 or parts[0] not in LABELS or parts[1] not in ("child", "toy"):
            raise ConfigError(
                "expected label<TAB>child|toy<TAB>lang<TAB>text",
                source=f"{path}:{number}",
                hint="labels: " + ", ".join(LABELS),
            )
        yield Line(parts[3], parts[0], parts[2], parts[1], path.name)
