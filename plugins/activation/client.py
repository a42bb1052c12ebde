"""HTTP calls of the activation flow, as a xiaozhi device makes them (toyd's own HTTP client)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from toyd import __version__ as toyd_version
from toyd.errors import BackendError, ProtocolError
from toyd.httpclient import error_text, json_body, request
from toyd.protocol.activation import (
    ALGORITHM,
    MAX_BODY,
    OtaReply,
    activate_url,
    challenge_hmac,
    parse_reply,
)

TIMEOUT = 10.0
BOARD_TYPE = "toyd-pi"


def headers(device_id: str, token: str = "") -> dict[str, str]:
    """xiaozhi's OTA headers: Device-Id, Client-Id (stable per device id), Activation-Version."""
    out = {
        "Device-Id": device_id,
        "Client-Id": str(uuid.uuid5(uuid.NAMESPACE_DNS, device_id)),
        "Activation-Version": "1",
        "User-Agent": f"{BOARD_TYPE}/{toyd_version}",
    }
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def board_info(device_id: str) -> dict[str, Any]:
    """The board-info body (the fields xiaozhi servers read: application.version, board.type)."""
    return {
        "application": {"name": "toyd", "version": toyd_version},
        "board": {"type": BOARD_TYPE, "name": device_id},
    }


class Refused(BackendError):
    """The endpoint answered with an error status; ``status`` says what to do."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


async def _post(url: str, device_id: str, body: Any, token: str = "") -> tuple[int, Any]:
    data, content_type = json_body(body)
    async with await request(
        "POST",
        url,
        body=data,
        headers={**headers(device_id, token), **content_type},
        timeout=TIMEOUT,
    ) as response:
        if response.status not in (200, 202):
            raise Refused(response.status, await error_text(response))
        raw = await response.read(MAX_BODY * 4)
    try:
        return response.status, json.loads(raw or b"{}")
    except ValueError as exc:
        raise BackendError(f"{url}: answer is not JSON: {exc}") from None


async def check_in(ota_url: str, device_id: str, token: str) -> OtaReply:
    """POST board info; the reply has an ``activation`` section unless ``token`` is live."""
    _, data = await _post(ota_url, device_id, board_info(device_id), token)
    try:
        return parse_reply(data, ota_url)
    except ProtocolError as exc:
        raise BackendError(str(exc)) from None


async def poll(ota_url: str, device_id: str, challenge: str, license_key: str) -> bool:
    """True once claimed (the reply's token is live), False while waiting (202)."""
    body = {
        "algorithm": ALGORITHM,
        "serial_number": device_id,
        "challenge": challenge,
        "hmac": challenge_hmac(license_key, challenge),
    }
    status, _ = await _post(activate_url(ota_url), device_id, body)
    return status == 200
