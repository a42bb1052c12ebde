"""Personal information found and replaced by placeholders before a text leaves the filter.

Works on the original text (digits and "@" are meaningful here). Kinds: phone (digits
or spoken digit words), email (written or spoken "at ... dot com"), address (house
number + street, or whatever follows "my address is" / "I live at"), school (a named
school), full name (after "my name is" when both names are capitalised, or after "my
full/last name is"), password. Each is replaced by ``[kind]``; a full name keeps the
first name ("Emma [surname]") because the toy may use it.
"""

from __future__ import annotations

import dataclasses
import re

DIGIT_WORDS = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double \w+)"
STREET = (r"(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|court|ct|boulevard|blvd|way|place|pl|"
          r"terrace|circle|crescent|close|parkway|highway|hwy|square|sq)")
SCHOOL_KIND = r"(?:elementary|primary|middle|high|junior high|grammar|montessori|academy|prep|school)"
GENERIC_BEFORE_SCHOOL = frozenset(
    "a an the my our your his her their this that big new old middle high elementary primary junior "
    "grammar public private local nice good best to at in go went going school what which whose where any every "
    "no new another other same different favourite favorite".split())

_I = re.IGNORECASE
# (kind, pattern, guard): the pattern only runs when the guard finds its cheap clue in the lowercased text
PATTERNS: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = tuple((k, p, re.compile(g)) for k, p, g in (
    # bounded repeats and a left anchor keep every pattern linear in the text length
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,4}", _I), "@"),
    ("email", re.compile(r"(?<![\w.])[\w.]{1,64} at (?:g ?mail|yahoo|hotmail|outlook|icloud|aol|proton ?mail|[\w]+) dot "
                         r"(?:com|net|org|co|uk|edu|de|fr|io)\b", _I), " dot "),
    ("password", re.compile(r"(?<=\bpassword is )\S+|(?<=\bpassword's )\S+|(?<=\bpasscode is )\S+", _I), "pass"),
    ("phone", re.compile(r"(?<![\w\d])\+?\(?\d[\d\s().-]{5,20}\d(?![\w])"), r"\d"),
    ("phone", re.compile(rf"\b{DIGIT_WORDS}(?:[\s,-]+{DIGIT_WORDS}){{6,}}\b", _I),
     r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\W+(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double)\b"),
    ("address", re.compile(r"(?<=\bmy address is )[^.!?]+|(?<=\bi live at )[^.!?]+|(?<=\bi live on )[^.!?]+", _I),
     "address|live"),
    ("address", re.compile(rf"\b\d{{1,6}}\s+(?:[A-Za-z]+\s+){{1,3}}{STREET}\b\.?", _I), r"\d"),
    ("address", re.compile(r"\b(?:[A-Z][a-z]+\s+){1,2}(?:Street|Avenue|Road|Lane|Drive|Court|Boulevard|Terrace|Crescent)\b"),
     "street|avenue|road|lane|drive|court|boulevard|terrace|crescent"),
    ("address", re.compile(r"\b(?:zip|post) ?code is \S+|\b\d{5}(?:-\d{4})?\b(?=\s*$)", _I), r"code|\d{5}"),
))
SCHOOL_CLUE = re.compile("school|elementary|primary|middle|high|academy|montessori|grammar|prep")
NAME_CLUE = re.compile("name|called")
SCHOOL_NAMED = re.compile(rf"\b((?:[A-Z][\w'.-]+\s+){{1,3}}){SCHOOL_KIND}(?:\s+school)?\b", _I)
SCHOOL_ASKED = re.compile(rf"\b(?:i go to|i attend|my school is(?: called)?|i(?: a|')?m at|i am in)\s+"
                          rf"((?:[a-z][\w'.-]*\s+){{1,3}}){SCHOOL_KIND}(?:\s+school)?\b", _I)
