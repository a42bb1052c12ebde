"""What a config push may change, and that every push is answered (real Mosquitto, real daemons)."""

from __future__ import annotations

import json

import pytest

from mqtt_support import Probe, command, device_config
from toyd.events import PluginFailed
from toyd.testing import next_event, running_daemon, wait_for

BASE = "toyd/toy1"
RESULT = f"{BASE}/config/result"


def push(probe: Probe, body: bytes | dict) -> None:
    probe.publish(
        f"{BASE}/config",
        body if isinstance(body, bytes) else json.dumps(body).encode(),
        retain=True,
    )


def nested(version: int, depth: int, open_: bytes = b'{"a": ', close: bytes = b"}") -> bytes:
    return (
        b'{"version": %d, "config": {"mqtt": ' % version
        + open_ * depth
        + b"1"
        + close * depth
        + b"}}"
    )


async def test_deeply_nested_pushes_are_refused_and_the_command_service_keeps_running(
    mosquitto, state_dir
):
    """Every depth around the interpreter's recursion limit (850-1000) and far beyond it, objects and lists."""
    probe = Probe(mosquitto)
    config = device_config(mosquitto, max_config_bytes=1048576)
    async with running_daemon(config, state_dir=state_dir) as app:
        failures = app.bus.subscribe("failures", (PluginFailed,), maxsize=100)
        await probe.next(f"{BASE}/status", lambda p: p == b"online")
        pushes = [nested(v, d) for v, d in enumerate(range(850, 1001), start=2)]
        pushes += [nested(300, 5000, b"[", b"]"), nested(301, 150_000, b"[", b"]")]
        for payload in pushes:
            answered = len(probe.on(RESULT))
            push(probe, payload)
            await wait_for(lambda: len(probe.on(RESULT)) > answered, 10)
            answer = json.loads(probe.on(RESULT)[-1])
            assert answer["result"] == "refused", answer
            assert (
                "nested more than 32 levels" in answer["error"]
                or "malformed JSON" in answer["error"]
            )
        # the same service still answers commands and applies the next good push at once
        assert (await command(probe, BASE, "status"))["ok"]
        push(probe, {"version": 400, "config": {"mqtt": {"max_volume": 40}}})
        applied = await probe.json(RESULT, lambda d: d["version"] == 400, timeout=10)
        assert applied["result"] == "applied" and app.config.section("mqtt").max_volume == 40
        with pytest.raises(TimeoutError):
            await next_event(failures, PluginFailed, 0.2)  # no service was restarted
    probe.close()


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("cloudlink", "url", "wss://evil.example/toys"),
        ("cloudlink", "token", "stolen"),
        ("cloudlink", "ca_file", "/tmp/evil-ca.pem"),
        ("mqtt", "host", "evil.example"),
        ("mqtt", "username", "someone-else"),
    ],
)
async def test_connection_settings_cannot_be_pushed(mosquitto, state_dir, section, key, value):
    probe = Probe(mosquitto)
    async with running_daemon(device_config(mosquitto), state_dir=state_dir) as app:
        await probe.next(f"{BASE}/status", lambda p: p == b"online")
        push(probe, {"version": 2, "config": {section: {key: value}}})
        answer = await probe.json(RESULT, lambda d: d["result"] == "refused", timeout=10)
        assert (
            f"config.{section}.{key}" in answer["error"] and "cannot be pushed" in answer["error"]
        )
        assert app.config.section("mqtt").host == "127.0.0.1"
    probe.close()


async def test_a_restart_needed_key_is_reported_pending_and_takes_effect_at_the_next_start(
    mosquitto, state_dir
):
    probe = Probe(mosquitto)
    config = device_config(mosquitto)
    config["plugins"] = ["statusfile", *config["plugins"]]
    async with running_daemon(config, state_dir=state_dir) as app:
        await wait_for(lambda: (state_dir / "status.json").exists(), 5)
        push(
            probe,
            {
                "version": 2,
                "config": {"statusfile": {"path": "status-2.json"}, "mqtt": {"max_volume": 55}},
            },
        )
        answer = await probe.json(RESULT, lambda d: d["version"] == 2, timeout=10)
        assert answer["result"] == "pending" and answer["restart"] == ["statusfile"]
        assert answer["applied"] == ["mqtt"] and app.config.section("mqtt").max_volume == 55  # live
        assert not (state_dir / "status-2.json").exists()  # truthfully: not yet
    (state_dir / "status.json").unlink()
    async with running_daemon(
        config, state_dir=state_dir
    ) as app:  # the same file config, restarted
        await wait_for(lambda: (state_dir / "status-2.json").exists(), 5)
        assert app.config.section("statusfile").path == "status-2.json"
        assert app.config.section("mqtt").max_volume == 55
        again = await probe.json(
            RESULT, lambda d: d["version"] == 2 and d["result"] == "applied", timeout=10
        )
        assert again["restart"] == []
    assert not (state_dir / "status.json").exists()
    probe.close()
