"""Run a daemon's main coroutine so that the process always exits, bounded.

``asyncio.run`` waits for every task it cancels at the end; a plugin task that
swallows cancellation, or a blocking call stuck in an executor thread, would then
keep the process alive forever. Here both get a short grace period and are then
abandoned, so systemd sees a clean, prompt exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def run(main: Coroutine[Any, Any, Any], *, grace: float = 0.3) -> None:
    """Run ``main`` to completion, then end leftovers within ``grace`` seconds."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main)
    finally:
        leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=grace))
        executor_done = loop.run_until_complete(_shutdown_executor(loop, grace))
        stuck = [t.get_name() for t in leftovers if not t.done()]
        if stuck or not executor_done:
            log.warning(
                "exiting with work still running: %s",
                ", ".join(stuck) or "a blocking call in a worker thread",
            )
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        loop.close()


async def _shutdown_executor(loop: asyncio.AbstractEventLoop, grace: float) -> bool:
    try:
        await asyncio.wait_for(loop.shutdown_default_executor(), grace)
    except TimeoutError:
        return False
    return True
