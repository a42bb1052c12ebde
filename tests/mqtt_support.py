"""Shared helpers for the MQTT tests: a real paho client that records what it sees."""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from toyd.testing import wait_for

_ids = itertools.count(1)


class Probe:
    """A parent/Home Assistant stand-in: a real MQTT client on the test broker."""

    def __init__(
        self,
        port: int,
        *,
        subscribe: tuple[str, ...] = ("#",),
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"probe-{next(_ids)}"
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda c, u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p: (
            self._connected.set(),
            c.subscribe([(t, 1) for t in subscribe]) if subscribe else self._subscribed.set(),
        )
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self._connected.wait(5) or not self._subscribed.wait(5):
            raise TimeoutError("probe could not connect/subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on ``topic`` so far."""
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def publish(
        self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    async def next(
        self,
        topic: str,
        where: Callable[[bytes], bool] = lambda p: True,
        *,
        after: int = 0,
        timeout: float = 5.0,
    ) -> bytes:
        """The first payload on ``topic`` (past the first ``after`` ones) matching ``where``; bounded."""

        def find() -> bytes | None:
            for p in self.on(topic)[after:]:
                if where(p):
                    return p
            return None

        return await wait_for(find, timeout)

    async def json(
        self, topic: str, where: Callable[[dict], bool] = lambda d: True, **kw: Any
    ) -> dict:
        """Like :meth:`next` for JSON payloads."""

        def ok(p: bytes) -> bool:
            try:
                return where(json.loads(p))
            except ValueError:
                return False

        return json.loads(await self.next(topic, ok, **kw))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def command(
    probe: Probe, base: str, name: str, payload: dict | None = None, *, timeout: float = 5.0
) -> dict:
    """Send a command with a fresh request_id and return its result."""
    rid = f"r{next(_ids)}"
    body = dict(payload or {}, request_id=rid)
    probe.publish(f"{base}/cmd/{name}", json.dumps(body))
    return await probe.json(
        f"{base}/cmd/{name}/result", lambda d: d.get("request_id") == rid, timeout=timeout
    )


PARENTAL_KEYS = ("quiet_hours", "usage_limit_minutes", "sleep_line")


def device_config(port: int, device_id: str = "toy1", **mqtt: Any) -> dict:
    """A device config with the parental and mqtt plugins against the test broker (fast reconnects).

    Parental keys (quiet hours, limit, sleep line) go into the parental section.
    """
    parental = {k: mqtt.pop(k) for k in PARENTAL_KEYS if k in mqtt}
    return {
        "role": "device",
        "device_id": device_id,
        "plugins": ["parental", "mqtt"],
        "parental": parental,
        "mqtt": {"port": port, "reconnect_min": 0.05, "reconnect_max": 0.3, **mqtt},
    }
