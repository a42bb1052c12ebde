"""Vosk recognition on one worker thread: model loading, grammars, one utterance at a time.

Everything here blocks; :mod:`.plugin` calls it through a single-thread executor, so
the model and recogniser are only ever touched by one thread.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import logging
import time
from pathlib import Path
from typing import Any

from toyd.errors import ToydError

from .vocab import compact, normalise, pieces, read_vocabulary, segment

log = logging.getLogger(__name__)

UNK_TOKENS = ("<UNK>", "[unk]", "<unk>")


class VoskModelError(ToydError):
    """The Vosk model is missing or cannot be loaded."""


@dataclasses.dataclass(frozen=True)
class Recognition:
    """One utterance: what was heard, the phrase it matched (grammar mode) and timing."""

    text: str
    phrase: str = ""
    grammar: bool = False
    words: tuple[tuple[str, float], ...] = ()
    finish_ms: float = 0.0
    rejected_because: str = ""


def check_model_dir(path: Path) -> None:
    """Fail early with one clear sentence when ``path`` is not a Vosk model folder."""
    if not path.is_dir():
        raise VoskModelError(f"Vosk model folder {path} does not exist")
    if not (path / "am" / "final.mdl").is_file() and not (path / "final.mdl").is_file():
        raise VoskModelError(f"{path} is not a Vosk model folder (no am/final.mdl)")


class VoskEngine:
    """The loaded model, the current grammar and the utterance being decoded."""

    def __init__(
        self,
        model_path: Path,
        *,
        sample_rate: int = 16000,
        unk: str = "<UNK>",
        min_word_conf: float = 0.9,
    ) -> None:
        self.model_path = model_path
        self.min_word_conf = min_word_conf
        self.sample_rate = sample_rate
        self.unk = unk
        self.model: Any = None
        self.vocab: set[str] | None = None
        self.load_seconds = 0.0
        self._grammar: dict[str, str] = {}  # compact(model words) -> original phrase
        self._grammar_json: str | None = None
        self._rec: Any = None
        self._rec_grammar = False

    # --- model ------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model and its vocabulary (seconds, hundreds of MB); idempotent."""
        if self.model is not None:
            return
        check_model_dir(self.model_path)
        try:
            import vosk
        except ImportError:
            raise VoskModelError(
                "the vosk package is not installed (pip install 'toyd[device]')"
            ) from None

        vosk.SetLogLevel(-1)
        start = time.monotonic()
        try:
            model = vosk.Model(str(self.model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise VoskModelError(f"cannot load the Vosk model in {self.model_path}: {exc}") from exc
        self.model = model
        self.load_seconds = time.monotonic() - start
        log.info("Vosk model %s loaded in %.1f s", self.model_path, self.load_seconds)
        if self._grammar:
            self.set_phrases(list(self._grammar.values()))

    @property
    def loaded(self) -> bool:
        return self.model is not None

    # --- grammar ----------------------------------------------------------------------

    def set_phrases(self, phrases: list[str]) -> list[str]:
        """Use ``phrases`` as the grammar; returns those the model cannot say (left out)."""
        grammar: dict[str, str] = {}
        missing: list[str] = []
        if self.model is not None:  # only the words these phrases need: the whole list is ~65 MB
            self.vocab = read_vocabulary(self.model_path, only=pieces(phrases) | {self.unk})
        for phrase in phrases:
            words = segment(phrase, self.vocab) if self.model is not None else normalise(phrase)
            if not words:
                missing.append(phrase)
                continue
            grammar[compact(words)] = phrase
        self._grammar = grammar
        if self.model is None:
            return missing
        spoken = sorted({segment(p, self.vocab) or "" for p in grammar.values()} - {""})
        self._grammar_json = json.dumps(spoken + [self.unk], ensure_ascii=False) if spoken else None
        if missing:
            log.warning(
                "the Vosk model cannot say these cached phrases, left out of the grammar: %s",
                ", ".join(missing),
            )
        return missing

    @property
    def phrases(self) -> list[str]:
        return list(self._grammar.values())

    # --- one utterance ----------------------------------------------------------------

    def start(self, grammar: bool) -> None:
        """Begin an utterance; grammar mode when asked for and there are phrases."""
        import vosk

        self.load()
        use_grammar = grammar and self._grammar_json is not None
        if use_grammar:
            self._rec = vosk.KaldiRecognizer(self.model, self.sample_rate, self._grammar_json)
        else:
            self._rec = vosk.KaldiRecognizer(self.model, self.sample_rate)
        self._rec.SetWords(True)
        self._rec_grammar = use_grammar

    def feed(self, pcm: bytes) -> None:
        """Decode more audio of the current utterance (keeps the final result cheap)."""
        if self._rec is not None and pcm:
            self._rec.AcceptWaveform(pcm)

    def finish(self) -> Recognition:
        """End the utterance and judge it: grammar mode accepts only a whole phrase."""
        if self._rec is None:
            return Recognition(text="", rejected_because="no utterance")
        start = time.monotonic()
        raw = json.loads(self._rec.FinalResult())
        finish_ms = (time.monotonic() - start) * 1000
        grammar, self._rec = self._rec_grammar, None
        words = tuple((w.get("word", ""), float(w.get("conf", 0.0))) for w in raw.get("result", []))
        text = " ".join(w for w, _ in words) if words else raw.get("text", "")
        if not grammar:
            clean = " ".join(w for w in text.split() if w not in UNK_TOKENS)
            return Recognition(text=clean, words=words, finish_ms=finish_ms)
        phrase, why = self._judge(text, words)
        return Recognition(
            text=text,
            phrase=phrase,
            grammar=True,
            words=words,
            finish_ms=finish_ms,
            rejected_because=why,
        )

    def _judge(self, text: str, words: tuple[tuple[str, float], ...]) -> tuple[str, str]:
        """Grammar mode forces any speech onto phrase words, so: only a result that is
        exactly one whole phrase counts (out-of-grammar speech mostly comes back as a
        jumble of phrase words), no unknown-word token, and every word at least
        ``min_word_conf`` (a forced confusion usually has one word well below 1.0 while
        a real match is 1.0 throughout; bench/bench_offline.py measures both)."""
        if not text.strip():
            return "", "nothing heard"
        if any(tok in UNK_TOKENS for tok in text.split()):
            return "", "unknown word"
        phrase = self._grammar.get(compact(text))
        if not phrase:
            return "", "not a whole phrase"
        weakest = min((conf for _, conf in words), default=1.0)
        if weakest < self.min_word_conf:
            return "", f"word confidence {weakest:.2f} < {self.min_word_conf:g}"
        return phrase, ""

    def recognise(self, pcm: bytes, grammar: bool) -> Recognition:
        """Decode a whole utterance at once (audio buffered while the link was up)."""
        self.start(grammar)
        self.feed(pcm)
        return self.finish()

    def close(self) -> None:
        """Drop the recogniser and the model, and hand the freed heap back to the system."""
        self._rec = None
        self.model = None
        gc.collect()
        try:  # glibc keeps freed model memory in its arenas otherwise (~280 MB of ~535 MB)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
