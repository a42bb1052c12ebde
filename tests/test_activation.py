"""Activation end to end: a toy without a token, the real cloud, a parent's claim, revocation.

Real daemons on loopback (gateway + activation endpoint, a toy with cloudlink + activation),
a private Mosquitto for MQTT claims, the real ``xiaozhi-sdk`` client as a xiaozhi device.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator

import pytest

from linkkit import speech
from mqtt_support import Probe
from toyd import PluginDeclaration, credentials, hookimpl
from toyd import events as ev
from toyd.cli import main as toyd_main
from toyd.protocol.activation import challenge_hmac
from toyd.testing import free_port, next_event, running_daemon, start_mosquitto, wait_for


class FakeVoice:
    """The toy's synthesizer at the hardware edge: records what it was asked to say."""

    said: list[str] = []

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("device",))

    @hookimpl
    def toyd_synthesize(self, turn, text):
        FakeVoice.said.append(text)

        async def chunks() -> AsyncIterator[bytes]:
            yield speech()

        return chunks()


def cloud_config(port: int, http_port: int, **activation) -> dict:
    return {
        "role": "cloud",
        "device_id": "cloud",
        "plugins": ["activation_server", "gateway", "echochain"],
        "gateway": {"port": port, "tokens": {}},
        "activation_server": {
            "port": http_port,
            "websocket_url": f"ws://127.0.0.1:{port}/",
            **activation,
        },
    }


def toy_config(port: int, http_port: int, device_id: str = "toy-1", **activation) -> dict:
    return {
        "role": "device",
        "device_id": device_id,
        "plugins": ["cloudlink", "activation", "voice"],
        "cloudlink": {
            "url": f"ws://127.0.0.1:{port}",
            "token": "",
            "backoff_initial": 0.05,
            "backoff_max": 0.5,
        },
        "activation": {
            "url": f"http://127.0.0.1:{http_port}/toyd/ota/",
            "poll_interval": 0.2,
            **activation,
        },
    }


def claim(db: str, code: str, owner: str = "kim") -> int:
    return toyd_main(["cloud", "claim", code, "--owner", owner, "--db", db])


async def test_fresh_toy_speaks_its_code_is_claimed_stores_its_token_and_connects(tmp_path, capsys):
    port, http_port = free_port(), free_port()
    FakeVoice.said.clear()
    async with running_daemon(cloud_config(port, http_port), state_dir=tmp_path / "cloud") as cloud:
        db = str(tmp_path / "cloud" / "activation.sqlite")
        async with running_daemon(
            toy_config(port, http_port),
            state_dir=tmp_path / "toy",
            extra_plugins={"voice": FakeVoice},
        ) as toy:
            sub = toy.bus.subscribe("test", maxsize=100000)
            shown = await next_event(
                sub, ev.ActivationCode, timeout=10, where=lambda e: bool(e.code)
            )
            await next_event(
                sub, ev.ReplyAudioEnd, timeout=10
            )  # the code was spoken to the speaker
            assert FakeVoice.said and " ".join(shown.code) in FakeVoice.said[0]
            assert not credentials.read_token(toy.state_dir)
            assert await asyncio.to_thread(claim, db, shown.code) == 0
            assert "claimed toy-1 for kim" in capsys.readouterr().out
            await next_event(sub, ev.CloudTokenStored, timeout=10)
            await next_event(sub, ev.CloudOnline, timeout=10)
            path = credentials.token_path(toy.state_dir)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert cloud.host.plugins["gateway"].gateway.sessions.keys() == {"toy-1"}
            # the code was single-use
            assert await asyncio.to_thread(claim, db, shown.code) == 1

            # revoked: the session ends, the token file goes, the toy asks for a new code
            assert await asyncio.to_thread(toyd_main, ["cloud", "revoke", "toy-1", "--db", db]) == 0
            again = await next_event(
                sub, ev.ActivationCode, timeout=15, where=lambda e: bool(e.code)
            )
            assert not path.exists()
            assert "toy-1" not in cloud.host.plugins["gateway"].gateway.sessions
            assert await asyncio.to_thread(claim, db, again.code) == 0
            await next_event(sub, ev.CloudOnline, timeout=15)
        # restarted with its stored token: no new code, straight online
        async with running_daemon(
            toy_config(port, http_port),
            state_dir=tmp_path / "toy",
            extra_plugins={"voice": FakeVoice},
        ) as toy:
            sub = toy.bus.subscribe("test", maxsize=100000)
            await next_event(sub, ev.CloudOnline, timeout=10)
            plugin = toy.host.plugins["activation"]
            await wait_for(lambda: not plugin._recheck.is_set(), timeout=5)
            assert plugin.activations == 0


