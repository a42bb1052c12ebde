"""Benchmark one conversational turn end to end: end of speech → first reply audio, and toyd's overhead.

A cloud (gateway, Whisper tiny.en int8, the safety filter, the llm plugin against the
local chat stand-in at 50 ms to the first token, espeak-ng) and a simulated toy run on
loopback; 20 turns of espeak-ng questions. "End of speech → first audio" is measured on
the toy's clock (from the end of the utterance to the first decoded reply frame);
"overhead" is that minus the time spent inside the AI backends on the way (STT, safety,
LLM to its first sentence, TTS to its first audio): transport, Opus, bus, scheduling.

``--local-llm`` replaces the stand-in by the local language model (llm_local: SmolLM2-135M
in the cloud process, the demo's persona limits): the whole chain with no network. It
also prints llama.cpp's prompt counters per turn (tokens evaluated, reused from the
cache), which do not depend on the machine's load.

The toy's microphone is sent in real time, as a push-to-talk toy sends it: the cloud hears
the question while the child says it. ``--burst 80`` sends the first 80 frames (1.6 s) at
once instead, as the demo and the tests do (the figures before 2026-11-30 were taken so;
for a question shorter than the burst the whole of it arrives at the end of speech).

Run: python bench/bench_turn.py [--turns 20] [--first-token-ms 50] [--local-llm] [--burst 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # `python bench/bench_turn.py` finds bench.table
from bench.table import print_table  # noqa: E402
from toyd.registry import Registry
from toyd.testing import espeak_pcm, wait_for
from toyd.testing.standin import StandIn
from toyd_plugins.demo.loopback import Loopback

QUESTIONS = (
    "tell me a story about a dragon",
    "what is your name",
    "tell me a long story",
    "do you like elephants",
    "I want to play with a gun",
)
GOALS = {"end_of_speech_to_first_audio": ("p50", 500.0), "overhead": ("p95", 50.0)}
# the llm section of `toyd demo`, for --local-llm
DEMO_LLM = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "plugins" / "demo" / "demo_cloud.yaml").read_text(
        encoding="utf-8"
    )
)["llm"]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), in the unit of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def run(
    turns: int, first_token_ms: float, cpu_threads: int, local_llm: bool = False, burst: int = 0
) -> dict[str, list[float]]:
    """Run the turns; returns the milliseconds per stage."""
    speech = {q: espeak_pcm(q) for q in QUESTIONS}
    samples: dict[str, list[float]] = {}
    plugins = ["gateway", "stt_whisper", "llm", "tts_espeak"]
    if "safety" in Registry().names():
        plugins.insert(2, "safety")
    if local_llm:
        plugins.insert(plugins.index("llm"), "llm_local")
    async with StandIn() as llm:
        llm.default.reply = "Hello! I am Pip, your friend."
        llm.default.first_token_delay = first_token_ms / 1000
        brain = (
            {**DEMO_LLM, "memory": True}
            if local_llm
            else {"base_url": llm.url + "/v1", "model": "stand-in", "memory": True}
        )
        cloud = {
            "role": "cloud",
            "plugins": plugins,
            "log_level": "error",
            "startup_timeout": 120,
            "stt_whisper": {"cpu_threads": cpu_threads},
            "llm": brain,
        }
        toy = {
            "role": "device",
            "device_id": "bench-toy",
            "plugins": ["cloudlink"],
            "log_level": "error",
            "cloudlink": {"reply_timeout": 30, "language": "en"},
        }
        with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp:
            async with Loopback(cloud, toy, state_dir=Path(tmp)) as loop:
                await loop.turn(speech[QUESTIONS[1]], burst=burst)  # warm-up, not counted
                model = getattr(loop.cloud.host.plugins.get("llm_local"), "model", None)
                for i in range(turns):
                    asked = model.requests if model is not None else 0
                    report = await loop.turn(speech[QUESTIONS[i % len(QUESTIONS)]], burst=burst)
                    if model is not None:
                        if model.requests > asked:  # the next prompt is prepared meanwhile
                            await wait_for(lambda: model.requests >= asked + 2, 60)
                        await model.settled()  # llama.cpp's counters, which load does not change
                        # a turn the safety filter answers does not reach the model
                        usage = model.prompt_of(asked + 1) if model.requests > asked else None
                        if usage is not None:
                            samples.setdefault("llm_prompt_evaluated", []).append(usage.evaluated)
                            samples.setdefault("llm_prompt_reused", []).append(usage.reused)
                    if report.outcome != "reply":
                        print(f"turn {i}: {report.outcome}")
                        continue
                    for key, value in report.latency_ms.items():
                        if value is not None:
                            samples.setdefault(key, []).append(value)
    return samples


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--first-token-ms", type=float, default=50.0)
    parser.add_argument(
        "--burst",
        type=int,
        default=0,
        help="microphone frames sent at once before real time (0: all in real time)",
    )
    parser.add_argument(
        "--cpu-threads", type=int, default=2, help="Whisper threads (this machine has 2 cores)"
    )
    parser.add_argument(
        "--local-llm",
        action="store_true",
        help="the local language model (llm_local) instead of the stand-in",
    )
    args = parser.parse_args()
    started = time.monotonic()
    load = os.getloadavg()[0]
    samples = asyncio.run(
        run(args.turns, args.first_token_ms, args.cpu_threads, args.local_llm, args.burst)
    )
    rows = (
        "stt",
        "safety_check",
        "llm_first_token",
        "llm_first_sentence",
        "tts_first_audio",
        "end_of_speech_to_first_audio",
        "overhead",
    )
    brain = (
        "local SmolLM2-135M (llm_local)"
        if args.local_llm
        else f"LLM stand-in {args.first_token_ms:g} ms first token"
    )
    print(
        f"bench_turn: {args.turns} turns, Whisper tiny.en int8 ({args.cpu_threads} threads), {brain}, espeak-ng; "
        f"microphone {'in real time' if not args.burst else f'{args.burst} frames at once, then real time'}; "
        f"{time.monotonic() - started:.0f} s; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    table = []
    for key in rows:
        values = samples.get(key, [])
        if not values:
            table.append((key, 0, "-", "-", "-", ""))
            continue
        goal = ""
        if key in GOALS:
            which, limit = GOALS[key]
            got = statistics.median(values) if which == "p50" else pct(values, 95)
            goal = f"{which} <= {limit:g} ms: {'met' if got <= limit else 'NOT met'}"
        table.append(
            (
                key,
                len(values),
                round(statistics.median(values), 1),
                round(pct(values, 95), 1),
                round(max(values), 1),
                goal,
            )
        )
    print_table(("stage (ms)", "n", "p50", "p95", "max", "goal"), table)
    for key in ("llm_prompt_evaluated", "llm_prompt_reused"):
        if samples.get(key):
            print(f"{key} (tokens, per turn): {' '.join(str(round(v)) for v in samples[key])}")


if __name__ == "__main__":
    main()
