"""Reply quality and speed of the local language model (llm_local) behind the llm plugin.

Asks every question with a ``topic`` in bench/data/child_utterances.yaml through
``toyd_reply`` (persona, cleaning, limits: the toy's real path) and, when the safety
plugin is installed, checks each reply sentence with ``toyd_check_text``. A reply is

- on topic: it names one of the question's topic words (a coarse but fixed rule);
- short: at most 3 sentences and 250 characters (about 15 s of a toy's speech);
- safe: every sentence is allowed by the safety filter.

Speed: first text (p50/p95, from the request), tokens per second of the raw model
stream, and the process's peak RSS. One row per generation setting; bounded by
``--limit``. Run: ``python -m bench reply`` (or ``python bench/bench_reply.py --help``).

``--conversation N``: one toy asks N questions in a row with memory on (the turn
benchmark's questions and memory), and llama.cpp's own counters show per turn how many
prompt tokens were evaluated and how many were reused from the cache: a figure that a
loaded machine does not change.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # `python bench/bench_reply.py` finds bench.table
from bench.table import print_table  # noqa: E402
from toyd.registry import Registry
from toyd.testing import running_daemon, wait_for
from toyd.turn import Turn

DATA = Path(__file__).resolve().parent / "data" / "child_utterances.yaml"
MAX_SENTENCES, MAX_CHARS = 3, 250
# (label, llm_local settings): the shipped defaults, llama.cpp's own defaults, and one in between
SETTINGS = {
    "default": {},
    "llama.cpp": {"temperature": 0.8, "repeat_penalty": 1.0, "top_p": 0.95},
    "greedy": {"temperature": 0.0},
    "no cache reuse": {"cache_reuse": 0},
}
# the llm section of `toyd demo` (plugins/demo/demo_cloud.yaml): a small model's replies are cut short
LLM = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "plugins" / "demo" / "demo_cloud.yaml").read_text(
        encoding="utf-8"
    )
)["llm"]
_SENTENCE = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")


def questions(limit: int) -> list[dict[str, Any]]:
    """The fixed reply-quality set (questions with topic words), first ``limit``."""
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    return [q for q in data["en"]["questions"] if q.get("topic")][:limit]


def on_topic(reply: str, topic: list[str]) -> bool:
    """Whether the reply names one of the topic words (case-insensitive, word starts)."""
    low = reply.lower()
    return any(re.search(r"\b" + re.escape(str(word).lower()), low) for word in topic)


def is_short(reply: str) -> bool:
    return (
        bool(reply.strip())
        and len(reply) <= MAX_CHARS
        and len(_SENTENCE.findall(reply)) <= MAX_SENTENCES
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def run_setting(
    label: str, extra: dict[str, Any], items: list[dict[str, Any]], verbose: bool
) -> list[object]:
    """One table row: quality shares and speed for one generation setting."""
    safety = "safety" in Registry().names()
    plugins = ["llm_local", "llm"] + (["safety"] if safety else [])
    config = {
        "role": "cloud",
        "plugins": plugins,
        "startup_timeout": 120,
        "llm": {**LLM, "memory": False},
        "llm_local": {"seed": 7, **extra},
    }
    with tempfile.TemporaryDirectory(prefix="bench-reply-") as tmp:
        async with running_daemon(config, state_dir=Path(tmp)) as app:
            raw = await raw_speed(app)
            firsts: list[float] = []
            topical = short = safe = good = 0
            for i, item in enumerate(items):
                turn = Turn(device_id="bench", session_id="s", turn_id=f"q{i}")
                started = time.monotonic()
                stream = await app.host.call_first("toyd_reply", turn=turn, text=item["text"])
                pieces: list[str] = []
                async for piece in stream:
                    if not pieces:
                        firsts.append(time.monotonic() - started)
                    pieces.append(piece)
                reply = "".join(pieces).strip()
                ok_safe = await passes_safety(app, turn, reply) if safety else True
                ok_topic, ok_short = on_topic(reply, item["topic"]), is_short(reply)
                topical, short, safe = topical + ok_topic, short + ok_short, safe + ok_safe
                good += ok_topic and ok_short and ok_safe
                if verbose:
                    marks = (
                        ("T" if ok_topic else "-")
                        + ("S" if ok_short else "-")
                        + ("F" if ok_safe else "-")
                    )
                    print(f"  {marks} {item['text']!r}: {reply!r}")
    n = len(items)
    return [
        label,
        n,
        pct(topical, n),
        pct(short, n),
        pct(safe, n) if safety else "-",
        pct(good, n),
        round(percentile(firsts, 0.5) * 1000),
        round(percentile(firsts, 0.95) * 1000),
        round(raw, 1),
        round(peak_rss_mb()),
    ]


async def conversation(turns: int, extra: dict[str, Any]) -> list[list[object]]:
    """Per-turn prompt token counters of one toy's conversation with memory on."""
    from bench.bench_turn import QUESTIONS

    config = {
        "role": "cloud",
        "plugins": ["llm_local", "llm"],
        "startup_timeout": 120,
        "llm": {**LLM, "memory": True},
        "llm_local": {"seed": 7, **extra},
    }
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-reply-") as tmp:
        async with running_daemon(config, state_dir=Path(tmp)) as app:
            model = app.host.plugins["llm_local"].model
            await wait_for(lambda: model.requests >= 1, 120)  # the persona, cached at start-up
            await model.settled()
            for i in range(turns):
                question = QUESTIONS[i % len(QUESTIONS)]
                turn = Turn(device_id="bench", session_id="s", turn_id=f"c{i}")
                asked = model.requests
                started = time.monotonic()
                stream = await app.host.call_first("toyd_reply", turn=turn, text=question)
                first = None
                async for _piece in stream:
                    first = first or time.monotonic() - started
                if model.requests > asked:  # the next prompt is prepared while the toy speaks
                    await wait_for(lambda: model.requests >= asked + 2, 120)
                await model.settled()  # a reply that timed out still reports its counters
                usage = model.prompt_of(asked + 1)  # not the next prompt's, prepared after it
                rows.append(
                    [
                        i + 1,
                        question,
                        usage.evaluated if usage else "-",
                        usage.reused if usage else "-",
                        round((first or 0) * 1000),
                    ]
                )
    return rows


