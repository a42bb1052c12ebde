"""Personal information found and replaced by placeholders before a text leaves the toy's world.

A library, not a plugin: the safety filter redacts before the LLM sees a text, and
anything that sends a text to a third party (a moderation API, a judge) redacts first.

Works on the original text (digits and "@" are meaningful here). Kinds: phone (digits
or spoken digit words, English or Korean), email (written or spoken "at ... dot com"),
address (house number + street, whatever follows "my address is" / "I live at",
Korean 시/구/동/로/길, 아파트 동·호), school (a named school, 한빛초등학교), full name
(after "my name is" when both names are capitalised, after "my full/last/whole name
is", 내 이름은 김민준), password (also 비밀번호/비번). Each is replaced by ``[kind]``;
an English full name keeps the first name ("Emma [surname]") because the toy may use it.
"""

from __future__ import annotations

import dataclasses
import re

DIGIT_WORDS = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double \w+)"
STREET = (
    r"(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|court|ct|boulevard|blvd|way|place|pl|"
    r"terrace|circle|crescent|close|parkway|highway|hwy|square|sq)"
)
SCHOOL_KIND = (
    r"(?:elementary|primary|middle|high|junior high|grammar|montessori|academy|prep|school)"
)
GENERIC_BEFORE_SCHOOL = frozenset(
    "a an the my our your his her their this that big new old middle high elementary primary junior "
    "grammar public private local nice good best to at in go went going school what which whose where any every "
    "no new another other same different favourite favorite".split()
)

_I = re.IGNORECASE
KO_DIGITS = "[공영일이삼사오육칠팔구]"
# 서울시 마포구 합정동 123-4, 해운대구 우동, 테헤란로 12길 5, 은마아파트 5동 1102호
# 친구, 야구, 포도 and their like end like place names: only chains of places count
KO_PLACE = r"(?![친야농배탁족입출가인연지]구)[가-힣]{1,6}(?:특별시|광역시|시|도|구|군)"
KO_AREA = r"[가-힣0-9]{1,8}(?:동|읍|면|로|길)"
KO_NUMBER = r"\d{1,5}(?:-\d{1,5})?(?:번지|번길|길|호)?(?:\s*\d{1,5}(?:-\d{1,5})?)?"
KO_ADDRESS = (
    rf"(?:{KO_PLACE}\s*){{1,3}}(?:{KO_PLACE}|{KO_AREA})(?:\s*{KO_NUMBER})?(?=\s|$|에|이|야|[.!?])"
    rf"|{KO_AREA}\s*{KO_NUMBER}"
    r"|[가-힣A-Za-z]{1,10}\s*(?:아파트|빌라|맨션)(?:\s*\d{1,4}\s*동)?(?:\s*\d{1,5}\s*호)?"
    r"|\d{1,4}\s*동\s*\d{1,5}\s*호"
)
# (kind, pattern, guard): the pattern only runs when the guard finds its cheap clue in the lowercased text
PATTERNS: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = tuple(
    (k, p, re.compile(g))
    for k, p, g in (
        # bounded repeats and a left anchor keep every pattern linear in the text length
        (
            "email",
            re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,4}", _I),
            "@",
        ),
        (
            "email",
            re.compile(
                r"(?<![\w.])[\w.]{1,64} at (?:g ?mail|yahoo|hotmail|outlook|icloud|aol|proton ?mail|[\w]+) dot "
                r"(?:com|net|org|co|uk|edu|de|fr|io)\b",
                _I,
            ),
            " dot ",
        ),
        (
            "password",
            re.compile(r"(?<=\bpassword is )\S+|(?<=\bpassword's )\S+|(?<=\bpasscode is )\S+", _I),
            "pass",
        ),
        ("phone", re.compile(r"(?<![\w\d])\+?\(?\d[\d\s().-]{5,20}\d(?![\w])"), r"\d"),
        (
            "phone",
            re.compile(rf"\b{DIGIT_WORDS}(?:[\s,-]+{DIGIT_WORDS}){{6,}}\b", _I),
            r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\W+(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double)\b",
        ),
        (
            "address",
            re.compile(
                r"(?<=\bmy address is )[^.!?]+|(?<=\bi live at )[^.!?]+|(?<=\bi live on )[^.!?]+",
                _I,
            ),
            "address|live",
        ),
        ("address", re.compile(rf"\b\d{{1,6}}\s+(?:[A-Za-z]+\s+){{1,3}}{STREET}\b\.?", _I), r"\d"),
        (
            "address",
            re.compile(
                r"\b(?:[A-Z][a-z]+\s+){1,2}(?:Street|Avenue|Road|Lane|Drive|Court|Boulevard|Terrace|Crescent)\b"
            ),
            "street|avenue|road|lane|drive|court|boulevard|terrace|crescent",
        ),
        (
            "address",
            re.compile(r"\b(?:zip|post) ?code is \S+|\b\d{5}(?:-\d{4})?\b(?=\s*$)", _I),
            r"code|\d{5}",
        ),
        # Korean: spoken digits (공일공 일이삼사 ...), addresses, 비밀번호
        ("phone", re.compile(rf"{KO_DIGITS}{{3,4}}(?:[\s-]*{KO_DIGITS}{{3,4}}){{1,2}}"), KO_DIGITS),
        ("address", re.compile(KO_ADDRESS), "시|도|구|군|동|로|길|읍|면|아파트|빌라|맨션|호"),
        (
            "address",
            re.compile(r"(?<=집 주소는 )[^.!?]+|(?<=집 주소 )[^.!?]+|(?<=집 주소가 )[^.!?]+"),
            "주소",
        ),
        (
            "password",
            re.compile(r"(?:비밀번호|비번|패스워드)(?:는|은)?\s*\S+"),
            "비밀번호|비번|패스워드",
        ),
    )
)
SCHOOL_CLUE = re.compile("school|elementary|primary|middle|high|academy|montessori|grammar|prep")
NAME_CLUE = re.compile("name|called")
SCHOOL_NAMED = re.compile(rf"\b((?:[A-Z][\w'.-]+\s+){{1,3}}){SCHOOL_KIND}(?:\s+school)?\b", _I)
SCHOOL_ASKED = re.compile(
    rf"\b(?:i go to|i attend|my school is(?: called)?|i(?: a|')?m at|i am in)\s+"
    rf"((?:[a-z][\w'.-]*\s+){{1,3}}){SCHOOL_KIND}(?:\s+school)?\b",
    _I,
)
NAME_CAPITALISED = re.compile(
    r"\b(?:[Mm]y name is|[Mm]y name's|I am called|I'm called)\s+([A-Z][a-z]+)\s+([A-Z][a-z'-]+)"
)
NAME_SURNAME = re.compile(
    r"\b(?:my (?:last|family|sur) ?name is|my surname is)\s+([A-Za-z'-]+)", _I
)
KO_SCHOOL = re.compile(
    r"[가-힣A-Za-z]{2,10}\s*(?:초등학교|중학교|고등학교|유치원|어린이집)"
    r"|[가-힣A-Za-z]{2,10}(?:초|중|고)(?=\s*(?:\d|다녀|다니|학생|에 다))"
)
KO_NAME = re.compile(
    r"(?:내|제|우리 ?(?:엄마|아빠|언니|오빠|누나|형)(?:의)?) ?(?:이름|성함)(?:은|는|이)?\s*"
    r"([가-힣]{2,4}?)(?=이야|야|입니다|이에요|예요|이고|고|이|\s|$)"
)
KO_NAME_CLUE = re.compile("이름|성함")
KO_SCHOOL_CLUE = re.compile("학교|유치원|어린이집|[초중고]")
NAME_WHOLE = re.compile(
    r"\bmy (?:whole|real|entire) name is\s+([A-Za-z'-]+)(?:\s+([A-Za-z'-]+))?(?:\s+([A-Za-z'-]+))?",
    _I,
)
NAME_FULL = re.compile(
    r"\bmy full name is\s+([A-Za-z'-]+)(?:\s+([A-Za-z'-]+))?(?:\s+([A-Za-z'-]+))?", _I
)
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
    for m in (*NAME_FULL.finditer(text), *NAME_WHOLE.finditer(text)):
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
            found.extend(
                (m.start(), m.end(), kind)
                for m in pattern.finditer(text)
                if _worth(kind, m.group())
            )
    if SCHOOL_CLUE.search(lower):
        found.extend((s, e, "school") for s, e in _school_spans(text))
    if NAME_CLUE.search(lower):
        found.extend(_name_spans(text))
    if KO_SCHOOL_CLUE.search(text):
        found.extend(
            (m.start(), m.end(), "school")
            for m in KO_SCHOOL.finditer(text)
            if _ko_school(m.group())
        )
    if KO_NAME_CLUE.search(text):
        found.extend((m.start(1), m.end(1), "name") for m in KO_NAME.finditer(text))
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in found:
        if merged and start < merged[-1][1]:
            continue
        merged.append((start, end, kind))
    return merged


