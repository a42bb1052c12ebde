"""Speech recognition on the spoken evaluation set: word error rate, keyword accuracy, latency.

The set is made by bench/speech_set.py (≥ 150 child-style utterances, espeak-ng and Piper
voices pitched up, room noise and music, very short commands, a Korean part) into a
cache directory. Each configuration is one stt_whisper engine (model, compute type,
encoder window, beam size) decoding every English clip one after another, as the
plugin does; the table has WER, keyword accuracy (content words of the reference found
in the transcript) and the decode time p50/p95, which is end of speech → final
transcript for the plain path. Per-condition WER follows for the first configuration.

``--stream`` adds the background decoder (the plugin's default): clips are fed in real
time in 20 ms frames, as the gateway feeds them, and the time from the end of speech to
the final transcript is measured, once with the end right after the clip
(push-to-talk released at once) and once after the VAD's 0.8 s of silence.

The machine is shared: the load average is printed with the table. Keep a run bounded
with ``--limit`` and ``--configs``. Run: ``python -m bench stt`` or
``python bench/bench_stt.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # `python bench/bench_stt.py` finds bench.*
from bench.speech_set import Clip, build  # noqa: E402
from bench.table import print_table  # noqa: E402
from toyd.turn import Transcription  # noqa: E402
from toyd_plugins.stt_whisper.engine import WhisperEngine, bundled_base_model  # noqa: E402
from toyd_plugins.stt_whisper.streaming import GrowingUtterance  # noqa: E402

# label -> (model, compute type, window seconds (0 = 30 s), beam size)
CONFIGS = {
    "tiny.en int8 30s b1": ("", "int8", 0, 1),
    "tiny.en int8 15s b1": ("", "int8", 15, 1),
    "tiny.en int8 20s b1": ("", "int8", 20, 1),
    "tiny.en int8 10s b1": ("", "int8", 10, 1),
    "tiny.en int8 30s b5": ("", "int8", 0, 5),
    "tiny.en int8 15s b5": ("", "int8", 15, 5),
    "tiny.en int8 10s b5": ("", "int8", 10, 5),
    "tiny.en f32 30s b1": ("", "float32", 0, 1),
    "base int8 30s b1": ("bundled-base", "int8", 0, 1),
    "base int8 15s b1": ("bundled-base", "int8", 15, 1),
}
DEFAULT_CONFIGS = "tiny.en int8 30s b1,tiny.en int8 15s b1,tiny.en int8 20s b1,tiny.en int8 30s b5,base int8 30s b1"
SPELLING = {
    "colours": "colors",
    "colour": "color",
    "favourite": "favorite",
    "ok": "okay",
    "mommy": "mummy",
    "goodnight": "good night",
    "goodbye": "good bye",
    "hi": "hi",
}
STOPWORDS = set(
    "a an the is are do does did to of in on at and or you i me my your we it what why how where who "
    "can be have has that this for with about please let's im i'm it's don't".split()
)
NUMBERS = {
    "2": "two",
    "4": "four",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
    "1": "one",
}


def words(text: str) -> list[str]:
    """Lower case, no punctuation, one spelling (colour/color), digits as words."""
    text = re.sub(r"[^\w' ]", " ", text.lower().replace("-", " "))
    out: list[str] = []
    for word in text.split():
        word = word.strip("'")
        word = NUMBERS.get(word, SPELLING.get(word, word))
        out.extend(word.split())
    return out


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def keywords(ref: list[str]) -> list[str]:
    kept = [w for w in ref if w not in STOPWORDS]
    return kept or ref


class Score:
    """Sums over clips: word edits, reference words, keywords found, decode times."""

    def __init__(self) -> None:
        self.errors = self.words = self.keys = self.found = 0
        self.times: list[float] = []

    def add(self, ref_text: str, hyp_text: str, seconds: float) -> None:
        ref, hyp = words(ref_text), words(hyp_text)
        self.errors += edits(ref, hyp)
        self.words += len(ref)
        keys = keywords(ref)
        self.keys += len(keys)
        self.found += sum(1 for k in keys if k in hyp)
        self.times.append(seconds)

    @property
    def wer(self) -> str:
        return f"{100 * self.errors / max(self.words, 1):.1f}%"

    @property
    def keyword_accuracy(self) -> str:
        return f"{100 * self.found / max(self.keys, 1):.1f}%"

    def ms(self, q: float) -> int:
        ordered = sorted(self.times)
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000) if ordered else 0


def engine_for(model: str, compute: str, window: float, threads: int, cache: Path) -> WhisperEngine:
    if model == "bundled-base":
        model = str(bundled_base_model(cache / "whisper-base"))
    engine = WhisperEngine(
        model,
        compute_type=compute,
        workers=1,
        cpu_threads=threads,
        queue_limit=4,
        window_seconds=window,
    )
    engine.load()
    return engine


async def decode(
    engine: WhisperEngine, audio: np.ndarray, language: str, beam: int
) -> Transcription:
    return await engine.transcribe(
        audio, language=language, beam_size=beam, no_speech_threshold=0.6, logprob_threshold=-1.0
    )


async def run_config(
    engine: WhisperEngine, clips: list[Clip], beam: int
) -> tuple[Score, dict[str, Score]]:
    total, by_condition = Score(), defaultdict(Score)
    for clip in clips:
        audio = clip.pcm()
        started = time.perf_counter()
        result = await decode(engine, audio, clip.language, beam)
        took = time.perf_counter() - started
        total.add(clip.text, result.text, took)
        by_condition[clip.condition].add(clip.text, result.text, took)
        by_condition["kind: " + clip.kind].add(clip.text, result.text, took)
    return total, by_condition


async def run_stream(
    engine: WhisperEngine, clips: list[Clip], beam: int, hangover: float, step: float
) -> tuple[Score, float]:
    """Feed each clip in real time (20 ms frames); the end of speech comes ``hangover`` s after it."""
    score, decodes = Score(), 0
    for clip in clips:
        audio = np.concatenate([clip.pcm(), np.zeros(int(hangover * 16000), np.float32)])
        growing = GrowingUtterance(
            lambda a, c=clip: decode(engine, a, c.language, beam),
            step_seconds=step,
            min_seconds=0.5,
            tail_db=20.0,
        )
        started = time.monotonic()
        for i, at in enumerate(range(0, len(audio), 320)):
            growing.feed(audio[at : at + 320])
            await asyncio.sleep(max(started + (i + 1) * 0.02 - time.monotonic(), 0))
        eos = time.perf_counter()
        result = await growing.result()
        score.add(clip.text, result.text, time.perf_counter() - eos)
        decodes += growing.decodes
    return score, decodes / max(len(clips), 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="comma-separated configuration labels, or 'all'; have: " + "; ".join(CONFIGS),
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="English clips per configuration, evenly spread over the set (0 = all 152)",
    )
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 threads (default 2)")
    parser.add_argument(
        "--stream",
        type=int,
        default=0,
        metavar="N",
        help="also feed the first N clips in real time to the background decoder",
    )
    parser.add_argument(
        "--stream-step", type=float, default=0.5, help="seconds of new audio per background decode"
    )
    parser.add_argument(
        "--korean", action="store_true", help="the Korean part with the multilingual base model"
    )
    args = parser.parse_args()
    clips = build()
    english = [c for c in clips if c.language == "en"]
    if args.limit and args.limit < len(
        english
    ):  # evenly spread: every voice, room and kind keeps its share
        english = [english[round(i * len(english) / args.limit)] for i in range(args.limit)]
    labels = (
        list(CONFIGS) if args.configs == "all" else [c.strip() for c in args.configs.split(",")]
    )
    rows, detail = [], None
    load_before = os.getloadavg()[0]
    cache = Path(os.environ.get("TOYD_BENCH_CACHE") or Path.home() / ".cache" / "toyd-bench")
    if True:
        for label in labels:
            model, compute, window, beam = CONFIGS[label]
            engine = engine_for(model, compute, window, args.threads, cache)
            total, by_condition = asyncio.run(run_config(engine, english, beam))
            rows.append(
                [
                    label,
                    len(english),
                    total.wer,
                    total.keyword_accuracy,
                    total.ms(0.5),
                    total.ms(0.95),
                ]
            )
            print(
                f"  {label}: WER {total.wer}, keywords {total.keyword_accuracy}, p50 {total.ms(0.5)} ms, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            detail = detail or (label, by_condition)
            if args.stream and label == labels[0]:
                subset = english[: args.stream]
                for name, hangover in (("push-to-talk", 0.0), ("VAD 0.8 s", 0.8)):
                    score, per_clip = asyncio.run(
                        run_stream(engine, subset, beam, hangover, args.stream_step)
                    )
                    rows.append(
                        [
                            f"{label} streaming, {name} ({per_clip:.1f} decodes)",
                            len(subset),
                            score.wer,
                            score.keyword_accuracy,
                            score.ms(0.5),
                            score.ms(0.95),
                        ]
                    )
            engine.close()
        print(
            f"{len(english)} English clips; {args.threads} CTranslate2 threads; load average "
            f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores"
        )
        print_table(
            ["configuration", "clips", "WER", "keywords", "EOS->final p50 ms", "p95 ms"], rows
        )
        if detail:
            print(f"\nper condition ({detail[0]}):")
            print_table(
                ["condition", "clips", "WER", "keywords", "p50 ms"],
                [
                    [name, len(s.times), s.wer, s.keyword_accuracy, s.ms(0.5)]
                    for name, s in sorted(detail[1].items())
                ],
            )
        if args.korean:
            korean = [c for c in clips if c.language == "ko"]
            engine = engine_for("bundled-base", "int8", 0, args.threads, cache)
            score = Score()
            for clip in korean:
                started = time.perf_counter()
                result = asyncio.run(decode(engine, clip.pcm(), "ko", 1))
                ref, hyp = list(clip.text.replace(" ", "")), list(re.sub(r"[^\w]", "", result.text))
                score.errors += edits(ref, hyp)
                score.words += len(ref)
                score.times.append(time.perf_counter() - started)
                print(f"  ko: {clip.text!r} -> {result.text!r}")
            engine.close()
            print(
                f"Korean (espeak-ng ko, base int8 30 s): {len(korean)} clips, character error rate "
                f"{100 * score.errors / max(score.words, 1):.1f}%, p50 {score.ms(0.5)} ms"
            )


if __name__ == "__main__":
    main()
