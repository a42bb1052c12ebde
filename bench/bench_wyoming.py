"""Benchmark Piper through Wyoming: first-audio latency and real-time factor, as the gateway sees them.

Starts wyoming-piper 2.5.2 (voice en_US-joe-medium, the GPL engine in its own process,
from the private venv of toyd.testing.wyoming_servers) on a free loopback port and
synthesizes sentences of three lengths through the ``tts_wyoming`` plugin: first audio =
request sent → first 16 kHz chunk out of the resampler; RTF = synthesis time / audio
length (below 1 is faster than real time).

Run: python bench/bench_wyoming.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.table import print_table  # noqa: E402
from toyd.testing.wyoming_servers import wyoming_piper
from toyd_plugins.tts_wyoming import WyomingTtsPlugin, WyomingTtsSettings

SENTENCES = {
    "short": "Hello there!",
    "medium": "Once upon a time, a small dragon lived in a cave by the sea.",
    "long": "Every morning the little dragon flew over the hills, said hello to the sheep, "
    "and came home in time for a big bowl of warm soup with his grandmother.",
}


async def run(port: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    tts = WyomingTtsPlugin()
    tts.settings = WyomingTtsSettings(
        uri=f"tcp://127.0.0.1:{port}", voice="en_US-joe-medium", connect_timeout=10
    )
    await _speak(tts, "Warm up.")  # loading the voice is not counted
    out: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for name, text in SENTENCES.items():
            first, total, seconds = await _speak(tts, text)
            row = out.setdefault(name, {"first": [], "rtf": [], "audio": []})
            row["first"].append(first * 1000)
            row["rtf"].append(total / seconds)
            row["audio"].append(seconds)
    return out


async def _speak(tts: WyomingTtsPlugin, text: str) -> tuple[float, float, float]:
    started = time.monotonic()
    first, pcm = 0.0, 0
    async for chunk in tts.stream(text, tts.settings):
        first = first or time.monotonic() - started
        pcm += len(chunk)
    return first, time.monotonic() - started, pcm / 32000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with wyoming_piper() as (_, port):
        results = asyncio.run(run(port, args.rounds))
    print(
        f"bench_wyoming: wyoming-piper 2.5.2, en_US-joe-medium (22.05 kHz → 16 kHz), {args.rounds} rounds"
    )
    print_table(
        ("sentence", "audio s", "first audio p50 ms", "first audio max ms", "RTF p50", "RTF max"),
        [
            (
                name,
                round(statistics.median(r["audio"]), 2),
                round(statistics.median(r["first"]), 1),
                round(max(r["first"]), 1),
                round(statistics.median(r["rtf"]), 3),
                round(max(r["rtf"]), 3),
            )
            for name, r in results.items()
        ],
    )


if __name__ == "__main__":
    main()
