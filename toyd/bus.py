"""The event bus: publishing never blocks, each subscriber has its own bounded queue.

Policy when a subscriber's queue is full (``maxsize`` events waiting):

* a droppable event (telemetry: audio frames, scores) arriving → the oldest waiting
  droppable event is dropped to make room (drop-oldest); if none is waiting, the new
  droppable event is dropped;
* a control event arriving → the oldest waiting droppable event is dropped if there is
  one; otherwise the control event is queued anyway (control events are never dropped)
  and the subscriber is logged as slow.

So audio never stalls a publisher, and a button press is never lost.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Iterable

from .events import Event

log = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 256


class Subscription:
    """One subscriber's queue; iterate it or ``await get()``."""

    def __init__(
        self, bus: EventBus, name: str, types: tuple[type[Event], ...], maxsize: int
    ) -> None:
        self.bus = bus
        self.name = name
        self.types = types
        self.maxsize = maxsize
        self.dropped = 0
        self._queue: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._last_slow_log = 0.0

    def wants(self, event: Event) -> bool:
        return not self.types or isinstance(event, self.types)

    def put(self, event: Event) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.maxsize and not self._make_room(event):
            return
        self._queue.append(event)
        self._ready.set()

    def _make_room(self, event: Event) -> bool:
        """Drop per the policy; False when ``event`` itself is dropped."""
        for i, waiting in enumerate(self._queue):
            if waiting.droppable:
                del self._queue[i]
                self.dropped += 1
                return True
        if event.droppable:
            self.dropped += 1
            return False
        now = time.monotonic()
        if now - self._last_slow_log > 5.0:
            self._last_slow_log = now
            log.warning(
                "subscriber %s is slow: %d control events waiting", self.name, len(self._queue)
            )
        return True

    def get_nowait(self) -> Event | None:
        """The next event, or None when the queue is empty."""
        if not self._queue:
            return None
        event = self._queue.popleft()
        if not self._queue:
            self._ready.clear()
        return event

    async def get(self) -> Event:
        """Wait for the next event."""
        while not self._queue:
            if self._closed:
                raise EOFError(f"subscription {self.name} is closed")
            self._ready.clear()
            await self._ready.wait()
        event = self._queue.popleft()
        if not self._queue:
            self._ready.clear()
        return event

    def __len__(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return

    def close(self) -> None:
        """Stop receiving; a waiting ``get`` ends its iteration."""
        self._closed = True
        self._ready.set()
        self.bus._remove(self)


class EventBus:
    """Fan-out of events to subscribers, in publish order per subscriber."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(
        self, name: str, types: Iterable[type[Event]] = (), maxsize: int = DEFAULT_MAXSIZE
    ) -> Subscription:
        """A new subscription to events of ``types`` (all events if empty)."""
        self._loop = self._loop or asyncio.get_running_loop()
        sub = Subscription(self, name, tuple(types), maxsize)
        self._subscriptions.append(sub)
        return sub

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every interested subscriber; never blocks. Loop thread only."""
        for sub in tuple(self._subscriptions):
            if sub.wants(event):
                sub.put(event)

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from another thread (gpiozero callbacks, audio threads)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.publish, event)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop that owns the bus (for :meth:`publish_threadsafe`)."""
        self._loop = loop

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def close(self) -> None:
        """Close every subscription."""
        for sub in tuple(self._subscriptions):
            sub.close()
