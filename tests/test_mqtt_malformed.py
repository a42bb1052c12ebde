"""Bad command payloads get an error result naming the topic and field; nothing changes."""

from __future__ import annotations

import json

import pytest

from mqtt_support import Probe, command, device_config
from toyd import State
from toyd.events import PersonaSet, SayRequested, StateRequest, VolumeSet
from toyd.testing import running_daemon, wait_for

BASE = "toyd/toy1"


@pytest.fixture
async def toy(mosquitto, state_dir):
    probe = Probe(mosquitto)
    async with running_daemon(
        device_config(mosquitto, max_payload=4096), state_dir=state_dir
    ) as app:
        await probe.next(f"{BASE}/status", lambda p: p == b"online")
        sub = app.bus.subscribe("effects", (VolumeSet, PersonaSet, SayRequested, StateRequest))
        yield app, probe, sub
        assert sub.get_nowait() is None, "a rejected command had an effect"
        assert app.state is State.IDLE
    probe.close()


async def _raw(probe: Probe, name: str, payload: bytes, n: int = 0) -> dict:
    topic = f"{BASE}/cmd/{name}/result"
    before = len(probe.on(topic))
    probe.publish(f"{BASE}/cmd/{name}", payload)
    return json.loads(await probe.next(topic, after=before))


@pytest.mark.parametrize(
    ("name", "payload", "expect"),
    [
        ("volume", b"{not json", "cmd/volume: malformed JSON"),
        ("volume", b"[1, 2]", "cmd/volume: payload must be a JSON object"),
        ("volume", b'"loud"', "must be a JSON object"),
        ("volume", b"\xff\xfe", "not UTF-8"),
        ("volume", b"{}", "cmd/volume: level: required field is missing"),
        ("volume", b'{"level": 101}', "cmd/volume: level: out of range"),
        ("volume", b'{"level": -1}', "level: out of range"),
        ("volume", b'{"level": 5.5}', "level: expected a whole number"),
        ("volume", b'{"level": true}', "level: expected a whole number"),
        ("volume", b'{"level": 5, "bass": 3}', "cmd/volume: bass: unknown field"),
        ("mute", b'{"on": "yes"}', "cmd/mute: on: expected true or false"),
        ("say", b'{"text": ""}', "cmd/say: text: must not be empty"),
        ("say", b'{"text": 3}', "text: expected text"),
        ("persona", b'{"id": null}', "cmd/persona: id: expected text"),
        ("usage_limit", b'{"minutes": 2000}', "cmd/usage_limit: minutes: out of range"),
        ("selfdestruct", b"{}", "cmd/selfdestruct: unknown command"),
        ("status", b'{"request_id": {"a": 1}}', "request_id"),
        ("status", b"[" * 4000, "malformed JSON"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
async def test_bad_payload_gets_an_error_naming_it(toy, name, payload, expect):
    app, probe, sub = toy
    res = await _raw(probe, name, payload)
    assert res["ok"] is False
    assert expect in res["error"], res["error"]


async def test_oversized_payload_is_refused(toy):
    app, probe, sub = toy
    big = json.dumps({"text": "a" * 5000, "request_id": "big"}).encode()
    res = await _raw(probe, "say", big)
    assert not res["ok"] and "payload too large" in res["error"] and "4096" in res["error"]


async def test_field_errors_echo_the_request_id(toy):
    app, probe, sub = toy
    res = await command(probe, BASE, "volume", {"level": 500})
    assert not res["ok"] and res["request_id"].startswith("r")


async def test_retained_command_is_not_executed(toy):
    app, probe, sub = toy
    topic = f"{BASE}/cmd/sleep/result"
    before = len(probe.on(topic))
    probe.publish(f"{BASE}/cmd/sleep", b'{"on": true}', retain=True)
    # the broker delivers it live (not retained) first: that one runs; clear it and check
    # that a reconnect's retained copy is refused
    res = json.loads(await probe.next(topic, after=before))
    assert res["ok"]
    await wait_for(lambda: app.state is State.SLEEPING)
    sub.get_nowait()
    app.host.plugins["mqtt"].bridge.client.reconnect()
    res = json.loads(await probe.next(topic, lambda p: b"retained" in p, after=before))
    assert not res["ok"] and "retain" in res["error"]
    probe.publish(f"{BASE}/cmd/sleep", b"", retain=True)  # clear it
    await command(probe, BASE, "wake")
    await wait_for(lambda: app.state is State.IDLE)
    while sub.get_nowait() is not None:
        pass
