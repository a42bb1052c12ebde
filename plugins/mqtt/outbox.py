"""Drains the durable outbox to ``<prefix>/<id>/event/<kind>`` at QoS 1.

An item is acknowledged (deleted from the outbox) only after the broker's PUBACK, so a
crash or a lost connection between publish and PUBACK re-sends it: delivery is at least
once, and every message carries the item's globally unique ``uid`` so receivers drop
duplicates (exactly once after dedup).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from toyd import App
from toyd.mqtt.bridge import MqttBridge, NotConnected

log = logging.getLogger(__name__)

BATCH = 50
PUBACK_TIMEOUT = 10.0


class OutboxDrain:
    """Publishes pending outbox items while the broker is reachable."""

    def __init__(self, app: App, bridge: MqttBridge, base: str) -> None:
        self.app = app
        self.bridge = bridge
        self.base = base
        self._wake = asyncio.Event()
        self.sent = 0

    @property
    def box(self) -> Any:
        """The core outbox (``app.outbox``), or None when the toy runs without one."""
        return getattr(self.app, "outbox", None)

    @property
    def enabled(self) -> bool:
        return self.box is not None

    def wake(self) -> None:
        """The broker is back: try again now."""
        self._wake.set()

    def body(self, item: Any) -> str:
        """The JSON message of one outbox item, with its uid for dedup."""
        return json.dumps(
            {**item.payload, "uid": item.uid, "created": item.created}, separators=(",", ":")
        )

    async def run(self) -> None:
        """Drain until cancelled: publish a batch, ack what the broker acknowledged, repeat."""
        box = self.box
        while True:
            box.changed.clear()
            self._wake.clear()
            if self.bridge.connected:
                items = await box.pending(limit=BATCH)
                if items:
                    acked = await self._send(items)
                    if acked:
                        await box.ack(acked)
                        self.sent += len(acked)
                    if len(acked) == len(items):
                        continue  # more may be waiting
            await _wait_any(box.changed, self._wake, timeout=30.0)

    async def _send(self, items: list[Any]) -> list[int]:
        async def one(item: Any) -> int | None:
            topic = f"{self.base}/event/{item.kind}"
            try:
                async with asyncio.timeout(PUBACK_TIMEOUT):
                    await self.bridge.publish(topic, self.body(item), qos=1)
            except (NotConnected, TimeoutError) as exc:
                log.debug("outbox item %s not delivered yet: %s", item.uid, exc)
                return None
            return item.id

        results = await asyncio.gather(*(one(item) for item in items))
        return [i for i in results if i is not None]


async def _wait_any(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
