"""MCP toward a xiaozhi client: the gateway asks for the client's tools and calls them.

A client whose hello has ``features.mcp`` runs an MCP server on the device (volume,
screen, LED ...). Like xiaozhi-esp32-server, the gateway sends ``initialize`` (id 1),
then ``tools/list`` (id 2, following ``nextCursor``), keeps the tools, and calls one
with ``tools/call`` when it has a use for it (a parent's volume command,
:mod:`.parents`). Everything the client answers is parsed defensively: garbage, unknown
ids, wrong shapes and oversized lists are logged once per session and dropped; the
session goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)
INITIALIZE_ID, TOOLS_LIST_ID = 1, 2  # the ids xiaozhi-esp32-server uses (clients expect them)
MAX_TOOLS = 64  # a device has a handful; more is a broken or hostile client
MAX_PAGES = 8  # tools/list continuations followed
MAX_PENDING = 8  # tool calls awaiting an answer at once
CALL_TIMEOUT = 5.0
SendPayload = Callable[[dict[str, Any]], Awaitable[None]]


class McpError(Exception):
    """A tool call that did not succeed: no such tool, an error answer, no answer in time."""


@dataclasses.dataclass(frozen=True)
class Tool:
    """One tool the client offers: its name and the properties its arguments may have."""

    name: str
    description: str
    properties: frozenset[str]


class McpClient:
    """The gateway's MCP side of one xiaozhi session."""

    def __init__(self, device_id: str, send: SendPayload) -> None:
        self.device_id = device_id
        self._send = send
        self.tools: dict[str, Tool] = {}
        self.ready = asyncio.Event()  # the tool list is complete
        self.server_info: dict[str, Any] = {}
        self._pages = 0
        self._initialized = False  # its answer asks for the tool list, once
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(TOOLS_LIST_ID + 1)
        self._logged: set[str] = set()

    async def start(self) -> None:
        """``initialize``; the tool list is asked for when the client answers."""
        await self._send(
            {
                "jsonrpc": "2.0",
                "id": INITIALIZE_ID,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2024-11-05",
                    # xiaozhi clients read capabilities.vision unconditionally (xiaozhi-sdk
                    # fails without it); the gateway offers no image explainer: empty
                    "capabilities": {"vision": {"url": "", "token": ""}},
                    "clientInfo": {"name": "toyd-gateway", "version": "1"},
                },
            }
        )

    def _once(self, kind: str, message: str, *args: Any) -> None:
        """Log a kind of client mistake the first time only (a flood must not flood the log)."""
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("%s: mcp: " + message + " (further ones not logged)", self.device_id, *args)

    async def on_payload(self, payload: Any) -> None:
        """One ``mcp`` message from the client; never raises."""
        if not isinstance(payload, dict):
            self._once("shape", "payload is %s, not an object", type(payload).__name__)
            return
        rid = payload.get("id")
        if isinstance(rid, bool) or not isinstance(rid, int):
            if "method" in payload:  # the client's own requests/notifications: nothing to serve
                return
            self._once("id", "answer with id %r, not a number", str(rid)[:40])
            return
        if rid in self._pending:
            self._settle(self._pending.pop(rid), payload)
        elif "error" in payload:
            self._once("error", "the client answered %d with an error: %s", rid, _text(payload))
        elif rid == INITIALIZE_ID:
            if self._initialized:
                self._once("again", "initialize answered again")
                return
            self._initialized = True
            result = payload.get("result")
            info = result.get("serverInfo") if isinstance(result, dict) else None
            self.server_info = info if isinstance(info, dict) else {}
            await self._send({"jsonrpc": "2.0", "id": TOOLS_LIST_ID, "method": "tools/list"})
        elif rid == TOOLS_LIST_ID:
            await self._on_tools(payload.get("result"))
        else:
            self._once("unknown", "answer to %d, which was never asked", rid)

    async def _on_tools(self, result: Any) -> None:
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            self._once("tools", "tools/list result has no list of tools")
            return
        for tool in tools:
            if len(self.tools) >= MAX_TOOLS:
                self._once(
                    "many", "the client offers more than %d tools; kept %d", *(MAX_TOOLS,) * 2
                )
                break
            parsed = _tool(tool)
            if parsed is None:
                self._once("tool", "a tool without a usable name was skipped: %s", str(tool)[:80])
            else:
                self.tools[parsed.name] = parsed
        cursor = result.get("nextCursor") if isinstance(result, dict) else None
        self._pages += 1
        if (
            isinstance(cursor, str)
            and cursor
            and self._pages < MAX_PAGES
            and not self.ready.is_set()
        ):
            await self._send(
                {
                    "jsonrpc": "2.0",
                    "id": TOOLS_LIST_ID,
                    "method": "tools/list",
                    "params": {"cursor": cursor[:200]},
                }
            )
            return
        if not self.ready.is_set():
            self.ready.set()
            log.info(
                "%s: mcp: the client offers %s", self.device_id, ", ".join(self.tools) or "no tools"
            )

    def _settle(self, future: asyncio.Future[Any], payload: dict[str, Any]) -> None:
        if future.done():
            return
        result = payload.get("result")
        if "error" in payload:
            future.set_exception(McpError(f"the client refused: {_text(payload)}"))
        elif not isinstance(result, dict):
            future.set_exception(McpError("the client answered without a result object"))
        elif result.get("isError") is True:
            future.set_exception(McpError(f"the tool failed: {_content(result)}"))
        else:
            future.set_result(_content(result))

    def tool_with(self, suffix: str, argument: str) -> Tool | None:
        """The client's tool named ``...suffix`` that takes ``argument`` (set_volume: firmware and SDK names differ)."""
        for tool in self.tools.values():
            if tool.name.rsplit(".", 1)[-1] == suffix and argument in tool.properties:
                return tool
        return None

    async def call(
        self, name: str, arguments: dict[str, Any], timeout: float = CALL_TIMEOUT
    ) -> str:
        """``tools/call``; the text of the answer, or McpError."""
        if name not in self.tools:
            raise McpError(f"the client has no tool {name!r}")
        if len(self._pending) >= MAX_PENDING:
            raise McpError("too many tool calls are waiting for the client")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self._send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "method": "tools/call",
                    "params": {"name": name, "arguments": arguments},
                }
            )
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise McpError(f"{name}: no answer within {timeout:g} s") from None
        finally:
            self._pending.pop(rid, None)

    def close(self) -> None:
        """The session ended: calls still waiting fail now."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(McpError("the client disconnected"))
        self._pending.clear()


def _tool(raw: Any) -> Tool | None:
    if not isinstance(raw, dict):
        return None
    name, description, schema = raw.get("name"), raw.get("description", ""), raw.get("inputSchema")
    if not isinstance(name, str) or not 0 < len(name) <= 128:
        return None
    props = schema.get("properties") if isinstance(schema, dict) else None
    return Tool(
        name=name,
        description=description[:500] if isinstance(description, str) else "",
        properties=frozenset(k for k in props if isinstance(k, str))
        if isinstance(props, dict)
        else frozenset(),
    )


def _text(payload: dict[str, Any]) -> str:
    error = payload.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:200]


def _content(result: dict[str, Any]) -> str:
    """The first text item of a tool result (what the firmware and the SDK put there)."""
    content = result.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        text = content[0].get("text")
        if isinstance(text, str):
            return text[:1000]
    return json.dumps(result, default=str)[:1000]
