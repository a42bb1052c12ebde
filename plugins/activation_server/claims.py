"""Parents claim codes over MQTT: JSON commands, or a bare code from a Home Assistant text box.

Topics (``<prefix>`` is the broker settings' ``topic_prefix``):

- ``<prefix>/cloud/activation/claim``: ``{"code": "417093", "owner": "kim", "request_id": "r1"}``
  or just ``417093`` (the owner is then ``default_owner``: what a Home Assistant ``text``
  entity sends);
- ``<prefix>/cloud/activation/revoke``: ``{"device_id": "kitchen-toy"}`` or just the id;
- ``<prefix>/cloud/activation/result``: the answer to each, ``{"request_id", "ok", "device_id",
  "error", "message"}`` (``message`` is one readable sentence, shown by Home Assistant).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_PAYLOAD = 1024


@dataclass(frozen=True)
class ClaimCommand:
    """A parsed claim or revoke; ``error`` set when the payload was unusable."""

    action: str  # "claim" | "revoke"
    code: str = ""
    owner: str = ""
    device_id: str = ""
    request_id: str | None = None
    error: str = ""


def topics(prefix: str) -> dict[str, str]:
    base = f"{prefix}/cloud/activation"
    return {"claim": f"{base}/claim", "revoke": f"{base}/revoke", "result": f"{base}/result"}


def subscriptions(prefix: str, share_group: str) -> list[str]:
    """What a gateway subscribes to: in a shared group, the broker gives each claim to one of them.

    Without it, N gateways would all take one claim: one wins, N-1 answer "no toy is
    waiting with this code" on the result topic and count a failed claim.
    """
    t = topics(prefix)
    share = f"$share/{share_group}/" if share_group else ""
    return [share + t["claim"], share + t["revoke"]]


def parse(action: str, payload: bytes, default_owner: str) -> ClaimCommand:
    """Never raises: a bad payload gives a command carrying ``error``."""
    if len(payload) > MAX_PAYLOAD:
        return ClaimCommand(action, error=f"payload over {MAX_PAYLOAD} bytes")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return ClaimCommand(action, error="payload is not UTF-8")
    data: Any = text
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            return ClaimCommand(action, error=f"payload is not valid JSON: {exc}")
    request_id = data.get("request_id") if isinstance(data, dict) else None
    request_id = str(request_id)[:64] if request_id is not None else None
    if action == "revoke":
        device_id = data.get("device_id") if isinstance(data, dict) else data
        if not isinstance(device_id, str) or not DEVICE_ID.match(device_id):
            return ClaimCommand(action, request_id=request_id, error="expected a device_id")
        return ClaimCommand(action, device_id=device_id, request_id=request_id)
    code = data.get("code") if isinstance(data, dict) else data
    owner = data.get("owner", default_owner) if isinstance(data, dict) else default_owner
    if not isinstance(code, str) or not isinstance(owner, str):
        return ClaimCommand(
            action, request_id=request_id, error='expected {"code": "...", "owner": "..."}'
        )
    return ClaimCommand(action, code=code.replace(" ", ""), owner=owner, request_id=request_id)


def discovery(prefix: str, discovery_prefix: str, cloud_id: str) -> dict[str, dict[str, Any]]:
    """Home Assistant MQTT discovery: a text box to type a toy's code, a sensor with the outcome."""
    t = topics(prefix)
    device = {
        "identifiers": [f"toyd-cloud-{cloud_id}"],
        "name": f"toyd cloud {cloud_id}",
        "manufacturer": "toyd",
    }
    node = f"toyd_cloud_{re.sub(r'[^A-Za-z0-9_-]', '_', cloud_id)}"
    return {
        f"{discovery_prefix}/text/{node}/activation_code/config": {
            "name": "Activate a toy (code it speaks)",
            "unique_id": f"{node}_activation_code",
            "command_topic": t["claim"],
            "min": 6,
            "max": 6,
            "pattern": r"^\d{6}$",
            "mode": "text",
            "icon": "mdi:toy-brick-plus",
            "device": device,
        },
        f"{discovery_prefix}/sensor/{node}/activation_result/config": {
            "name": "Last toy activation",
            "unique_id": f"{node}_activation_result",
            "state_topic": t["result"],
            "value_template": "{{ value_json.message }}",
            "icon": "mdi:toy-brick-marker",
            "device": device,
        },
    }
