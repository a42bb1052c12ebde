"""A Vosk model's vocabulary, and phrases rewritten into words the model can say.

Grammar-mode recognition only knows words in the model's word list; a phrase word
that is missing is silently dropped by Vosk, which turns "노래 불러줘" into a
different phrase. Korean models split words into morphemes ("불러 줘"), so each
space-separated token of a phrase is kept when the model knows it, or else cut
into the fewest known pieces.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import BinaryIO

from toyd.text import compact, normalise

__all__ = ["compact", "normalise", "pieces", "read_vocabulary", "segment"]
log = logging.getLogger(__name__)

FST_MAGIC = 2125659606
SYMBOLS_MAGIC = 0x7EB2FB74
FLAG_HAS_OSYMBOLS = 2
MAX_PIECE = 12  # longest vocabulary piece tried when cutting a token


def read_vocabulary(model_dir: Path, only: set[str] | None = None) -> set[str] | None:
    """The model's words from ``graph/words.txt`` or the ``Gr.fst`` symbol table; None if neither.

    ``only`` keeps just those words: a full Korean vocabulary (503,352 words) costs about
    65 MB of RSS, the pieces of a phrase list a few kB.
    """
    words_txt = model_dir / "graph" / "words.txt"
    if words_txt.is_file():
        with words_txt.open(encoding="utf-8", errors="replace") as f:
            words = (line.split()[0] for line in f if line.strip())
            return {w for w in words if only is None or w in only}
    gr = model_dir / "graph" / "Gr.fst"
    if gr.is_file():
        with gr.open("rb") as f:
            return _fst_output_symbols(f, only)
    return None


def pieces(phrases: list[str]) -> set[str]:
    """Every substring a phrase word could be cut into: what :func:`segment` may look up."""
    out: set[str] = set()
    for phrase in phrases:
        for token in normalise(phrase).split():
            for start in range(len(token)):
                for end in range(start + 1, min(len(token), start + MAX_PIECE) + 1):
                    out.add(token[start:end])
    return out


def _fst_output_symbols(f: BinaryIO, only: set[str] | None = None) -> set[str] | None:
    """OpenFst binary header → its output symbol table (present in Vosk's lookahead Gr.fst)."""

    def i32() -> int:
        return struct.unpack("<i", f.read(4))[0]

    def i64() -> int:
        return struct.unpack("<q", f.read(8))[0]

    def string() -> bytes:
        n = i32()
        if not 0 <= n < 1 << 16:
            raise ValueError("bad string length in FST header")
        return f.read(n)

    try:
        if i32() != FST_MAGIC:
            return None
        string(), string()  # fst type, arc type
        i32()  # version
        flags = i32()
        i64(), i64(), i64(), i64()  # properties, start, states, arcs
        if not flags & FLAG_HAS_OSYMBOLS or i32() != SYMBOLS_MAGIC:
            return None
        string()  # table name
        i64()  # available key
        size = i64()
        words = set()
        for _ in range(size):
            word = string().decode("utf-8", "replace")
            if only is None or word in only:
                words.add(word)
            i64()
        return words
    except (struct.error, ValueError) as exc:
        log.warning("cannot read the vocabulary in the model's Gr.fst: %s", exc)
        return None


def segment(phrase: str, vocab: set[str] | None) -> str | None:
    """``phrase`` as words the model knows ("노래 불러줘" → "노래 불러 줘"); None if impossible."""
    tokens = normalise(phrase).split()
    if vocab is None:
        return " ".join(tokens) or None
    out: list[str] = []
    for token in tokens:
        pieces = token if token in vocab else _cut(token, vocab)
        if pieces is None:
            return None
        out.append(pieces)
    return " ".join(out) or None


def _cut(token: str, vocab: set[str]) -> str | None:
    """Fewest known pieces that spell ``token`` (dynamic programming over prefixes)."""
    best: list[list[str] | None] = [[]] + [None] * len(token)
    for end in range(1, len(token) + 1):
        for start in range(max(0, end - MAX_PIECE), end):
            head = best[start]
            if head is not None and token[start:end] in vocab:
                if best[end] is None or len(head) + 1 < len(best[end] or ()):
                    best[end] = head + [token[start:end]]
    pieces = best[-1]
    return " ".join(pieces) if pieces else None