async def post(http_port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    from toyd.httpclient import request

    async with await request(
        "POST", f"http://127.0.0.1:{http_port}{path}", body=body, headers=headers
    ) as r:
        raw = await r.read()
    return r.status, json.loads(raw) if raw else {}


async def test_malformed_requests_get_clear_errors_and_the_endpoint_keeps_serving(tmp_path):
    port, http_port = free_port(), free_port()
    async with running_daemon(
        cloud_config(port, http_port, requests_per_minute=1000, burst=100),
        state_dir=tmp_path / "cloud",
    ):
        ok = {"Device-Id": "toy-1", "Content-Type": "application/json"}
        status, data = await post(http_port, "/toyd/ota/", b"{not json", ok)
        assert status == 400 and "JSON" in data["error"]
        status, data = await post(http_port, "/toyd/ota/", b"[1]", ok)
        assert status == 400
        status, data = await post(http_port, "/toyd/ota/", b"{}", {"Device-Id": "bad id!"})
        assert status == 400 and "Device-Id" in data["error"]
        status, data = await post(http_port, "/toyd/ota/", b"x" * 20000, ok)
        assert status == 413
        status, data = await post(http_port, "/toyd/ota/activate", b'{"challenge": 5}', ok)
        assert status == 400
        status, data = await post(http_port, "/toyd/ota/", b"{}", ok)
        assert status == 200 and data["activation"]["code"].isdigit()
        assert data["websocket"]["url"] == f"ws://127.0.0.1:{port}/"


async def test_guessing_challenges_on_loopback_never_activates(tmp_path):
    """A bounded brute force of the activation poll: random challenges and HMACs, never a 200."""
    import secrets

    port, http_port = free_port(), free_port()
    async with running_daemon(
        cloud_config(port, http_port, polls_per_minute=60, burst=10), state_dir=tmp_path / "cloud"
    ):
        headers = {"Device-Id": "toy-1"}
        status, real = await post(http_port, "/toyd/ota/", b"{}", headers)
        statuses = []
        for _ in range(200):
            body = json.dumps(
                {"challenge": secrets.token_urlsafe(24), "hmac": secrets.token_hex(32)}
            ).encode()
            statuses.append((await post(http_port, "/toyd/ota/activate", body, headers))[0])
        assert 200 not in statuses and 202 not in statuses
        assert statuses.count(429) >= 180  # the address is throttled after its burst
        assert set(statuses) <= {404, 429}


async def test_parent_claims_over_mqtt_and_home_assistant_text_box(tmp_path):
    port, http_port = free_port(), free_port()
    with start_mosquitto() as (_, mqtt_port):
        probe = Probe(mqtt_port, subscribe=("toyd/cloud/#", "homeassistant/#"))
        try:
            config = cloud_config(
                port, http_port, mqtt_claims=True, mqtt={"port": mqtt_port}, default_owner="family"
            )
            async with running_daemon(config, state_dir=tmp_path / "cloud") as cloud:
                text_box = "homeassistant/text/toyd_cloud_cloud/activation_code/config"
                await wait_for(lambda: probe.on(text_box), timeout=10)
                discovery = json.loads(probe.on(text_box)[0])
                assert discovery["command_topic"] == "toyd/cloud/activation/claim"
                store = cloud.host.plugins["activation_server"].store
                first, second = await store.issue("toy-1", "c"), await store.issue("toy-2", "c")
                # malformed payloads: a clear error on the result topic, the cloud keeps going
                probe.publish("toyd/cloud/activation/claim", b"\xff\xfe")
                probe.publish("toyd/cloud/activation/claim", b'{"code": 12')
                probe.publish(
                    "toyd/cloud/activation/claim",
                    json.dumps({"code": first.code, "owner": "kim", "request_id": "r1"}),
                )
                probe.publish(
                    "toyd/cloud/activation/claim", second.code
                )  # what a Home Assistant text box sends
                results = await wait_for(
                    lambda: (
                        (r := probe.on("toyd/cloud/activation/result"))
                        and len(r) >= 4
                        and [json.loads(x) for x in r]
                    ),
                    timeout=10,
                )
                errors = [r for r in results if not r["ok"]]
                assert len(errors) == 2 and all(r["error"] for r in errors)
                by_request = {r.get("request_id"): r for r in results if r["ok"]}
                assert by_request["r1"]["device_id"] == "toy-1"
                assert by_request[None]["device_id"] == "toy-2"
                assert await store.activate(
                    "toy-2", second.challenge, challenge_hmac("", second.challenge)
                )
                assert [(t.device_id, t.owner) for t in await store.toys()] == [("toy-2", "family")]
                probe.publish("toyd/cloud/activation/revoke", json.dumps({"device_id": "toy-2"}))
                await wait_for(
                    lambda: any(
                        json.loads(r).get("action") == "revoke"
                        for r in probe.on("toyd/cloud/activation/result")
                    ),
                    timeout=10,
                )
                assert (await store.toys())[0].revoked_at is not None
        finally:
            probe.close()


async def test_the_real_xiaozhi_sdk_activates_against_toyd_cloud(tmp_path):
    pytest.importorskip("xiaozhi_sdk")
    from websockets.asyncio.client import connect
    from xiaozhi_sdk.ota import OtaDevice

    port, http_port = free_port(), free_port()
    async with running_daemon(cloud_config(port, http_port), state_dir=tmp_path / "cloud"):
        mac = "aa:bb:cc:00:11:22"
        device = OtaDevice(
            mac, "5f1c0a4e-0000-4000-8000-000000000001", f"http://127.0.0.1:{http_port}/toyd/ota/"
        )
        info = await device.activate_device()
        activation = info["activation"]
        token = info["websocket"]["token"]
        assert info["websocket"]["url"] == f"ws://127.0.0.1:{port}/"
        assert (
            await device.check_activate(activation["challenge"]) is False
        )  # 202: nobody claimed it yet
        headers = {"Authorization": f"Bearer {token}", "Device-Id": mac, "Protocol-Version": "1"}
        with pytest.raises(Exception, match="401"):  # the token is not live before the claim
            async with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers):
                pass
        db = str(tmp_path / "cloud" / "activation.sqlite")
        assert await asyncio.to_thread(claim, db, activation["code"], "lee") == 0
        assert await device.check_activate(activation["challenge"]) is True
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "version": 1,
                        "device_id": mac,
                        "transport": "websocket",
                        "audio_params": {
                            "format": "opus",
                            "sample_rate": 16000,
                            "channels": 1,
                            "frame_duration": 20,
                        },
                    }
                )
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert hello["type"] == "hello" and hello["session_id"]


