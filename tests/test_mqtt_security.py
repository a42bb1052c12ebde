"""The example ACL on a real Mosquitto, password secrets from the environment, and TLS."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

from mqtt_support import Probe, command, device_config
from toyd.testing import free_port, running_daemon, start_mosquitto, wait_for

ROOT = Path(__file__).resolve().parents[1]
ACL = ROOT / "config" / "mosquitto" / "toyd.acl"
USERS = {
    "demo-toy": "pw-demo",
    "bear-01": "pw-bear",
    "stranger-03": "pw-stranger",
    "parent-alice": "pw-alice",
    "cloud": "pw-cloud",
    "homeassistant": "pw-ha",
    "gateway": "pw-gateway",
}


@pytest.fixture
def acl_broker(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwd), user, password], check=True, capture_output=True
        )
    # mosquitto started as root drops to its own user, which cannot read pytest's tmp dirs
    conf = f"user root\nallow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\nset_tcp_nodelay true\n"
    with start_mosquitto(extra_conf=conf) as (_, port):
        yield port


def login(port: int, user: str, *topics: str) -> Probe:
    return Probe(port, subscribe=topics, username=user, password=USERS[user])


async def test_a_toy_cannot_touch_another_toys_topics(acl_broker):
    port = acl_broker
    alice = login(port, "parent-alice", "toyd/#")
    demo = login(port, "demo-toy", "toyd/bear-01/cmd/+", "toyd/demo-toy/cmd/+")
    # demo-toy forges bear-01's state and a result: the broker drops both
    demo.publish("toyd/bear-01/state", b'{"state": "hacked"}')
    demo.publish("toyd/bear-01/cmd/volume/result", b'{"ok": true}')
    demo.publish("toyd/demo-toy/state", b'{"state": "idle"}')  # its own: allowed
    await alice.next("toyd/demo-toy/state")
    assert not alice.on("toyd/bear-01/state") and not alice.on("toyd/bear-01/cmd/volume/result")
    # demo-toy cannot read bear-01's commands; the later command to itself arrives
    alice.publish("toyd/bear-01/cmd/volume", b'{"level": 1}')
    alice.publish("toyd/demo-toy/cmd/volume", b'{"level": 2}')
    await demo.next("toyd/demo-toy/cmd/volume")
    assert not demo.on("toyd/bear-01/cmd/volume")
    alice.close()
    demo.close()


async def test_a_parent_commands_only_their_childrens_toys(acl_broker):
    port = acl_broker
    alice = login(port, "parent-alice")
    stranger = login(port, "stranger-03", "toyd/stranger-03/cmd/+", "toyd/stranger-03/config")
    cloud = login(port, "cloud")
    alice.publish("toyd/stranger-03/cmd/sleep", b'{"on": true}')  # not her child's toy
    alice.publish("toyd/stranger-03/config", b'{"version": 99}')  # only the cloud may push
    cloud.publish("toyd/stranger-03/config", b'{"version": 1, "config": {}}')
    assert json.loads(await stranger.next("toyd/stranger-03/config"))["version"] == 1
    assert not stranger.on("toyd/stranger-03/cmd/sleep")
    # she cannot read a stranger's toy either: bear-01's later message arrives, the stranger's never
    snoop = login(port, "parent-alice", "toyd/stranger-03/#", "toyd/bear-01/state")
    stranger.publish("toyd/stranger-03/state", b"{}")  # PUBACK: the broker has routed it
    bear = login(port, "bear-01")
    bear.publish("toyd/bear-01/state", b"{}")
    await snoop.next("toyd/bear-01/state")
    assert not snoop.on("toyd/stranger-03/state")
    for p in (alice, stranger, cloud, snoop, bear):
        p.close()


async def test_real_toy_with_password_from_env_works_under_the_acl(
    acl_broker, state_dir, monkeypatch
):
    port = acl_broker
    monkeypatch.setenv("TOYD_TEST_MQTT_PASSWORD", USERS["demo-toy"])
    alice = login(port, "parent-alice", "toyd/demo-toy/#")
    ha = login(port, "homeassistant", "homeassistant/#")
    config = device_config(
        port,
        device_id="demo-toy",
        username="demo-toy",
        password={"$env": "TOYD_TEST_MQTT_PASSWORD"},
    )
    async with running_daemon(config, state_dir=state_dir):
        await alice.next("toyd/demo-toy/status", lambda p: p == b"online")
        res = await command(alice, "toyd/demo-toy", "volume", {"level": 30})
        assert res["ok"]
        await alice.json("toyd/demo-toy/state", lambda d: d["volume"] == 30)
        assert json.loads(await ha.next("homeassistant/device/toyd_demo-toy/config"))["dev"]["ids"]
    alice.close()
    ha.close()


async def test_wrong_password_keeps_the_toy_working_and_retrying(acl_broker, state_dir, caplog):
    caplog.set_level(logging.INFO, logger="toyd.mqtt.bridge")
    config = device_config(acl_broker, device_id="demo-toy", username="demo-toy", password="wrong")
    async with running_daemon(config, state_dir=state_dir) as app:
        bridge = app.host.plugins["mqtt"].bridge
        await wait_for(lambda: bridge._failures >= 2, timeout=10)
        assert not bridge.connected
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def certs(tmp_path) -> Path:
    d = tmp_path / "certs"
    d.mkdir()
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=toyd test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=d,
    )
    for name, cn in (("broker", "127.0.0.1"), ("toy", "demo-toy")):
        _openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        (d / f"{name}.ext").write_text(
            "subjectAltName=IP:127.0.0.1\n" if name == "broker" else "extendedKeyUsage=clientAuth\n"
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.crt",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    for key in d.glob("*.key"):
        key.chmod(0o644)  # mosquitto may run as another user
    return d


async def test_mutual_tls(certs, state_dir):
    tls_port = free_port()
    conf = (
        f"user root\nlistener {tls_port} 127.0.0.1\ncafile {certs / 'ca.crt'}\ncertfile {certs / 'broker.crt'}\n"
        f"keyfile {certs / 'broker.key'}\nrequire_certificate true\n"
    )
    with start_mosquitto(extra_conf=conf) as (_, port):
        probe = Probe(port)  # the plain listener, to watch
        tls = {
            "enabled": True,
            "ca": str(certs / "ca.crt"),
            "cert": str(certs / "toy.crt"),
            "key": str(certs / "toy.key"),
        }
        async with running_daemon(device_config(tls_port, tls=tls), state_dir=state_dir) as app:
            await probe.next("toyd/toy1/status", lambda p: p == b"online", timeout=10)
            assert (await command(probe, "toyd/toy1", "status"))["ok"]
        # without a client certificate the broker refuses; the toy retries quietly and works
        async with running_daemon(
            device_config(tls_port, tls={"enabled": True, "ca": str(certs / "ca.crt")}),
            state_dir=state_dir / "2",
        ) as app:
            bridge = app.host.plugins["mqtt"].bridge
            await wait_for(lambda: bridge._failures >= 1, timeout=10)
            assert not bridge.connected
        probe.close()


async def test_missing_certificate_file_is_a_clear_startup_error(state_dir):
    from toyd import ToydError

    tls = {"enabled": True, "ca": "/nonexistent/ca.crt"}
    with pytest.raises(ToydError, match="mqtt.tls: cannot load certificates"):
        async with running_daemon(device_config(free_port(), tls=tls), state_dir=state_dir):
            pass


async def test_the_gateway_relays_alerts_and_answers_volume_and_nothing_else(acl_broker):
    """User ``gateway`` speaks for xiaozhi clients (docs/protocol.md, "Parents of xiaozhi clients")."""
    alice = login(acl_broker, "parent-alice", "toyd/#")
    gateway = login(acl_broker, "gateway", "toyd/+/cmd/volume", "toyd/+/cmd/sleep")
    gateway.publish("toyd/demo-toy/state", b'{"state": "forged"}')  # not its to write
    gateway.publish("toyd/demo-toy/event/safety_alert", b'{"category": "grooming"}')
    await alice.next("toyd/demo-toy/event/safety_alert")
    alice.publish("toyd/demo-toy/cmd/sleep", b'{"on": true}')  # not its to read
    alice.publish("toyd/demo-toy/cmd/volume", b'{"level": 5}')
    await gateway.next("toyd/demo-toy/cmd/volume")
    gateway.publish("toyd/demo-toy/cmd/volume/result", b'{"ok": true}')
    await alice.next("toyd/demo-toy/cmd/volume/result")
    assert not alice.on("toyd/demo-toy/state") and not gateway.on("toyd/demo-toy/cmd/sleep")
    alice.close()
    gateway.close()
