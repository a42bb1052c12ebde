"""Safety alerts of one session: to the toy, to the cloud's bus, and for a xiaozhi client to its parents.

A toyd toy gets an ``alert`` and relays it to its parents through its own MQTT outbox;
that copy is the one its parents see. A xiaozhi client cannot (its ``alert`` is a screen
notice, not sent), so for it the gateway relays the alert itself (:mod:`.parents`).
Either way a ``SafetyAlert`` goes on the cloud bus, where the alert log records it.
"""

from __future__ import annotations

import logging
import time

from toyd.events import SafetyAlert
from toyd.protocol import Alert
from toyd.turn import SafetyVerdict, Turn

from .context import SessionContext
from .downlink import Send

log = logging.getLogger(__name__)


class Alerts:
    """The ``on_alert`` of a session's pipelines."""

    def __init__(self, context: SessionContext, send: Send) -> None:
        self.context = context
        self._send = send
        self.relay = False  # set for a xiaozhi client: its parents hear it from the cloud

    async def __call__(self, turn: Turn, verdict: SafetyVerdict, text: str) -> None:
        category, severity = verdict.category or "unsafe", verdict.severity
        excerpt = (verdict.text or "")[:200]
        await self._send(
            Alert(
                category=category,
                severity=severity,
                message=excerpt,
                action=verdict.action,
                turn_id=turn.turn_id,
            )
        )
        log.warning(
            "%s: safety alert %s/%s (%s) in turn %s",
            turn.device_id,
            category,
            severity,
            verdict.action,
            turn.turn_id,
        )
        event = SafetyAlert(
            category=category,
            severity=severity,
            excerpt=excerpt,
            action=verdict.action,
            device_id=turn.device_id,
        )
        self.context.publish(event)  # the cloud's own record (alert log)
        parents = self.context.parents
        if self.relay:
            if parents is None:
                log.warning(
                    "%s: a xiaozhi client cannot tell its parents and gateway.parents is off: "
                    "the alert is only in the alert log",
                    turn.device_id,
                )
            else:
                await parents.relay_alert(event, turn.turn_id, time.time())
