"""Home Assistant MQTT discovery: one device-based discovery message for the whole toy.

Device-based discovery (``<prefix>/device/<object_id>/config`` with ``dev``, ``o`` and
``cmps``) announces every entity at once, see
https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload and
``homeassistant/components/mqtt/schemas.py`` (DEVICE_DISCOVERY_SCHEMA). HA publishes raw
values on command topics, so each entity has a ``command_template`` that turns the value
into our JSON command payload.
"""

from __future__ import annotations

import json
import re
from typing import Any

from toyd import State, __version__

from .commands import SAY_MAX_CHARS

# HA's text entity holds at most 255 characters (MAX_LENGTH_STATE_STATE)
HA_TEXT_MAX = min(255, SAY_MAX_CHARS)


def node_id(device_id: str) -> str:
    """The discovery object id: HA allows only [a-zA-Z0-9_-] in it."""
    return "toyd_" + re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)


def discovery_topic(discovery_prefix: str, device_id: str) -> str:
    """Where the retained discovery message lives."""
    return f"{discovery_prefix}/device/{node_id(device_id)}/config"


def discovery_payload(
    *, device_id: str, base: str, name: str, personas: list[str]
) -> dict[str, Any]:
    """The discovery message: device info, origin, availability and every entity."""
    node = node_id(device_id)
    state_t = f"{base}/state"

    def cmd(name: str) -> str:
        return f"{base}/cmd/{name}"

    components: dict[str, dict[str, Any]] = {
        "volume": {
            "p": "number",
            "name": "Volume",
            "unique_id": f"{node}_volume",
            "icon": "mdi:volume-high",
            "command_topic": cmd("volume"),
            "command_template": '{"level": {{ value | int }}}',
            "state_topic": state_t,
            "value_template": "{{ value_json.volume }}",
            "min": 0,
            "max": 100,
            "step": 1,
            "mode": "slider",
            "unit_of_measurement": "%",
        },
        "mute": _switch(node, "mute", "Mute", cmd("mute"), state_t, "muted", "mdi:microphone-off"),
        "sleep": _switch(node, "sleep", "Sleep", cmd("sleep"), state_t, "sleeping", "mdi:sleep"),
        "state": {
            "p": "sensor",
            "name": "State",
            "unique_id": f"{node}_state",
            "icon": "mdi:teddy-bear",
            "state_topic": state_t,
            "value_template": "{{ value_json.state }}",
            "device_class": "enum",
            "options": [s.value for s in State],
        },
        "cloud": {
            "p": "sensor",
            "name": "Cloud link",
            "unique_id": f"{node}_cloud",
            "icon": "mdi:cloud",
            "state_topic": state_t,
            "value_template": "{{ value_json.cloud }}",
            "device_class": "enum",
            "options": ["online", "offline"],
            "entity_category": "diagnostic",
        },
        "say": {
            "p": "text",
            "name": "Say",
            "unique_id": f"{node}_say",
            "icon": "mdi:message-text",
            "command_topic": cmd("say"),
            "command_template": '{"text": {{ value | tojson }}}',
            "min": 0,
            "max": HA_TEXT_MAX,
            "mode": "text",
        },
    }
    if personas:
        components["persona"] = {
            "p": "select",
            "name": "Persona",
            "unique_id": f"{node}_persona",
            "icon": "mdi:drama-masks",
            "command_topic": cmd("persona"),
            "command_template": '{"id": {{ value | tojson }}}',
            "state_topic": state_t,
            "value_template": "{{ value_json.persona }}",
            "options": list(personas),
        }
    return {
        "dev": {
            "ids": [node],
            "name": name,
            "mf": "toyd",
            "mdl": "toyd voice toy",
            "sw": __version__,
        },
        "o": {"name": "toyd", "sw": __version__, "url": "https://github.com/toyd/toyd"},
        "avty_t": f"{base}/status",
        "pl_avail": "online",
        "pl_not_avail": "offline",
        "qos": 1,
        "cmps": components,
    }


def _switch(
    node: str, key: str, name: str, command_topic: str, state_topic: str, flag: str, icon: str
) -> dict[str, Any]:
    # state_on/off must be set: they default to payload_on/off, which are our JSON commands
    return {
        "p": "switch",
        "name": name,
        "unique_id": f"{node}_{key}",
        "icon": icon,
        "command_topic": command_topic,
        "payload_on": '{"on": true}',
        "payload_off": '{"on": false}',
        "state_topic": state_topic,
        "value_template": f"{{{{ 'ON' if value_json.{flag} else 'OFF' }}}}",
        "state_on": "ON",
        "state_off": "OFF",
    }


def encode(payload: dict[str, Any]) -> str:
    """Compact JSON for the wire."""
    return json.dumps(payload, separators=(",", ":"))
