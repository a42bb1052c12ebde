"""Puts every event a parent must see into the outbox, before any transport sees it."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from . import events as ev
from .bus import EventBus
from .outbox import Outbox

log = logging.getLogger(__name__)

# event type -> (outbox kind, critical)
PARENT_EVENTS: dict[type[ev.Event], tuple[str, bool]] = {
    ev.Transcript: ("transcript", False),
    ev.ResponseText: ("reply", False),
    ev.SafetyAlert: ("safety_alert", True),
    ev.PluginFailed: ("error", False),
    ev.ConfigRejected: ("error", False),
}


class ParentEventWriter:
    """Subscribes to parent-facing events and writes them to the outbox; run :meth:`run` as a service."""

    def __init__(self, bus: EventBus, outbox: Outbox, device_id: str) -> None:
        self.outbox = outbox
        self.device_id = device_id
        self._reply: dict[str, list[str]] = {}
        self._sub = bus.subscribe("parent-events", tuple(PARENT_EVENTS), maxsize=4096)

    def payload(self, event: ev.Event) -> dict[str, Any] | None:
        """The JSON payload for ``event``, or None while a reply is still streaming."""
        if isinstance(event, ev.Transcript) and not event.final:
            return None
        if isinstance(event, ev.ResponseText):
            parts = self._reply.setdefault(event.turn_id, [])
            parts.append(event.delta)
            if not event.final:
                return None
            data: dict[str, Any] = {
                "text": "".join(self._reply.pop(event.turn_id)).strip(),
                "turn_id": event.turn_id,
            }
        else:
            data = {k: v for k, v in dataclasses.asdict(event).items() if k != "at"}
            if isinstance(event, ev.ConfigRejected):
                data["kind"] = "config_rejected"
        data["device_id"] = self.device_id
        data["time"] = time.time()
        return data

    async def run(self) -> None:
        """Write until cancelled."""
        async for event in self._sub:
            await self._write(event)

    async def drain(self) -> None:
        """Write what is still queued (at shutdown, after the services stopped)."""
        while (event := self._sub.get_nowait()) is not None:
            await self._write(event)

    async def _write(self, event: ev.Event) -> None:
        data = self.payload(event)
        if data is not None:
            kind, critical = PARENT_EVENTS[type(event)]
            await self.outbox.add(kind, data, critical=critical)

    def close(self) -> None:
        self._sub.close()
