"""Text normalisation shared by everything that compares what a child said with a phrase."""

from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case, NFKC, no punctuation, single spaces: the form phrases are compared in."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_PUNCT.sub(" ", text).split())


def compact(text: str) -> str:
    """``normalise`` without spaces, so morpheme splits ("불러 줘" / "불러줘") give one key."""
    return normalise(text).replace(" ", "")