async def raw_speed(app: Any) -> float:
    """Tokens per second of the bare model on one long answer (each streamed delta is a token)."""
    turn = Turn(device_id="bench", session_id="s", turn_id="speed")
    messages = [{"role": "user", "content": "Tell me a long story about a friendly dragon."}]
    stream = await app.host.call_first("toyd_chat", turn=turn, messages=messages, max_tokens=96)
    count, first = 0, 0.0
    async for _delta in stream:
        count += 1
        if count == 1:
            first = time.monotonic()
    return (count - 1) / (time.monotonic() - first) if count > 1 else 0.0


async def passes_safety(app: Any, turn: Turn, reply: str) -> bool:
    for sentence in [s for s in re.split(r"(?<=[.!?])\s+", reply) if s.strip()]:
        verdict = await app.host.call_first(
            "toyd_check_text", turn=turn, text=sentence, speaker="toy"
        )
        if verdict is not None and (not verdict.safe or verdict.action != "allow"):
            return False
    return True


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--limit", type=int, default=60, help="questions per setting (default 60; the set has 80)"
    )
    parser.add_argument(
        "--settings",
        default="default,llama.cpp",
        help=f"comma-separated, of: {', '.join(SETTINGS)}",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print every reply with its marks"
    )
    parser.add_argument(
        "--conversation",
        type=int,
        default=0,
        metavar="N",
        help="instead: N turns of one conversation with memory, prompt tokens per turn",
    )
    args = parser.parse_args()
    if args.conversation:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for name in args.settings.split(","):
            print(f"setting {name}:")
            rows = asyncio.run(conversation(args.conversation, SETTINGS[name]))
            print_table(["turn", "question", "evaluated", "reused", "first text ms"], rows)
        return
    items = questions(args.limit)
    print(
        f"{len(items)} questions; short = at most {MAX_SENTENCES} sentences and {MAX_CHARS} characters; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    rows = [
        asyncio.run(run_setting(name, SETTINGS[name], items, args.verbose))
        for name in args.settings.split(",")
    ]
    print_table(
        [
            "setting",
            "n",
            "on topic",
            "short",
            "safe",
            "all three",
            "first p50 ms",
            "first p95 ms",
            "tokens/s",
            "peak RSS MB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
