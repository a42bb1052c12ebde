"""The gateway's own MQTT link to parents, for toys that cannot speak to them: xiaozhi clients.

A toyd toy publishes its safety alerts from its own outbox and answers its parents'
commands itself (docs/mqtt.md). A xiaozhi client has no MQTT, so the gateway does both
for it, on the same topics, so a parent's app cannot tell the difference:

- a safety alert of a xiaozhi session is stored in the gateway's own outbox (SQLite,
  before anything else) and published on ``<prefix>/<id>/event/safety_alert`` at QoS 1,
  deleted only after the broker's PUBACK: at least once, with a ``uid`` for dedup;
- ``<prefix>/<id>/cmd/volume`` for a connected xiaozhi client becomes a call of the
  client's MCP volume tool, answered on ``cmd/volume/result``. Commands for any other
  toy are left to that toy (a toyd toy answers its own).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toyd import setting
from toyd.events import SafetyAlert
from toyd.mqtt import BrokerSettings
from toyd.mqtt.bridge import MqttBridge, NotConnected, wait_event
from toyd.outbox import Outbox

from .mcp import McpError

if TYPE_CHECKING:
    from .xiaozhi_peer import XiaozhiPeer

log = logging.getLogger(__name__)
PUBACK_TIMEOUT = 10.0
MAX_COMMAND = 4096  # bytes, as on the toy
COMMANDS_QUEUED = 64


@dataclasses.dataclass(frozen=True)
class ParentsSettings(BrokerSettings):
    """The ``gateway.parents`` section: the broker parents read (the toys' own broker)."""

    enabled: bool = setting(
        False,
        doc="Relay safety alerts of xiaozhi clients to their parents and take their volume "
        "commands over MQTT (toyd toys do this themselves).",
    )


class ParentLink:
    """Alerts out through a durable outbox, volume commands in; run :meth:`drain` and :meth:`serve`."""

    def __init__(
        self,
        settings: ParentsSettings,
        gateway_id: str,
        find_peer: Callable[[str], XiaozhiPeer | None],
    ) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.find_peer = find_peer
        self.outbox: Outbox | None = None
        self.relayed = 0  # alerts the broker acknowledged
        self._kick = asyncio.Event()
        self._commands: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue(COMMANDS_QUEUED)
        self.bridge = MqttBridge(
            settings,
            client_id=settings.client_id or f"toyd-gateway-{gateway_id}",
            subscriptions=lambda: [f"{self.prefix}/+/cmd/volume"],
            on_message=self._on_message,
            on_connected=self._kick.set,
        )

    async def start(self, state_dir: Path, ready: asyncio.Event) -> None:
        """Open the outbox and start connecting (the gateway serves toys whether or not it is up)."""
        self.outbox = await Outbox(state_dir / "gateway-parents-outbox.db").open()
        await self.bridge.start(after=ready)

    async def stop(self) -> None:
        """Disconnect (paho's thread is joined off the loop) and close the outbox."""
        await self.bridge.stop()
        if self.outbox is not None:
            await self.outbox.close()

    # --- alerts out -------------------------------------------------------------------------

    async def relay_alert(self, event: SafetyAlert, turn_id: str, now: float) -> None:
        """Keep the alert for the parents of ``event.device_id``; durable when this returns."""
        assert self.outbox is not None
        payload = {
            "category": event.category,
            "severity": event.severity,
            "excerpt": event.excerpt,
            "action": event.action,
            "device_id": event.device_id,
            "turn_id": turn_id,
            "source": "gateway",  # a xiaozhi client's alert, relayed by the cloud
            "time": now,
        }
        await self.outbox.add("safety_alert", payload, critical=True)
        self._kick.set()

    async def drain(self) -> None:
        """Publish stored alerts while the broker is reachable, oldest first, until cancelled."""
        assert self.outbox is not None
        while True:
            self._kick.clear()
            if self.bridge.connected and await self._publish_pending():
                continue
            await wait_event(self._kick, 30.0)

    async def _publish_pending(self) -> bool:
        """Publish a batch; True when all of it went (more may wait)."""
        assert self.outbox is not None
        items = await self.outbox.pending(limit=50)
        for item in items:
            device_id = str(item.payload.get("device_id", "?"))
            body = json.dumps({**item.payload, "uid": item.uid, "created": item.created})
            try:
                async with asyncio.timeout(PUBACK_TIMEOUT):
                    await self.bridge.publish(
                        f"{self.prefix}/{device_id}/event/{item.kind}", body, qos=1
                    )
            except (NotConnected, TimeoutError) as exc:
                log.info("gateway: alert %s for %s not delivered yet: %s", item.uid, device_id, exc)
                return False
            await self.outbox.ack([item.id])
            self.relayed += 1
        return bool(items)

    # --- commands in ------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        device_id = topic.removeprefix(f"{self.prefix}/").partition("/")[0]
        if self.find_peer(device_id) is None:
            return  # not a xiaozhi client here: its own toy (or another gateway) answers
        try:
            self._commands.put_nowait((device_id, payload, retain))
        except asyncio.QueueFull:
            log.warning("gateway: %s: too many parent commands waiting; one dropped", device_id)

    async def serve(self) -> None:
        """Handle parents' commands one at a time, in order, until cancelled."""
        while True:
            device_id, payload, retain = await self._commands.get()
            result = await self._volume(device_id, payload, retain)
            try:
                await self.bridge.publish(
                    f"{self.prefix}/{device_id}/cmd/volume/result", json.dumps(result), qos=1
                )
            except NotConnected as exc:
                log.info("gateway: %s: volume result not sent: %s", device_id, exc)

    async def _volume(self, device_id: str, payload: bytes, retain: bool) -> dict[str, Any]:
        """One ``cmd/volume``: the client's MCP volume tool; the result message."""
        request_id = None
        try:
            try:
                request_id, level = parse_volume(payload)
            except CommandError as exc:
                request_id = exc.request_id
                raise
            if retain:  # it would replay on every reconnect
                raise ValueError("a retained command is refused")
            peer = self.find_peer(device_id)
            if peer is None:
                raise ValueError("the toy disconnected before the command reached it")
            await peer.set_volume(level)
        except (ValueError, McpError) as exc:
            log.info("gateway: %s: cmd/volume: %s", device_id, exc)
            return {
                "ok": False,
                "error": f"cmd/volume: {exc}",
                "request_id": request_id,
                "data": {},
            }
        return {"ok": True, "error": None, "request_id": request_id, "data": {"level": level}}


class CommandError(ValueError):
    """A command payload that is refused; ``request_id`` is echoed when it could be read."""

    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_volume(payload: bytes) -> tuple[Any, int]:
    """A ``cmd/volume`` payload → (request_id, level); ValueError names the field."""
    if len(payload) > MAX_COMMAND:
        raise ValueError(f"payload over {MAX_COMMAND} bytes")
    try:
        msg = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ValueError("the payload must be a JSON object")
    request_id = msg.get("request_id")
    if request_id is not None and (
        isinstance(request_id, bool)
        or not isinstance(request_id, (str, int))
        or len(str(request_id)) > 128
    ):
        raise ValueError("request_id: must be text or a whole number, at most 128 characters")
    unknown = set(msg) - {"level", "request_id"}
    level = msg.get("level")
    if unknown:
        problem = f"unknown field {sorted(unknown)[0][:40]!r}"
    elif "level" not in msg:
        problem = "level: missing"
    elif isinstance(level, bool) or not isinstance(level, int):
        problem = f"level: must be a whole number (got {str(level)[:20]})"
    elif not 0 <= level <= 100:
        problem = f"level: out of range: must be between 0 and 100 (got {level})"
    else:
        return request_id, level
    raise CommandError(problem, request_id)
