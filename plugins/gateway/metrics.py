"""Operator figures for the health endpoint: event-loop lag and per-frame handling time."""

from __future__ import annotations

import asyncio
import collections
import time


def percentiles(samples: collections.deque[float]) -> dict[str, float]:
    """p50 / p95 / max of ``samples`` in milliseconds (zeros when empty)."""
    if not samples:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(samples)
    pick = lambda p: ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": round(pick(0.5) * 1000, 2), "p95": round(pick(0.95) * 1000, 2), "max": round(ordered[-1] * 1000, 2)}


class FrameTimer:
    """How long handling one incoming frame takes (the last ``keep`` frames)."""

    def __init__(self, keep: int = 20000) -> None:
        self.samples: collections.deque[float] = collections.deque(maxlen=keep)
        self.count = 0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.count += 1


class LoopLag:
    """How late the event loop wakes a sleeper: every frame waits at least this long."""

    def __init__(self, interval: float = 0.05, keep: int = 1200) -> None:
        self.interval = interval
        self.samples: collections.deque[float] = collections.deque(maxlen=keep)  # one minute at 50 ms

    async def run(self) -> None:
        """Measure until cancelled."""
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(max(time.perf_counter() - before - self.interval, 0.0))