KO_NOT_SCHOOL = frozenset(
    "우리 내 제 무슨 어느 몇 어떤 그 이 저 새 큰 작은 좋은 다른 같은 여기 거기 너 너희 "
    "초등 중 고등 옆 근처 동네".split()
)


def _ko_school(found: str) -> bool:
    """A named school ("한빛초등학교"), not "우리 초등학교"."""
    name = re.sub(r"\s*(?:초등학교|중학교|고등학교|유치원|어린이집|초|중|고)$", "", found).strip()
    return name not in KO_NOT_SCHOOL


WORD_DIGIT = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
KO_DIGIT_MAP = str.maketrans("공영일이삼사오육칠팔구", "00123456789")
YEAR_RANGE = re.compile(r"(?:19|20)\d\d\s*-\s*(?:19|20)\d\d")


def _worth(kind: str, value: str) -> bool:
    """Drop look-alikes of a phone number: a year range, a plain big number, counting."""
    if kind != "phone":
        return True
    value = value.translate(KO_DIGIT_MAP)
    groups = re.findall(r"\d+", value) or [
        str(WORD_DIGIT.get(w, 99)) for w in re.findall(r"[a-z]+", value.lower())
    ]
    if YEAR_RANGE.fullmatch(value.strip()):
        return False
    if len(groups) == 1 and len(groups[0]) < 10:
        return (
            False  # "1000000" is a number a child says; an unformatted phone number has 10+ digits
        )
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
        trail = piece[len(piece.rstrip(" ,;:")) :]
        out.append(text[pos:start] + f"[{kind}]" + trail)
        pos = end
    out.append(text[pos:])
    return Redaction("".join(out), tuple(dict.fromkeys(k for _, _, k in spans)))
