"""Shared by the tests of xiaozhi clients on the gateway: the ESP32 hello, configs, a recorder."""

from __future__ import annotations

import asyncio
import json
from typing import Any

HELLO = {  # what 78/xiaozhi-esp32 sends (60 ms Opus frames, MCP)
    "type": "hello",
    "version": 1,
    "features": {"mcp": True},
    "transport": "websocket",
    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60},
}


def headers(mac: str, token: str) -> dict[str, str]:
    """The firmware's connection headers."""
    return {"Authorization": f"Bearer {token}", "Protocol-Version": "1", "Device-Id": mac}


def echo_cloud(port: int, mac: str, token: str) -> dict[str, Any]:
    """A cloud whose AI chain is ``echochain``: fast turns for protocol tests."""
    return {
        "role": "cloud",
        "device_id": "cloud",
        "plugins": ["gateway", "echochain"],
        "gateway": {"port": port, "tokens": {mac: token}},
    }


async def greeted(ws: Any, hello: dict[str, Any] = HELLO) -> dict[str, Any]:
    """Send the hello on a raw connection; the server's hello."""
    await ws.send(json.dumps(hello))
    answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert answer["type"] == "hello", answer
    return answer


class Recorder:
    """The application side of xiaozhi-sdk: every message the SDK hands over, kept."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def on_message(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)

    def of(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        """The messages of one type whose fields have these values."""
        return [
            m
            for m in self.messages
            if m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())
        ]

    def texts(self, kind: str, **fields: Any) -> list[str]:
        return [m.get("text", "") for m in self.of(kind, **fields)]