class Doorman:
    """A credential plugin: one toy it knows, one device id that makes it fail."""

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("cloud",))

    @hookimpl
    async def toyd_authenticate(self, device_id, token):
        if device_id == "broken":
            raise RuntimeError("store unreachable")
        return True if (device_id, token) == ("toy-9", "door-token-9") else None


async def test_hook_toyd_authenticate(tmp_path):
    """The gateway accepts a plugin's credentials, keeps its own tokens, refuses when the hook fails."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    port = free_port()
    config = {
        "role": "cloud",
        "device_id": "cloud",
        "plugins": ["doorman", "gateway", "echochain"],
        "gateway": {"port": port, "tokens": {"toy-1": "static-token-1"}},
    }

    async def status(device_id: str, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "Device-Id": device_id}
        try:
            async with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    async with running_daemon(
        config, state_dir=tmp_path, extra_plugins={"doorman": Doorman}
    ) as cloud:
        assert await status("toy-9", "door-token-9") == 101
        assert await status("toy-1", "static-token-1") == 101
        assert await status("toy-9", "static-token-1") == 401
        assert await status("toy-1", "door-token-9") == 401
        assert await status("broken", "anything") == 401
        assert cloud.host.plugins["gateway"].gateway.sessions == {}


def test_a_toy_without_aiohttp_can_list_the_activation_server() -> None:
    """The SD image has no cloud dependencies; `toyd plugins` there must still load this plugin."""
    import subprocess
    import sys

    code = (
        "import sys, toyd_plugins.activation_server as a; a.ActivationServerPlugin();"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