NAME_CAPITALISED = re.compile(r"\b(?:[Mm]y name is|[Mm]y name's|I am called|I'm called)\s+([A-Z][a-z]+)\s+([A-Z][a-z'-]+)")
NAME_SURNAME = re.compile(r"\b(?:my (?:last|family|sur) ?name is|my surname is)\s+([A-Za-z'-]+)", _I)
NAME_FULL = re.compile(r"\bmy full name is\s+([A-Za-z'-]+)(?:\s+([A-Za-z'-]+))?(?:\s+([A-Za-z'-]+))?", _I)
NOT_A_SURNAME = frozenset("and but i im the a an so because or from at in to is".split())


@dataclasses.dataclass(frozen=True)
class Redaction:
    """The text with personal information replaced, and the kinds found."""

    text: str
    kinds: tuple[str, ...]


def _school_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for pattern in (SCHOOL_NAMED, SCHOOL_ASKED):
        for m in pattern.finditer(text):
            words = m.group(1).split()
            if pattern is SCHOOL_NAMED and not words[0][:1].isupper():
                continue  # lowercase words before "school" are a description, not a name
            if all(w.lower().strip(".'") in GENERIC_BEFORE_SCHOOL for w in words):
                continue  # "the big school", "middle school"
            spans.append((m.start(1) if pattern is SCHOOL_ASKED else m.start(), m.end()))
    return spans


def _name_spans(text: str) -> list[tuple[int, int, str]]:
    spans = []
    for m in NAME_CAPITALISED.finditer(text):
        if m.group(2).lower() not in NOT_A_SURNAME:
            spans.append((m.start(2), m.end(2), "surname"))
    for m in NAME_SURNAME.finditer(text):
        spans.append((m.start(1), m.end(1), "surname"))
    for m in NAME_FULL.finditer(text):
        last = m.lastindex or 1
        words = [m.group(i) for i in range(2, last + 1) if m.group(i).lower() not in NOT_A_SURNAME]
        if words:
            spans.append((m.start(2), m.end(1 + len(words)), "surname"))
    return spans


def find(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of every piece of personal information, non-overlapping."""
    found: list[tuple[int, int, str]] = []
    lower = text.lower()
    for kind, pattern, guard in PATTERNS:
        if guard.search(lower):
            found.extend((m.start(), m.end(), kind) for m in pattern.finditer(text) if _worth(kind, m.group()))
    if SCHOOL_CLUE.search(lower):
        found.extend((s, e, "school") for s, e in _school_spans(text))
    if NAME_CLUE.search(lower):
        found.extend(_name_spans(text))
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in found:
        if merged and start < merged[-1][1]:
            continue
        merged.append((start, end, kind))
    return merged


WORD_DIGIT = {"zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
              "seven": 7, "eight": 8, "nine": 9}
YEAR_RANGE = re.compile(r"(?:19|20)\d\d\s*-\s*(?:19|20)\d\d")


def _worth(kind: str, value: str) -> bool:
    """Drop look-alikes of a phone number: a year range, a plain big number, counting."""
    if kind != "phone":
        return True
    groups = re.findall(r"\d+", value) or [str(WORD_DIGIT.get(w, 99)) for w in re.findall(r"[a-z]+", value.lower())]
    if YEAR_RANGE.fullmatch(value.strip()):
        return False
    if len(groups) == 1 and len(groups[0]) < 10:
        return False  # "1000000" is a number a child says; an unformatted phone number has 10+ digits
    numbers = [int(g) for g in groups if g.isdigit()]
    counting = len(numbers) >= 3 and all(b - a == 1 for a, b in zip(numbers, numbers[1:]))
    return not counting and sum(len(g) for g in groups) >= 7


def redact(text: str) -> Redaction:
    """Replace each piece of personal information with ``[kind]``."""
    spans = find(text)
    if not spans:
        return Redaction(text, ())
    out, pos = [], 0
    for start, end, kind in spans:
        piece = text[start:end]
        trail = piece[len(piece.rstrip(" ,;:")):]
        out.append(text[pos:start] + f"[{kind}]" + trail)
        pos = end
    out.append(text[pos:])
    return Redaction("".join(out), tuple(dict.fromkeys(k for _, _, k in spans)))
