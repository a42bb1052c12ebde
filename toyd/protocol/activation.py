"""Activation wire format, shared by the toy and the cloud (xiaozhi's OTA/activation flow).

A toy without a token POSTs its board info to the cloud's OTA URL; the answer carries the
gateway's WebSocket URL and a token, plus — while the toy is not yet activated — an
``activation`` section: a short code for a parent to claim and a random challenge. The toy
then POSTs ``{challenge, hmac}`` to ``<OTA URL>/activate`` until the answer is ``200``
(claimed; the token is valid from now on) rather than ``202`` (not yet). The HMAC is
HMAC-SHA256 of the challenge keyed with the toy's licence key (empty when it has none),
exactly as xiaozhi-esp32 and ``xiaozhi-sdk`` compute it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from typing import Any

from ..errors import ProtocolError

CODE_DIGITS = 6
CODE = re.compile(rf"^\d{{{CODE_DIGITS}}}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
MAX_BODY = 16 * 1024  # board info and activation posts are a few hundred bytes
ALGORITHM = "hmac-sha256"


def challenge_hmac(key: str, challenge: str) -> str:
    """Hex HMAC-SHA256 of ``challenge`` keyed with ``key`` (xiaozhi's activation proof)."""
    return hmac.new(key.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def activate_url(ota_url: str) -> str:
    """``<ota_url>/activate``, as the xiaozhi firmware builds it."""
    return ota_url.rstrip("/") + "/activate"


def spoken_code(code: str) -> str:
    """Digits separated, so a synthesizer reads "4 1 7 …" rather than a large number."""
    return " ".join(code)


@dataclasses.dataclass(frozen=True)
class Activation:
    """The ``activation`` section: what the toy shows and proves."""

    code: str
    challenge: str
    message: str = ""
    timeout_ms: int = 0


@dataclasses.dataclass(frozen=True)
class OtaReply:
    """What the cloud answered to a board-info POST."""

    websocket_url: str
    token: str
    activation: Activation | None


def parse_reply(data: Any, source: str = "OTA reply") -> OtaReply:
    """Validate an OTA answer; :class:`ProtocolError` names what is wrong."""
    if not isinstance(data, dict):
        raise ProtocolError("bad_reply", f"{source}: expected a JSON object")
    ws = data.get("websocket")
    if (
        not isinstance(ws, dict)
        or not isinstance(ws.get("url"), str)
        or not isinstance(ws.get("token"), str)
    ):
        raise ProtocolError("bad_reply", f"{source}: no websocket url and token")
    if not ws["url"].startswith(("ws://", "wss://")):
        raise ProtocolError(
            "bad_reply", f"{source}: websocket url {ws['url'][:80]!r} is not ws:// or wss://"
        )
    act = data.get("activation")
    activation = None
    if act is not None:
        if not isinstance(act, dict):
            raise ProtocolError("bad_reply", f"{source}: activation is not an object")
        code, challenge = act.get("code"), act.get("challenge")
        if not isinstance(code, str) or not CODE.match(code):
            raise ProtocolError(
                "bad_reply", f"{source}: activation code is not {CODE_DIGITS} digits"
            )
        if not isinstance(challenge, str) or not CHALLENGE.match(challenge):
            raise ProtocolError("bad_reply", f"{source}: activation challenge is malformed")
        timeout = act.get("timeout_ms", 0)
        message = act.get("message", "")
        activation = Activation(
            code=code,
            challenge=challenge,
            message=message if isinstance(message, str) else "",
            timeout_ms=timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else 0,
        )
    return OtaReply(websocket_url=ws["url"], token=ws["token"], activation=activation)
