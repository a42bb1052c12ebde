"""Home Assistant MQTT discovery: the payload passes HA's schema and is re-sent on HA's birth.

The validator below is written from Home Assistant's own schema, not from our code:
- homeassistant/components/mqtt/schemas.py: DEVICE_DISCOVERY_SCHEMA (``device``,
  ``components`` each with ``platform``, ``origin`` with a required ``name``),
  MQTT_ENTITY_DEVICE_INFO_SCHEMA (at least one of identifiers/connections),
  availability_topic exclusive with availability;
- homeassistant/components/mqtt/abbreviations.py: the short keys we use;
- the platform schemas (number.py, switch.py, select.py, text.py, sensor.py): required
  command_topic/state_topic/options, number min < max, text 0 <= min <= max <= 255,
  sensor options only with device_class enum and then no unit/state_class;
- discovery.py: device-based discovery needs a unique_id per component.
Templates are rendered with Jinja2 (HA's template engine) against our real state message.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
import jinja2.sandbox
import pytest

from mqtt_support import Probe, command, device_config
from toyd.testing import running_daemon
from toyd_plugins.mqtt import commands
from toyd_plugins.mqtt.discovery import discovery_payload, discovery_topic

BASE = "toyd/toy1"

# from abbreviations.py (ABBREVIATIONS and DEVICE_ABBREVIATIONS / ORIGIN_ABBREVIATIONS), the keys we use
ABBREVIATIONS = {
    "dev": "device",
    "o": "origin",
    "cmps": "components",
    "p": "platform",
    "avty_t": "availability_topic",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "stat_t": "state_topic",
    "cmd_t": "command_topic",
    "val_tpl": "value_template",
    "cmd_tpl": "command_template",
    "uniq_id": "unique_id",
}
DEVICE_ABBREVIATIONS = {
    "ids": "identifiers",
    "cns": "connections",
    "mf": "manufacturer",
    "mdl": "model",
    "sw": "sw_version",
    "hw": "hw_version",
    "name": "name",
    "sa": "suggested_area",
    "cu": "configuration_url",
    "sn": "serial_number",
    "via_device": "via_device",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
SUPPORTED = {"number", "switch", "select", "text", "sensor", "binary_sensor", "button"}
REQUIRED = {
    "number": ("command_topic",),
    "switch": ("command_topic",),
    "select": ("command_topic", "options"),
    "text": ("command_topic",),
    "sensor": ("state_topic",),
}


def _expand(data: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    return {table.get(k, k): v for k, v in data.items()}


def validate_device_discovery(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Raise AssertionError naming the problem; returns ``(object_id, component)`` expanded."""
    top = _expand(payload, ABBREVIATIONS)
    assert "device" in top and "components" in top and "origin" in top, (
        "device, components, origin are required"
    )
    device = _expand(top["device"], DEVICE_ABBREVIATIONS)
    assert set(device) <= set(DEVICE_ABBREVIATIONS.values()), f"unknown device keys {set(device)}"
    assert device.get("identifiers") or device.get("connections"), (
        "device needs identifiers or connections"
    )
    assert all(isinstance(i, str) for i in device["identifiers"])
    origin = _expand(top["origin"], ORIGIN_ABBREVIATIONS)
    assert isinstance(origin.get("name"), str) and origin["name"], "origin.name is required"
    assert set(origin) <= set(ORIGIN_ABBREVIATIONS.values())
    assert not ("availability_topic" in top and "availability" in top), (
        "availability_topic excludes availability"
    )
    _topic(top["availability_topic"], subscribe=True)
    out = []
    for object_id, raw in top["components"].items():
        comp = _expand(raw, ABBREVIATIONS)
        platform = comp.get("platform")
        assert platform in SUPPORTED, f"{object_id}: platform {platform!r}"
        assert comp.get("unique_id"), f"{object_id}: device discovery needs a unique_id"
        for key in REQUIRED[platform]:
            assert key in comp, f"{object_id}: {platform} requires {key}"
        if "command_topic" in comp:
            _topic(comp["command_topic"], subscribe=False)
        if "state_topic" in comp:
            _topic(comp["state_topic"], subscribe=True)
        for key in ("value_template", "command_template"):
            if key in comp:
                jinja2.sandbox.SandboxedEnvironment().parse(comp[key])  # a syntax error fails here
        if platform == "number":
            assert comp.get("min", 1) < comp.get("max", 100), f"{object_id}: max must be > min"
            assert comp.get("mode", "auto") in ("auto", "box", "slider")
        if platform == "text":
            assert 0 <= comp.get("min", 0) <= comp.get("max", 255) <= 255, (
                f"{object_id}: text length bounds"
            )
            assert comp.get("mode", "text") in ("text", "password")
        if platform == "select":
            assert comp["options"] and all(isinstance(o, str) for o in comp["options"])
        if platform == "sensor" and "options" in comp:
            assert comp.get("device_class") == "enum", (
                f"{object_id}: options need device_class enum"
            )
            assert "unit_of_measurement" not in comp and "state_class" not in comp
        if platform == "switch" and "state_topic" in comp:
            # state_on/off default to payload_on/off: a JSON command would never match a state
            assert "state_on" in comp and "state_off" in comp, (
                f"{object_id}: set state_on/state_off"
            )
        out.append((object_id, comp))
    ids = [c["unique_id"] for _, c in out]
    assert len(ids) == len(set(ids)), "unique ids must be unique"
    return out


def _topic(topic: str, *, subscribe: bool) -> None:
    # util.valid_publish_topic / valid_subscribe_topic
    assert isinstance(topic, str) and topic and len(topic.encode()) <= 65535 and "\0" not in topic
    if not subscribe:
        assert "+" not in topic and "#" not in topic, f"wildcard in publish topic {topic}"


