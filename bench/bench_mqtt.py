"""MQTT benchmark: command round trip (publish -> result) and config push -> applied, on loopback.

Runs a private Mosquitto and a real toy daemon; prints a table. Goal: round trip p95 <= 50 ms.
Measured twice: with ``set_tcp_nodelay true`` (as config/mosquitto/toyd.conf sets) and with
Mosquitto's default, where Nagle's algorithm on the broker's sockets adds ~40 ms per message.
Usage: python bench/bench_mqtt.py [--commands N] [--pushes N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from toyd.events import ConfigApplied
from toyd.testing import running_daemon, start_mosquitto

BASE = "toyd/bench"


class Client:
    """A parent's client that timestamps every message it receives."""

    def __init__(self, port: int) -> None:
        self.arrived: dict[str, float] = {}
        self.event = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-parent")
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda c, u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{BASE}/cmd/+/result", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        rid = json.loads(msg.payload).get("request_id")
        self.arrived[rid] = time.perf_counter()
        self.event.set()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


async def bench(
    commands: int, pushes: int, broker_conf: str, label: str
) -> list[tuple[str, int, float, float, float, str]]:
    rows = []
    with start_mosquitto(extra_conf=broker_conf) as (_, port), tempfile.TemporaryDirectory() as tmp:
        config = {
            "role": "device",
            "device_id": "bench",
            "plugins": ["mqtt"],
            "mqtt": {"port": port},
        }
        async with running_daemon(config, state_dir=Path(tmp)) as app:
            parent = Client(port)
            await asyncio.sleep(0.5)  # let the toy connect and subscribe
            for name, body in (("status", {}), ("volume", {"level": 40})):
                times = []
                for i in range(commands):
                    rid = f"{name}-{i}"
                    start = time.perf_counter()
                    parent.client.publish(
                        f"{BASE}/cmd/{name}", json.dumps({**body, "request_id": rid}), qos=1
                    )
                    while rid not in parent.arrived:
                        await asyncio.sleep(0.0005)
                    times.append((parent.arrived[rid] - start) * 1000)
                rows.append(
                    (
                        f"round trip {name} [{label}]",
                        commands,
                        statistics.median(times),
                        pct(times, 95),
                        max(times),
                        "p95 <= 50 ms",
                    )
                )
            sub = app.bus.subscribe("bench", (ConfigApplied,))
            times = []
            for version in range(1, pushes + 1):
                body = json.dumps(
                    {"version": version, "config": {"mqtt": {"max_volume": 50 + version % 50}}}
                )
                start = time.perf_counter()
                parent.client.publish(f"{BASE}/config", body, qos=1, retain=True)
                event = await asyncio.wait_for(sub.get(), 5)
                assert isinstance(event, ConfigApplied) and event.version == version
                times.append((time.perf_counter() - start) * 1000)
            rows.append(
                (
                    f"push -> applied [{label}]",
                    pushes,
                    statistics.median(times),
                    pct(times, 95),
                    max(times),
                    "-",
                )
            )
            parent.client.loop_stop()
    return rows


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--pushes", type=int, default=100)
    args = parser.parse_args()
    rows = asyncio.run(bench(args.commands, args.pushes, "set_tcp_nodelay true", "nodelay broker"))
    rows += asyncio.run(bench(args.commands, args.pushes, "", "default broker"))
    print(f"{'measure':40} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  goal")
    for name, n, p50, p95, worst, goal in rows:
        print(f"{name:40} {n:5d} {p50:8.2f} {p95:8.2f} {worst:8.2f}  {goal}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
