"""Speed of the local safety filter: verdicts per second and microseconds per sentence.

Runs every text of the evaluation sets (child utterances and toy reply sentences)
through ``SafetyEngine.check`` and prints a table: overall, benign vs unsafe, per
speaker, plus the cost of each stage (redaction, normalisation) and of building the
engine. Run: ``python bench/bench_safety.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from toyd_plugins.safety import SafetyEngine
from toyd_plugins.safety.evaluate import Sample, load
from toyd_plugins.safety.normalize import normalize
from toyd_plugins.safety.pii import redact

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


REPEATS = 5  # batches per sample; the fastest batch is the estimate (the rest is other processes' noise)


def per_call_us(fn: Callable[[Sample], object], samples: Sequence[Sample], rounds: int) -> list[float]:
    """Per-sample time in µs: the best of REPEATS batches of ``rounds`` calls (timeit's convention)."""
    out = []
    for sample in samples:
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(rounds):
                fn(sample)
            best = min(best, (time.perf_counter() - start) / rounds)
        out.append(best * 1e6)
    return out


def row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    mean = statistics.fmean(times)
    return f"{name:<28} {len(times):>5} {mean:>9.1f} {statistics.median(times):>9.1f} {p95:>9.1f} {ordered[-1]:>9.1f} {1e6 / mean:>11,.0f}"


def main() -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="calls per batch for each sample (default 20)")
    args = parser.parse_args()
    start = time.perf_counter()
    engine = SafetyEngine.build()
    build_ms = (time.perf_counter() - start) * 1e3
    samples = [s for path in sorted(DATA.glob("safety_*.yaml")) for s in load(path)]
    for sample in samples:  # warm caches (regex, masked-word resolver)
        engine.check(sample.text, sample.speaker)  # type: ignore[arg-type]
    check = per_call_us(lambda s: engine.check(s.text, s.speaker), samples, args.rounds)  # type: ignore[arg-type]
    by = list(zip(samples, check))  # pairs, not a dict: the sets share a few texts
    print(f"safety filter benchmark: {len(samples)} texts (tests/data), best of {REPEATS} batches of {args.rounds} "
          f"calls per text, engine build {build_ms:.0f} ms\n")
    print(f"{'stage / subset':<28} {'texts':>5} {'mean µs':>9} {'p50 µs':>9} {'p95 µs':>9} {'max µs':>9} {'verdicts/s':>11}")
    print(row("check: all", check))
    print(row("check: benign", [t for s, t in by if s.label == "benign"]))
    print(row("check: unsafe", [t for s, t in by if s.label != "benign"]))
    print(row("check: child", [t for s, t in by if s.speaker == "child"]))
    print(row("check: toy", [t for s, t in by if s.speaker == "toy"]))
    print(row("stage: redact", per_call_us(lambda s: redact(s.text), samples, args.rounds)))
    print(row("stage: normalize", per_call_us(lambda s: normalize(s.text, engine.resolve, engine.known),
                                              samples, args.rounds)))


if __name__ == "__main__":
    main()
