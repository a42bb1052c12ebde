"""Text normalisation that undoes the usual tricks before the lexicon looks at a text.

The result is lowercase ASCII-ish words separated by single spaces, with apostrophes
removed ("don't" → "dont"). Undone on the way: Unicode compatibility forms (NFKC:
full-width letters, ligatures), accents, look-alike letters from other scripts,
leetspeak inside words ("sh1t", "@ss", "$ex"), letters spelled out with spaces or
punctuation ("f u c k", "f.u.c.k"), and starred letters ("f**k", resolved against the
lexicon's own words). Repeated letters ("fuuuck") are handled by the lexicon's
patterns, which accept any run of each letter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# Letters from other scripts that look like Latin ones (Cyrillic, Greek, a few symbols).
HOMOGLYPHS = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "ɡ": "g",
        "ո": "n",
        "ս": "u",
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ı": "i",
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ß": "ss",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "ð": "d",
        "’": "'",
        "‘": "'",
        "ʼ": "'",
        "`": "'",
    }
)

# Leetspeak, applied only inside a token that also has letters (so "555 1234" stays digits).
LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
LEET_CHARS = frozenset("013457@$!")

# A token: letters/digits plus the symbols that leetspeak and starring use inside words.
TOKEN = re.compile(r"[a-z0-9@$!*']+")
HAS_LETTER = re.compile(r"[a-z]")
SPELLED_MIN = 3  # "f u c k": a run of at least this many single letters is joined
# Text speak and contractions children type or speech recognisers write, to one spelling.
TEXT_SPEAK = {
    "u": "you",
    "r": "are",
    "ur": "your",
    "ya": "you",
    "yu": "you",
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "got to",
    "lemme": "let me",
    "gimme": "give me",
    "luv": "love",
    "pls": "please",
    "plz": "please",
    "cuz": "because",
    "bc": "because",
    "ppl": "people",
}

Resolver = Callable[[str], str | None]


def fold(text: str) -> str:
    """Case, compatibility forms, accents and look-alike letters folded to plain lowercase."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(HOMOGLYPHS)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _token(raw: str, resolve_masked: Resolver | None) -> str:
    """One raw token to a plain word: apostrophes out, leetspeak and stars undone."""
    # "!" at the edges and "*" in front are punctuation ("wow!", "**bold**"); "@"/"$" there are
    # letters ("@ss", "a$$"); trailing stars may hide letters ("f***"), which the resolver checks
    word = raw.replace("'", "").lstrip("*!")
    body = word.rstrip("*!")
    tail = word[len(body) :].rstrip("!")  # "f***!": the stars stay, the "!" goes
    word = body if "!" in tail else body + tail  # "hello!**": punctuation then markdown
    if not word:
        return ""
    if HAS_LETTER.search(word) and any(c in LEET_CHARS for c in word):
        word = word.translate(LEET)
    if "*" in word:
        resolved = resolve_masked(word) if resolve_masked else None
        word = resolved or word.replace("*", "")
    return word if HAS_LETTER.search(word) or word.isdigit() else ""


def normalize(
    text: str, resolve_masked: Resolver | None = None, known: frozenset[str] = frozenset()
) -> str:
    """The canonical form the lexicon patterns are written against.

    ``known`` (the lexicon's words) helps split a spelled-out run that starts with
    real one-letter words: "u r a l o s e r" → "u r a loser".
    """
    folded = fold(text)
    words = [w for w in (_token(t, resolve_masked) for t in TOKEN.findall(folded)) if w]
    return " ".join(TEXT_SPEAK.get(w, w) for w in _join_spelled(words, known))


def _split_run(joined: str, known: frozenset[str]) -> list[str]:
    """A joined run → words: whole if known, else leading letters + a known word, else a guess."""
    if joined in known:
        return [joined]
    for i in range(1, len(joined) - 2):
        if joined[i:] in known:
            return list(joined[:i]) + [joined[i:]]
    # "you are a b i t c h": the article before the spelled word stays a word
    if joined[0] in "ai" and len(joined) >= SPELLED_MIN + 1:
        return [joined[0], joined[1:]]
    return [joined]


def _join_spelled(words: list[str], known: frozenset[str] = frozenset()) -> list[str]:
    """Join runs of single letters ("f u c k", from "f.u.c.k" too) into one word."""
    out: list[str] = []
    run: list[str] = []
    for word in words + [""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        if len(run) >= SPELLED_MIN:
            out.extend(_split_run("".join(run), known))
        else:
            out.extend(run)
        run = []
        if word:
            out.append(word)
    return out


def masked_matcher(words: list[str]) -> Resolver:
    """A resolver for starred tokens ("f**k", "sh*t", "f***") over the lexicon's words.

    ``words`` are in order of preference: when several fit ("f***"), the first wins.
    """
    forms: dict[tuple[int, str], list[str]] = {}
    for base in words:
        for suffix in ("", "s", "ing", "ed", "er", "in", "y"):
            form = base + suffix
            forms.setdefault((len(form), form[0]), []).append(form)

    def resolve(token: str) -> str | None:
        if token[0] == "*" or len(token) > 24:  # no lexicon word is that long: not a starred word
            return None
        pattern = re.compile(re.escape(token).replace(r"\*", "[a-z]"))
        for form in forms.get((len(token), token[0]), ()):
            if pattern.fullmatch(form):
                return form
        return None

    return resolve
