"""Behind a proxy: the real client address, the public URL, and the alert log every gateway shares."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from linkkit import RawToy, cloud, device_config, speech
from test_gateway_hooks import Recorder
from toyd.config import ConfigError
from toyd.store import open_store
from toyd.testing import running_daemon
from toyd.turn import SafetyVerdict


async def _refused_from(port: int, forwarded: str) -> None:
    headers = {
        "Authorization": "Bearer wrong-token-123",
        "Device-Id": "toy-1",
        "X-Forwarded-For": forwarded,
    }
    with pytest.raises(InvalidStatus):
        async with connect(
            f"ws://127.0.0.1:{port}", additional_headers=headers, proxy=None, open_timeout=5
        ):
            pass


async def test_behind_a_trusted_proxy_the_log_names_the_real_client(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="toyd_plugins.gateway")
    async with cloud(tmp_path, trusted_proxies=["127.0.0.0/8"]) as (app, port):
        await _refused_from(port, "203.0.113.7, 127.0.0.1")
    assert "refused connections: bad credentials (203.0.113.7)" in caplog.text


async def test_an_untrusted_peer_cannot_choose_its_address(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="toyd_plugins.gateway")
    async with cloud(tmp_path, trusted_proxies=["10.9.9.9"]) as (app, port):
        await _refused_from(port, "203.0.113.7")
    assert "refused connections: bad credentials (127.0.0.1)" in caplog.text
    assert "203.0.113.7" not in caplog.text


async def test_health_names_the_public_url(tmp_path) -> None:
    async with cloud(tmp_path, public_url="wss://toys.example.org/ws") as (app, port):

        def health() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                return json.load(answer)

        assert (await asyncio.to_thread(health))["public_url"] == "wss://toys.example.org/ws"


async def test_a_bad_trusted_proxy_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="trusted proxy 'not-an-ip'"):
        async with cloud(tmp_path, trusted_proxies=["not-an-ip"]):
            pass


async def test_safety_alerts_are_logged_for_every_gateway_to_read(tmp_path) -> None:
    def judge(turn, text, speaker):  # type: ignore[no-untyped-def]
        if speaker == "child":
            return SafetyVerdict(
                safe=False,
                action="redirect",
                category="violence",
                severity="high",
                text="[redacted]",
                replacement="Let's play a game instead!",
                alert=True,
            )
        return SafetyVerdict(safe=True, text=text)

    recorder = Recorder(check=judge)
    async with cloud(
        tmp_path,
        plugins=("gateway", "recorder"),
        extra_plugins={"recorder": lambda: recorder},
        alert_log="alerts.sqlite",
    ) as (app, port):
        toy = await RawToy(port).connect()
        await toy.talk(speech())
        await toy.expect("alert")
        await toy.response()
        log = open_store("alerts.sqlite", tmp_path / "cloud")
        await log.open()
        try:
            alerts = await wait_for_alerts(log)
        finally:
            await log.close()
        await toy.close()
    assert [(a.device_id, a.category, a.severity, a.excerpt) for a in alerts] == [
        ("toy-1", "violence", "high", "[redacted]")
    ]


async def wait_for_alerts(log, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    """The toy's logged alerts, once there are any (the log is written by a bus subscriber)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := await log.alerts("toy-1")) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return found


async def test_a_full_gateway_asks_toys_to_wait(tmp_path) -> None:
    async with cloud(
        tmp_path, max_sessions=1, tokens={"toy-1": "token-of-toy-1", "toy-2": "token-of-toy-2"}
    ) as (app, port):
        first = await RawToy(port).connect()
        with pytest.raises(InvalidStatus) as refused:
            await RawToy(port, device_id="toy-2", token="token-of-toy-2").connect()
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "5"
        await first.close()


async def test_a_proxy_without_a_gateway_for_now_is_retried_at_the_normal_pace(
    tmp_path, caplog
) -> None:
    """HAProxy answers 503 without Retry-After while it has no live gateway: not a refusal of the toy."""

    async def no_gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    caplog.set_level(logging.INFO, logger="toyd_plugins.cloudlink")
    proxy = await asyncio.start_server(no_gateway, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        async with running_daemon(
            device_config(port, backoff_initial=0.05, backoff_max=0.2), state_dir=tmp_path / "toy"
        ):
            deadline = asyncio.get_running_loop().time() + 5
            while (
                caplog.text.count("unavailable: HTTP 503") < 3
                and asyncio.get_running_loop().time() < deadline
            ):
                await asyncio.sleep(0.05)
    finally:
        proxy.close()
        await proxy.wait_closed()
    assert caplog.text.count("unavailable: HTTP 503") >= 3, (
        "retried within the normal backoff, not after 5 s"
    )
    assert "refused: HTTP 503" not in caplog.text
