"""MCP toward xiaozhi clients when the client is hostile or broken: logged once, the session goes on."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from toyd.testing import free_port, running_daemon, wait_for
from toyd_plugins.gateway.mcp import MAX_PAGES, MAX_TOOLS, McpClient, McpError
from xiaozhi_clients import echo_cloud, greeted, headers

MAC, TOKEN = "02:00:00:00:00:06", "xz-token-6"


def mcp(payload: Any) -> str:
    return json.dumps({"session_id": "x", "type": "mcp", "payload": payload})


async def next_mcp(ws) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg["type"] == "mcp":
            return msg["payload"]


async def test_garbage_wrong_ids_and_huge_tool_lists_leave_the_session_working(tmp_path, caplog):
    from websockets.asyncio.client import connect

    caplog.set_level(logging.WARNING, logger="toyd_plugins.gateway.mcp")
    port = free_port()
    huge = [
        {"name": f"t{n}", "inputSchema": {"properties": {"v": {}}}} for n in range(800)
    ]  # < 64 KiB
    async with running_daemon(echo_cloud(port, MAC, TOKEN), state_dir=tmp_path) as cloud:
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers(MAC, TOKEN)) as ws:
            await greeted(ws)
            init = await next_mcp(ws)
            assert init["method"] == "initialize" and init["id"] == 1
            assert init["params"]["capabilities"]["vision"] == {"url": "", "token": ""}
            for junk in ("x", [], None, 7, {"id": "abc", "result": {}}, {"id": True}):
                await ws.send(mcp(junk))
            await ws.send(mcp({"id": 99, "result": {}}))  # never asked
            await ws.send(mcp({"id": 98, "result": {}}))
            await ws.send(mcp({"id": 1, "result": "not an object"}))
            assert (await next_mcp(ws))["method"] == "tools/list"
            await ws.send(mcp({"id": 2, "result": {"tools": "not a list"}}))
            await ws.send(mcp({"id": 2, "result": {"tools": [*huge[:10], 5, {"name": ""}]}}))
            await ws.send(mcp({"id": 2, "result": {"tools": huge}}))
            await ws.send(mcp({"id": 2, "result": {"tools": huge}}))
            session = cloud.host.plugins["gateway"].gateway.sessions[MAC]
            client = session.xiaozhi.mcp
            await wait_for(lambda: len(client.tools) == MAX_TOOLS, timeout=5)
            # the session still serves a turn
            await ws.send('{"type":"listen","state":"detect","text":"still there?"}')
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] == "tts" and msg["state"] == "stop":
                    break
    assert session.errors == 0, "MCP mistakes are not protocol errors"
    assert client.ready.is_set()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("more than 64 tools" in line for line in lines) == 1, "logged once"
    assert sum("never asked" in line for line in lines) == 1
    assert sum("not a number" in line for line in lines) == 1


class Wire:
    """What a :class:`McpClient` sends, and a way to answer it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.client = McpClient("dev", self.send)

    async def send(self, payload: dict[str, Any]) -> None:
        self.sent.append(payload)

    async def tools(self, *names: str, cursor: str = "") -> None:
        tools = [{"name": n, "inputSchema": {"properties": {"volume": {}}}} for n in names]
        result: dict[str, Any] = {"tools": tools}
        if cursor:
            result["nextCursor"] = cursor
        await self.client.on_payload({"jsonrpc": "2.0", "id": 2, "result": result})


async def test_tool_lists_follow_next_cursor_but_not_forever():
    wire = Wire()
    await wire.client.start()
    await wire.client.on_payload({"id": 1, "result": {"serverInfo": {"name": "dev"}}})
    await wire.tools("a", cursor="page2")
    assert wire.sent[-1]["params"] == {"cursor": "page2"} and not wire.client.ready.is_set()
    await wire.tools("b")
    assert wire.client.ready.is_set() and set(wire.client.tools) == {"a", "b"}
    endless = Wire()
    for n in range(MAX_PAGES + 3):
        await endless.tools(f"t{n}", cursor="again")
    assert endless.client.ready.is_set()
    assert sum(p.get("method") == "tools/list" for p in endless.sent) == MAX_PAGES - 1


async def test_tool_calls_answered_with_errors_or_nothing_raise_mcp_error():
    wire = Wire()
    await wire.tools("self.audio_speaker.set_volume")
    client = wire.client
    assert client.tool_with("set_volume", "volume").name == "self.audio_speaker.set_volume"

    async def answer(payload: dict[str, Any]) -> str:
        call = asyncio.create_task(client.call("self.audio_speaker.set_volume", {"volume": 3}))
        await wait_for(lambda: wire.sent and wire.sent[-1].get("method") == "tools/call")
        await client.on_payload({"id": wire.sent[-1]["id"], **payload})
        return await call

    assert await answer({"result": {"content": [{"type": "text", "text": "true"}]}}) == "true"
    for bad, problem in (
        ({"error": {"code": -32602, "message": "volume out of range"}}, "volume out of range"),
        ({"result": {"isError": True, "content": [{"text": "broken"}]}}, "broken"),
        ({"result": "yes"}, "without a result object"),
    ):
        with pytest.raises(McpError, match=problem):
            await answer(bad)
    with pytest.raises(McpError, match="no answer"):
        await client.call("self.audio_speaker.set_volume", {"volume": 3}, timeout=0.05)
    with pytest.raises(McpError, match="no tool"):
        await client.call("self.reboot", {})
    waiting = asyncio.create_task(client.call("self.audio_speaker.set_volume", {"volume": 1}))
    await wait_for(lambda: client._pending)
    client.close()
    with pytest.raises(McpError, match="disconnected"):
        await waiting