def render(template: str, **variables: Any) -> str:
    env = jinja2.sandbox.SandboxedEnvironment()
    return env.from_string(template).render(**variables)


def test_payload_passes_home_assistants_schema():
    payload = discovery_payload(
        device_id="toy1", base=BASE, name="Toy", personas=["buddy", "storyteller"]
    )
    comps = dict(validate_device_discovery(payload))
    assert set(comps) == {"volume", "mute", "sleep", "state", "cloud", "persona", "say"}
    assert {c["platform"] for c in comps.values()} == {
        "number",
        "switch",
        "sensor",
        "select",
        "text",
    }
    assert discovery_topic("homeassistant", "toy 1/x") == "homeassistant/device/toyd_toy_1_x/config"


def test_validator_catches_what_home_assistant_would_refuse():
    good = discovery_payload(device_id="toy1", base=BASE, name="Toy", personas=["a"])
    broken = json.loads(json.dumps(good))
    del broken["cmps"]["persona"]["options"]
    with pytest.raises(AssertionError, match="requires options"):
        validate_device_discovery(broken)
    broken = json.loads(json.dumps(good))
    broken["dev"]["ids"] = []
    with pytest.raises(AssertionError, match="identifiers"):
        validate_device_discovery(broken)
    broken = json.loads(json.dumps(good))
    del broken["cmps"]["mute"]["state_on"]
    with pytest.raises(AssertionError, match="state_on"):
        validate_device_discovery(broken)


def test_templates_turn_ha_values_into_valid_commands_and_read_our_state():
    """Every command template yields a payload our parser accepts; every value template reads our state."""
    payload = discovery_payload(
        device_id="toy1", base=BASE, name="Toy", personas=["buddy", "story teller"]
    )
    comps = dict(validate_device_discovery(payload))
    ha_values = {"volume": 42.0, "persona": "story teller", "say": 'Dinner "now" <3 & go'}
    for object_id, comp in comps.items():
        name = comp.get("command_topic", "").rsplit("/", 1)[-1]
        if "command_template" in comp:
            body = render(comp["command_template"], value=ha_values[object_id]).encode()
        elif comp["platform"] == "switch":
            body = comp["payload_on"].encode()
            assert commands.parse(name, comp["payload_off"].encode(), max_bytes=4096).args == {
                "on": False
            }
        else:
            continue
        parsed = commands.parse(name, body, max_bytes=4096)
        assert parsed.args, object_id
    assert (
        commands.parse(
            "say",
            render(comps["say"]["command_template"], value=ha_values["say"]).encode(),
            max_bytes=4096,
        ).args["text"]
        == ha_values["say"]
    )
    state = {
        "state": "sleeping",
        "cloud": "offline",
        "volume": 42,
        "muted": False,
        "sleeping": True,
        "persona": "story teller",
    }
    assert render(comps["volume"]["value_template"], value_json=state) == "42"
    assert render(comps["mute"]["value_template"], value_json=state) == comps["mute"]["state_off"]
    assert render(comps["sleep"]["value_template"], value_json=state) == comps["sleep"]["state_on"]
    assert render(comps["state"]["value_template"], value_json=state) in comps["state"]["options"]
    assert render(comps["cloud"]["value_template"], value_json=state) in comps["cloud"]["options"]
    assert (
        render(comps["persona"]["value_template"], value_json=state) in comps["persona"]["options"]
    )


async def test_discovery_is_published_and_consistent_with_the_device(mosquitto, state_dir):
    probe = Probe(mosquitto)
    topic = "homeassistant/device/toyd_toy1/config"
    async with running_daemon(
        device_config(mosquitto, name="Bear", personas=["buddy"]), state_dir=state_dir
    ):
        payload = json.loads(await probe.next(topic))
        comps = dict(validate_device_discovery(payload))
        assert payload["dev"]["name"] == "Bear" and payload["avty_t"] == f"{BASE}/status"
        state = await probe.json(f"{BASE}/state")
        for object_id, comp in comps.items():
            assert comp.get("state_topic", f"{BASE}/state") == f"{BASE}/state"
            if comp["platform"] == "sensor":
                assert render(comp["value_template"], value_json=state) in comp["options"]
        # HA's number: sending what its template makes really sets the volume
        probe.publish(
            comps["volume"]["command_topic"],
            render(comps["volume"]["command_template"], value=55.0),
        )
        await probe.json(f"{BASE}/state", lambda d: d["volume"] == 55)
        assert (
            render(
                comps["volume"]["value_template"],
                value_json=await probe.json(f"{BASE}/state", lambda d: d["volume"] == 55),
            )
            == "55"
        )
        # Home Assistant restarts: its birth message makes the toy announce itself again
        before = len(probe.on(topic))
        probe.publish("homeassistant/status", "online")
        await probe.next(topic, after=before)
        before = len(probe.on(topic))
        probe.publish("homeassistant/status", "offline")
        assert (await command(probe, BASE, "status"))["ok"]  # a round trip later: no re-announce
        assert len(probe.on(topic)) == before
    late = Probe(mosquitto)
    assert json.loads(await late.next(topic))["dev"]["ids"] == ["toyd_toy1"]  # retained
    late.close()
    probe.close()


async def test_discovery_can_be_turned_off(mosquitto, state_dir):
    probe = Probe(mosquitto)
    async with running_daemon(device_config(mosquitto, discovery=False), state_dir=state_dir):
        await probe.next(f"{BASE}/status", lambda p: p == b"online")
        assert (await command(probe, BASE, "status"))["ok"]
        assert not [t for t, _, _ in probe.messages if t.startswith("homeassistant/")]
    probe.close()
