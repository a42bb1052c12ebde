"""Cut a streamed reply into sentences as tokens arrive, so speech starts early.

A sentence ends at ``. ! ?`` (or ``…``) followed by whitespace, at a CJK full stop
(``。！？``), or at a line break. Common abbreviations ("Mr.", "e.g.") and numbers
("3.5") do not end a sentence. A sentence shorter than ``min_chars`` is joined with the
next one (a lone "Oh!" is not worth a TTS round trip); one longer than ``max_chars``
without an end is cut at the last comma or space, so TTS never waits on a run-on.

With ``first_clause``, the first piece may also end at a clause mark (``, ; :`` or a dash
followed by whitespace, ``，、；：``): the voice starts after "Once upon a time," instead
of after the whole first sentence, while the model writes the rest.
"""

from __future__ import annotations

import re

_END = re.compile(r"(?:[.!?…]+[\"')\]]*(?=\s)|[。！？]+|\n+)")
_CLAUSE = re.compile(r"(?:[,;:—–]+(?=\s)|[，、；：]+)")
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "st.", "e.g.", "i.e.", "etc.", "vs.", "no."}
)


class SentenceSplitter:
    """Feed text deltas, get whole sentences; :meth:`flush` returns the rest at the end."""

    def __init__(
        self, min_chars: int = 12, max_chars: int = 220, first_clause: bool = False
    ) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._clause = first_clause  # until the first piece is out
        self._buf = ""
        self._scan_from = 0

    def feed(self, delta: str) -> list[str]:
        """Add ``delta``; return the sentences it completed (possibly none)."""
        self._buf += delta
        out: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                break
            sentence, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            self._scan_from = 0
            if sentence:
                out.append(sentence)
                self._clause = False
        return out

    def flush(self) -> list[str]:
        """Whatever is left once the stream ended."""
        rest, self._buf, self._scan_from = self._buf.strip(), "", 0
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        marks = [*_END.finditer(self._buf, self._scan_from)]
        if self._clause:
            marks = sorted(marks + [*_CLAUSE.finditer(self._buf, self._scan_from)], key=_start)
        for match in marks:
            end = match.end()
            if len(self._buf[:end].strip()) < self.min_chars:
                continue
            if match.group().startswith(".") and self._is_abbreviation(match.start()):
                continue
            return end
        self._scan_from = max(0, len(self._buf) - 4)  # an end mark may straddle deltas
        if len(self._buf) > self.max_chars:
            window = self._buf[: self.max_chars]
            cut = max(window.rfind(", "), window.rfind("; "), window.rfind(" "))
            return cut + 1 if cut > self.min_chars else self.max_chars
        return None

    def _is_abbreviation(self, dot: int) -> bool:
        start = dot
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        word = self._buf[start : dot + 1].lower()
        return word in _ABBREVIATIONS or (
            len(word) == 2 and word[0].isalpha() and word[0].isupper()
        )


def _start(match: re.Match[str]) -> int:
    return match.start()
