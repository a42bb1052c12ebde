"""Small asyncio helpers shared by the host and plugins."""

from __future__ import annotations

import inspect
import random
from collections.abc import Iterator
from typing import Any


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook result that may be a value, a callable or a coroutine."""
    if callable(value) and not inspect.isclass(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


def backoff_delays(initial: float, maximum: float, jitter: float = 0.25) -> Iterator[float]:
    """Exponential reconnect delays, ±``jitter`` spread: a fleet does not reconnect in step."""
    delay = initial
    while True:
        yield delay * random.uniform(1 - jitter, 1 + jitter)
        delay = min(delay * 2, maximum)
