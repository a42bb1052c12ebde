"""The OTA/activation HTTP endpoint, xiaozhi-compatible (aiohttp).

``POST <path>``            board info → WebSocket URL + token (+ activation code, challenge)
``POST <path>activate``    ``{challenge, hmac}`` → 200 activated, 202 not claimed yet

Unauthenticated by design (a fresh toy has nothing to authenticate with), so every
request is rate-limited per client address, codes per toy in the store, and bodies are
capped. Errors are JSON ``{"error": ...}`` with a status the toy can act on: 429 wait,
404/410 ask for a new code, 403 wrong proof, 400 malformed, 503 the store is unavailable
(try again; the toy keeps its token).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from toyd.protocol.activation import CHALLENGE, MAX_BODY, spoken_code
from toyd.store import StoreError

from .ratelimit import RateLimiter
from .store import ActivationRefused, ActivationStore, Issued

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _unavailable(what: str, address: str, exc: StoreError) -> web.Response:
    """The database is away: the toy is told to try again, nothing is issued or lost."""
    log.warning("activation: %s from %s not answered: %s", what, address, exc)
    return _error(503, "the activation store is unavailable; try again shortly")


class OtaEndpoint:
    """Routes and handlers around one store."""

    def __init__(
        self,
        store: ActivationStore,
        settings: Any,
        authenticate: Callable[[str, str], Awaitable[bool]],
        device_id_ok: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.settings = settings
        self.authenticate = authenticate
        self.device_id_ok = device_id_ok
        self.board_limiter = RateLimiter(settings.requests_per_minute, settings.burst)
        self.poll_limiter = RateLimiter(settings.polls_per_minute, settings.burst)
        self.issued = 0
        self.activated = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        path = self.settings.path
        app.router.add_post(path, self.board_info)
        app.router.add_post(path.rstrip("/"), self.board_info)
        app.router.add_post(path + "activate", self.activate)
        app.router.add_post(path + "activate/", self.activate)
        return app

    def _address(self, request: web.Request) -> str:
        if self.settings.trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "")
            if forwarded:
                return forwarded.split(",")[-1].strip()
        return request.remote or "?"

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.text() or "{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ActivationRefused(400, f"body is not JSON: {exc}") from None
        except web.HTTPRequestEntityTooLarge:
            raise ActivationRefused(413, f"body over {MAX_BODY} bytes") from None
        if not isinstance(data, dict):
            raise ActivationRefused(400, "body must be a JSON object")
        return data

    def _device(self, request: web.Request) -> str:
        device_id = request.headers.get("Device-Id", "")
        if not self.device_id_ok(device_id):
            raise ActivationRefused(400, "Device-Id header missing or malformed")
        return device_id

    def _reply(self, token: str, issued: Issued | None, version: str) -> dict[str, Any]:
        s = self.settings
        reply: dict[str, Any] = {
            "websocket": {"url": s.websocket_url, "token": token},
            "server_time": {"timestamp": int(time.time() * 1000), "timezone_offset": 0},
            "firmware": {"version": version, "url": ""},
        }
        if issued is not None:
            reply["activation"] = {
                "code": issued.code,
                "challenge": issued.challenge,
                "timeout_ms": int(issued.expires_in * 1000),
                "message": s.message.format(code=spoken_code(issued.code)),
            }
        return reply

    async def board_info(self, request: web.Request) -> web.Response:
        address = self._address(request)
        try:
            if not self.board_limiter.allow(address):
                raise ActivationRefused(429, "too many requests; slow down")
            device_id = self._device(request)
            data = await self._json(request)
            app = data.get("application")
            version = app.get("version", "") if isinstance(app, dict) else ""
            version = version if isinstance(version, str) else ""
            auth = request.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.startswith("Bearer ") else ""
            if token and await self.authenticate(device_id, token):
                return web.json_response(self._reply(token, None, version[:40]))
            client_id = request.headers.get("Client-Id", "")[:64]
            issued = await self.store.issue(device_id, client_id)
        except ActivationRefused as exc:
            log.warning("activation: board info from %s refused (%d): %s", address, exc.status, exc)
            return _error(exc.status, str(exc))
        except StoreError as exc:
            return _unavailable("board info", address, exc)
        self.issued += 1
        log.info(
            "activation: code issued to %s (%s); expires in %.0f s",
            device_id,
            address,
            issued.expires_in,
        )
        return web.json_response(self._reply(issued.token, issued, version[:40]))

    async def activate(self, request: web.Request) -> web.Response:
        address = self._address(request)
        try:
            if not self.poll_limiter.allow(address):
                raise ActivationRefused(429, "too many requests; slow down")
            device_id = self._device(request)
            data = await self._json(request)
            challenge, proof = data.get("challenge"), data.get("hmac")
            if (
                not isinstance(challenge, str)
                or not CHALLENGE.match(challenge)
                or not isinstance(proof, str)
            ):
                raise ActivationRefused(400, "challenge and hmac (strings) are required")
            key = self.settings.license_keys.get(device_id, "")
            done = await self.store.activate(device_id, challenge, proof[:128], key)
        except ActivationRefused as exc:
            log.warning("activation: activate from %s refused (%d): %s", address, exc.status, exc)
            return _error(exc.status, str(exc))
        except StoreError as exc:
            return _unavailable("activate", address, exc)
        if not done:
            return web.json_response(
                {"status": "waiting for a parent to claim the code"}, status=202
            )
        self.activated += 1
        log.info("activation: %s activated", device_id)
        return web.json_response({"status": "activated"})
