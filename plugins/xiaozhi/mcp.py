"""The toy's own tools for the server's AI, over MCP (JSON-RPC 2.0 inside ``mcp`` messages).

Answers ``initialize``, ``tools/list`` and ``tools/call``; any other request gets a
JSON-RPC error, notifications are taken silently. Parent-only actions (reboot,
updates) are never offered: the AI talks to a child.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from toyd import __version__ as toyd_version
from toyd import events as ev

log = logging.getLogger(__name__)
PROTOCOL_VERSION = "2024-11-05"
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

_INT = {"type": "integer"}
TOOLS = [
    {
        "name": "self.get_device_status",
        "description": "The toy's state and speaker volume (0-100).",
        "inputSchema": {"type": "object", "properties": {}},
    },
    {
        "name": "self.audio_speaker.set_volume",
        "description": "Set the toy's speaker volume, 0-100.",
        "inputSchema": {
            "type": "object",
            "properties": {"volume": {**_INT, "minimum": 0, "maximum": 100}},
            "required": ["volume"],
        },
    },
    {
        "name": "self.led.set_color",
        "description": "Light the toy's LED in a colour for a few seconds "
        "(red, green, blue 0-255).",
        "inputSchema": {
            "type": "object",
            "properties": {c: {**_INT, "minimum": 0, "maximum": 255} for c in ("r", "g", "b")},
            "required": ["r", "g", "b"],
        },
    },
]


class ToolError(ValueError):
    """Arguments of a tool call that do not fit its schema."""


def _whole(args: dict[str, Any], key: str, low: int, high: int) -> int:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ToolError(f"{key} must be a whole number {low}-{high} (got {str(value)[:40]!r})")
    return value


class McpTools:
    """JSON-RPC requests in, responses out; effects go to the bus."""

    def __init__(
        self, publish: Callable[[ev.Event], None], status: Callable[[], dict[str, Any]]
    ) -> None:
        self.publish, self.status = publish, status

    def handle(self, payload: Any) -> dict[str, Any] | None:
        """One JSON-RPC message → its response (None for a notification or a response)."""
        if not isinstance(payload, dict) or payload.get("jsonrpc") != "2.0":
            return _error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 object")
        rid, method = payload.get("id"), payload.get("method")
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (int, str))):
            return _error(None, INVALID_REQUEST, "id must be a number or a string")
        if not isinstance(method, str):
            return (
                None
                if "result" in payload or "error" in payload
                else _error(rid, INVALID_REQUEST, "no method")
            )
        if rid is None:
            return None  # a notification (notifications/initialized, ...): nothing to answer
        params = payload.get("params", {})
        if not isinstance(params, dict):
            return _error(rid, INVALID_PARAMS, "params must be an object")
        if method == "initialize":
            return _result(
                rid,
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "toyd", "version": toyd_version},
                },
            )
        if method == "tools/list":
            return _result(rid, {"tools": TOOLS})
        if method == "tools/call":
            return self._call(rid, params)
        return _error(rid, METHOD_NOT_FOUND, f"method {method[:60]!r} is not supported")

    def _call(self, rid: int | str, params: dict[str, Any]) -> dict[str, Any]:
        name, args = params.get("name"), params.get("arguments", {})
        if not isinstance(args, dict):
            return _error(rid, INVALID_PARAMS, "arguments must be an object")
        try:
            if name == "self.get_device_status":
                text = json.dumps(self.status())
            elif name == "self.audio_speaker.set_volume":
                self.publish(ev.VolumeSet(level=_whole(args, "volume", 0, 100)))
                text = "true"
            elif name == "self.led.set_color":
                rgb = tuple(_whole(args, c, 0, 255) for c in ("r", "g", "b"))
                self.publish(ev.LedLook(rgb=rgb, source="xiaozhi"))  # type: ignore[arg-type]
                text = "true"
            else:
                return _error(rid, INVALID_PARAMS, f"unknown tool {str(name)[:60]!r}")
        except ToolError as exc:
            return _error(rid, INVALID_PARAMS, str(exc))
        log.info("xiaozhi: the server called %s %s", name, args)
        return _result(rid, {"content": [{"type": "text", "text": text}], "isError": False})


def _result(rid: int | str, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def _error(rid: int | str | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
