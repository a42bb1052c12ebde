"""Meters: token buckets that enforce rates, and timers the health endpoint reports."""

from __future__ import annotations

import asyncio
import collections
import time


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        """Spend ``n`` tokens if there are enough; False means over the limit."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False


def percentiles(samples: collections.deque[float]) -> dict[str, float]:
    """p50 / p95 / max of ``samples`` in milliseconds (zeros when empty)."""
    if not samples:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(samples)
    pick = lambda p: ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))]  # noqa: E731
    return {
        "p50": round(pick(0.5) * 1000, 2),
        "p95": round(pick(0.95) * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


class FrameTimer:
    """How long handling one incoming frame takes (the last ``keep`` frames)."""

    def __init__(self, keep: int = 20000) -> None:
        self.samples: collections.deque[float] = collections.deque(maxlen=keep)
        self.count = 0

    def add(self, seconds: float) -> None:
        """Record one frame's handling time."""
        self.samples.append(seconds)
        self.count += 1


class LoopLag:
    """How late the event loop wakes a sleeper: every frame waits at least this long."""

    def __init__(self, interval: float = 0.05, keep: int = 1200) -> None:
        self.interval = interval
        self.samples: collections.deque[float] = collections.deque(
            maxlen=keep
        )  # one minute at 50 ms

    async def run(self) -> None:
        """Measure until cancelled."""
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(max(time.perf_counter() - before - self.interval, 0.0))
