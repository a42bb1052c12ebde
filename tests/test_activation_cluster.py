"""Two ``toyd cloud`` processes share activation through one real PostgreSQL.

A toy activated through gateway A is accepted by gateway B; a revocation made through B
ends the toy's session on A; two claims of one code from both sides have one winner; each
MQTT claim is handled once although both gateways take claims; a database outage is a
clear answer (503 / refusal), never a crash, and the gateways recover without a restart.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mqtt_support import Probe
from toyd.protocol.activation import challenge_hmac
from toyd.testing import free_port, start_mosquitto, wait_for
from toyd.testing.postgres import PrivatePostgres, postgres_bindir, start_postgres
from toyd_plugins.xiaozhi.wire import client_hello

pytestmark = pytest.mark.skipif(
    postgres_bindir() is None, reason="PostgreSQL is not installed (apt-get install postgresql)"
)
pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")


class Cloud:
    """One ``toyd cloud`` process: gateway + activation endpoint, activation in PostgreSQL."""

    def __init__(self, root: Path, name: str, db: str, mqtt_port: int) -> None:
        self.name, self.root = name, root
        self.ws_port, self.http_port = free_port(), free_port()
        self.config = root / f"{name}.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "role": "cloud",
                    "device_id": name,
                    "state_dir": str(root / name),
                    "plugins": ["activation_server", "gateway", "echochain"],
                    "gateway": {"port": self.ws_port, "tokens": {}},
                    "activation_server": {
                        "port": self.http_port,
                        "websocket_url": f"ws://127.0.0.1:{self.ws_port}/",
                        "db": db,
                        "mqtt_claims": True,
                        "mqtt": {"port": mqtt_port},
                        "requests_per_minute": 1000,
                        "polls_per_minute": 1000,
                        "burst": 100,
                    },
                }
            )
        )
        log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "toyd", "cloud", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"{self.name} exited; see {self.root}/{self.name}.log"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ws_port}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return (self.root / f"{self.name}.log").read_text(errors="replace")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[PrivatePostgres, Probe, Cloud, Cloud]]:
    with start_postgres() as server, start_mosquitto() as (_, mqtt_port):
        probe = Probe(mqtt_port, subscribe=("toyd/cloud/activation/result", "homeassistant/#"))
        clouds: list[Cloud] = []
        try:
            clouds = [Cloud(tmp_path, name, server.url, mqtt_port) for name in ("a", "b")]
            yield server, probe, clouds[0], clouds[1]
        finally:
            for cloud in clouds:
                cloud.stop()
            probe.close()


async def post(cloud: Cloud, path: str, body: dict, device_id: str) -> tuple[int, dict]:
    from toyd.httpclient import request

    async with await request(
        "POST",
        f"http://127.0.0.1:{cloud.http_port}/toyd/ota/{path}",
        body=json.dumps(body).encode(),
        headers={"Device-Id": device_id, "Content-Type": "application/json"},
    ) as r:
        raw = await r.read()
    return r.status, json.loads(raw) if raw else {}


async def new_code(cloud: Cloud, device_id: str) -> dict:
    status, reply = await post(cloud, "", {}, device_id)
    assert status == 200, reply
    return {**reply["activation"], "token": reply["websocket"]["token"]}


async def activate(cloud: Cloud, device_id: str, challenge: str) -> int:
    body = {"challenge": challenge, "hmac": challenge_hmac("", challenge)}
    return (await post(cloud, "activate", body, device_id))[0]


def connect(cloud: Cloud, device_id: str, token: str):  # type: ignore[no-untyped-def]
    from websockets.asyncio.client import connect as ws_connect

    headers = {"Authorization": f"Bearer {token}", "Device-Id": device_id, "Protocol-Version": "1"}
    return ws_connect(f"ws://127.0.0.1:{cloud.ws_port}/", additional_headers=headers)


async def session(cloud: Cloud, device_id: str, token: str):  # type: ignore[no-untyped-def]
    """An open session (hello answered) on ``cloud``."""
    ws = await connect(cloud, device_id, token)
    await ws.send(json.dumps({**client_hello(20), "device_id": device_id}))
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "hello"
    return ws


async def refused(cloud: Cloud, device_id: str, token: str) -> int:
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(cloud, device_id, token):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "toyd",
        "cloud",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_two_clouds_share_activation_through_postgresql(cluster) -> None:
    server, probe, a, b = cluster
    await wait_for(lambda: a.healthy() and b.healthy(), timeout=60, interval=0.2)
    # both gateways have subscribed to claims once their Home Assistant text box is announced
    await wait_for(
        lambda: all(
            probe.on(f"homeassistant/text/toyd_cloud_{n}/activation_code/config") for n in "ab"
        ),
        timeout=20,
    )

    # each MQTT claim is handled by one gateway: as many answers as claims, all of them ok
    codes = {f"toy-{n}": await new_code(a if n % 2 else b, f"toy-{n}") for n in range(6)}
    for n, (device_id, code) in enumerate(codes.items()):
        probe.publish(
            "toyd/cloud/activation/claim",
            json.dumps({"code": code["code"], "owner": "kim", "request_id": f"r{n}"}),
        )
    results = await wait_for(
        lambda: (r := probe.on("toyd/cloud/activation/result")) and len(r) >= 6 and r, timeout=20
    )
    answers = [json.loads(r) for r in results]
    assert all(r["ok"] for r in answers), answers
    assert sorted(r["device_id"] for r in answers) == sorted(codes)

    # the code came from A (toy-1) and is polled on B: the token is live on both gateways
    toy = codes["toy-1"]
    assert await activate(b, "toy-1", toy["challenge"]) == 200
    on_b = await session(b, "toy-1", toy["token"])
    await on_b.close()
    on_a = await session(a, "toy-1", toy["token"])

    # revoked through B's configuration: A ends the open session and refuses the token
    status, out = await cli("revoke", "toy-1", "-c", str(b.config))
    assert status == 0, out
    await asyncio.wait_for(on_a.wait_closed(), 15)
    assert await refused(a, "toy-1", toy["token"]) == 401

    # one code claimed at once through A's and B's configurations: exactly one winner
    for n in range(3):
        code = (await new_code(a, f"race-{n}"))["code"]
        outcomes = await asyncio.gather(
            cli("claim", code, "--owner", "kim", "-c", str(a.config)),
            cli("claim", code, "--owner", "lee", "-c", str(b.config)),
        )
        assert sorted(status for status, _ in outcomes) == [0, 1], outcomes
        assert any("no toy is waiting" in out for _, out in outcomes), outcomes

    # the database goes away: clear answers, no crash; back: served again without a restart
    toy = codes["toy-2"]
    assert await activate(a, "toy-2", toy["challenge"]) == 200
    server.stop("immediate")
    status, reply = await post(a, "", {}, "toy-9")
    assert status == 503 and "unavailable" in reply["error"], reply
    assert await refused(b, "toy-2", toy["token"]) == 401
    assert "toys refused meanwhile" in b.log() and "toyd_authenticate failed" not in b.log()
    status, out = await cli("claim", "123456", "-c", str(a.config))
    assert status == 1 and "unavailable" in out and "Traceback" not in out, out
    assert a.healthy() and b.healthy()
    server.start()
    await (await session(b, "toy-2", toy["token"])).close()
    assert "Traceback" not in a.log() + b.log()
