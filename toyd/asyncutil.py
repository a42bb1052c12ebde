"""Small asyncio helpers shared by the host and plugins."""

from __future__ import annotations

import inspect
from typing import Any


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook result that may be a value, a callable or a coroutine."""
    if callable(value) and not inspect.isclass(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value
