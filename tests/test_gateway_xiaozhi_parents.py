"""A xiaozhi client's parents, reached from the cloud: its MCP tools, their volume command, its alerts.

The client is the real xiaozhi-sdk 0.5.1 (it implements MCP ``initialize``, ``tools/list``
and ``tools/call``); the broker is a private Mosquitto; parents are a real paho client.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from typing import Any

import pytest

from mqtt_support import Probe, command
from toyd.testing import free_port, running_daemon, wait_for
from toyd.testing.helpers import start_mosquitto
from toyd.testing.standin import StandIn
from xiaozhi_clients import Recorder

pytest.importorskip("xiaozhi_sdk")
from xiaozhi_sdk import XiaoZhiWebsocket  # noqa: E402
from xiaozhi_sdk.utils.mcp_tool import get_device_status, set_volume  # noqa: E402

MAC, TOKEN = "02:00:00:00:00:05", "xz-token-5"
BASE = f"toyd/{MAC}"
UNSAFE = "someone told me to keep a secret from my mom"


def cloud_config(port: int, broker: int, llm_url: str = "http://127.0.0.1:9/v1") -> dict[str, Any]:
    return {
        "role": "cloud",
        "device_id": "cloud",
        "plugins": ["gateway", "safety", "llm", "tts_espeak"],
        "gateway": {
            "port": port,
            "tokens": {MAC: TOKEN, "toy-1": "toy-token-1"},
            "stage_timeout": 20,
            "parents": {
                "enabled": True,
                "port": broker,
                "reconnect_min": 0.05,
                "reconnect_max": 0.3,
            },
        },
        "llm": {"base_url": llm_url, "model": "stand-in", "memory": False},
    }


class Device(Recorder):
    """xiaozhi-sdk with a speaker volume tool, as its own CLI sets one up."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.volumes: list[int] = []
        self.sdk = XiaoZhiWebsocket(self.on_message, url=f"ws://127.0.0.1:{port}/xiaozhi/v1/")
        self.sdk.mode = "manual"
        self.sdk.websocket_token = TOKEN
        volumes = self.volumes

        def volume_func(args: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            volumes.append(args["volume"])
            return {}, False

        # plain functions: the SDK deep-copies its tools (a bound method would drag the client along)
        volume, status = copy.copy(set_volume), copy.copy(get_device_status)
        volume["tool_func"] = volume_func
        status["tool_func"] = lambda args: ({"audio_speaker": {"volume": 50}}, False)
        self.tools = [volume, status]

    async def answered(self) -> None:
        """Until the reply to the text it sent has ended (bounded)."""
        await wait_for(lambda: self.of("tts", state="stop"), timeout=60)

    async def connect(self) -> None:
        await self.sdk.set_mcp_tool(self.tools)
        assert await self.sdk.init_connection(MAC)


def alert_log(cloud) -> Any:  # type: ignore[no-untyped-def]
    return cloud.host.plugins["gateway"].alert_log


async def test_mcp_tools_are_kept_and_a_parent_sets_the_volume(tmp_path, mosquitto):
    port = free_port()
    parent = Probe(mosquitto, subscribe=("toyd/#",))
    try:
        async with running_daemon(cloud_config(port, mosquitto), state_dir=tmp_path) as cloud:
            gateway = cloud.host.plugins["gateway"].gateway
            await wait_for(lambda: gateway.parents.bridge.connected, timeout=10)
            device = Device(port)
            await device.connect()
            try:
                session = gateway.sessions[MAC]
                mcp = session.xiaozhi.mcp
                await asyncio.wait_for(mcp.ready.wait(), 10)
                assert set(mcp.tools) == {"set_volume", "get_device_status"}
                assert "volume" in mcp.tools["set_volume"].properties
                # a command for a toy that is not a xiaozhi client here is left to that toy
                parent.publish("toyd/toy-1/cmd/volume", json.dumps({"level": 10}))
                result = await command(parent, BASE, "volume", {"level": 35})
                assert result["ok"] and result["data"] == {"level": 35} and result["error"] is None
                assert device.volumes == [35], "the client's own MCP tool set it"
                bad = await command(parent, BASE, "volume", {"level": 150})
                assert not bad["ok"] and "level: out of range" in bad["error"]
                wrong = await command(parent, BASE, "volume", {"level": "loud"})
                assert not wrong["ok"] and "whole number" in wrong["error"]
                assert device.volumes == [35]
                assert not parent.on("toyd/toy-1/cmd/volume/result"), "answered in order: none"
                assert session.errors == 0
            finally:
                await device.sdk.close()
    finally:
        parent.close()


@contextlib.asynccontextmanager
async def flagged_turn(tmp_path, broker: int):  # type: ignore[no-untyped-def]
    """A cloud with parents on ``broker``; a client said something unsafe and was answered."""
    port = free_port()
    async with StandIn() as llm:
        config = cloud_config(port, broker, llm.url + "/v1")
        async with running_daemon(config, state_dir=tmp_path) as cloud:
            device = Device(port)
            await device.connect()
            try:
                assert await device.sdk.send_text(UNSAFE)  # the child's words, as text
                await device.answered()
                yield cloud, device, llm
            finally:
                await device.sdk.close()


async def test_a_flagged_turn_reaches_parents_through_the_cloud(tmp_path, mosquitto):
    parent = Probe(mosquitto, subscribe=("toyd/+/event/#",))
    try:
        async with flagged_turn(tmp_path, mosquitto) as (cloud, device, llm):
            alert = await parent.json(f"{BASE}/event/safety_alert", timeout=30)
            logged = await alert_log(cloud).alerts(MAC)
    finally:
        parent.close()
    assert alert["category"] == "grooming" and alert["device_id"] == MAC
    assert alert["uid"] and alert["source"] == "gateway" and alert["turn_id"]
    assert [a.category for a in logged] == ["grooming"], "and in the cloud's alert log"
    assert not llm.requests, "unsafe words never reach the language model"
    assert device.texts("tts", state="sentence_start"), "the child heard the gentle line"


async def test_an_alert_raised_while_the_broker_is_down_arrives_when_it_is_back(tmp_path):
    broker = free_port()
    async with flagged_turn(tmp_path, broker) as (cloud, device, llm):
        parents = cloud.host.plugins["gateway"].gateway.parents
        assert await parents.outbox.count() == 1, "kept on disk while nobody can hear it"
        with start_mosquitto(broker):
            parent = Probe(broker, subscribe=("toyd/+/event/#",))
            try:
                alert = await parent.json(f"{BASE}/event/safety_alert", timeout=30)
            finally:
                parent.close()
            await wait_for(lambda: parents.relayed == 1, timeout=5)
        assert await parents.outbox.count() == 0
    assert alert["category"] == "grooming"


async def test_a_toyd_toys_alert_is_not_relayed_by_the_cloud(tmp_path, mosquitto):
    """A toyd toy tells its parents itself: a second copy from the cloud would be a duplicate."""
    from toyd.turn import SafetyVerdict, Turn
    from toyd_plugins.gateway.alerts import Alerts

    sent: list[Any] = []

    async def send(msg: Any) -> None:
        sent.append(msg)

    port = free_port()
    async with running_daemon(cloud_config(port, mosquitto), state_dir=tmp_path) as cloud:
        gateway = cloud.host.plugins["gateway"].gateway
        alerts = Alerts(gateway.context, send)
        verdict = SafetyVerdict(safe=False, action="redirect", category="grooming", alert=True)
        await alerts(Turn("toy-1", "s", "t"), verdict, "a secret")
        assert sent and sent[0].type == "alert", "the toy got its alert"
        assert await gateway.parents.outbox.count() == 0
