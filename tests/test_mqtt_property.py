"""Property test: at least 1 000 random payloads on the command topics; no crash, every one answered."""

from __future__ import annotations

import asyncio
import json
import string
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqtt_support import Probe, device_config
from toyd.testing import running_daemon, start_mosquitto

BASE = "toyd/prop"
EXAMPLES = 1000

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["level", "on", "text", "id", "minutes", "start", "end", "tz", "off", "request_id", "x"]
)
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 30), st.integers(0, 70))
field_values = (
    json_values
    | hhmm
    | st.integers(-5, 2000)
    | st.sampled_from(["Europe/Paris", "UTC", "Nowhere/Else", ""])
)
objects = st.dictionaries(field_names, field_values, max_size=5).map(
    lambda d: json.dumps(d).encode()
)
payloads = st.one_of(
    objects,
    objects,
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.binary(min_size=4000, max_size=6000),
    st.text(max_size=64).map(str.encode),
)
names = st.one_of(
    st.sampled_from(
        [
            "volume",
            "mute",
            "sleep",
            "wake",
            "quiet_hours",
            "usage_limit",
            "say",
            "persona",
            "reload_config",
            "status",
        ]
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=16),
)


class Harness:
    """A broker and a toy daemon in a background thread, plus a probe client; shared by all examples."""

    def __init__(self) -> None:
        self.sent = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def results(self) -> list[tuple[str, bytes]]:
        with self.probe._lock:
            return [
                (t, p)
                for t, p, _ in self.probe.messages
                if t.startswith(f"{BASE}/cmd/") and t.endswith("/result")
            ]

    def run_toy(self, port: int, state_dir: str) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop = asyncio.Event()
            from pathlib import Path

            async with running_daemon(
                device_config(port, device_id="prop"), state_dir=Path(state_dir)
            ) as app:
                self.app = app
                self.ready.set()
                await self.stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.ready.set()


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Iterator[Harness]:
    h = Harness()
    with start_mosquitto(extra_conf="set_tcp_nodelay true") as (_, port):
        h.probe = Probe(port, subscribe=(f"{BASE}/cmd/+/result", f"{BASE}/status"))
        thread = threading.Thread(
            target=h.run_toy, args=(port, str(tmp_path_factory.mktemp("prop"))), daemon=True
        )
        thread.start()
        assert h.ready.wait(20) and h.error is None, h.error
        deadline = time.monotonic() + 10
        while b"online" not in h.probe.on(f"{BASE}/status"):  # the toy is subscribed
            assert time.monotonic() < deadline, "the toy did not come online"
            time.sleep(0.01)
        yield h
        h.loop.call_soon_threadsafe(h.stop.set)
        thread.join(10)
        h.probe.close()
    assert h.error is None, h.error


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(name=names, payload=payloads)
def test_random_payloads_are_all_answered(harness: Harness, name: str, payload: bytes) -> None:
    harness.sent += 1
    harness.probe.client.publish(f"{BASE}/cmd/{name}", payload, qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while len(harness.results()) < harness.sent:  # a bounded wait in a sync test
        assert time.monotonic() < deadline, f"no answer to cmd/{name} payload {payload[:60]!r}"
        time.sleep(0.002)
    topic, body = harness.results()[harness.sent - 1]
    assert topic == f"{BASE}/cmd/{name}/result"
    result = json.loads(body)
    assert set(result) <= {"ok", "error", "request_id", "data"} and isinstance(result["ok"], bool)
    if not result["ok"]:
        assert isinstance(result["error"], str) and result["error"].startswith(f"cmd/{name}")


def test_every_payload_was_answered_exactly_once(harness: Harness) -> None:
    """Runs after the property test (file order): counts, and the toy is still alive."""
    assert harness.sent >= EXAMPLES
    assert len(harness.results()) == harness.sent
    assert harness.error is None and harness.app.host.plugins["mqtt"].bridge.connected
