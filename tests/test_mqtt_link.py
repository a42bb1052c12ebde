"""The link to the broker: online/offline, last will, reconnect and resubscribe, coalescing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys

import yaml

from mqtt_support import Probe, command, device_config
from toyd import State
from toyd.events import ButtonPressed, VolumeSet
from toyd.testing import free_port, running_daemon, start_mosquitto, wait_for

BASE = "toyd/toy1"


async def test_online_retained_on_connect_and_offline_on_clean_stop(mosquitto, state_dir):
    async with running_daemon(device_config(mosquitto), state_dir=state_dir):
        late = Probe(mosquitto)  # subscribes after the fact: sees the retained messages
        await late.next(f"{BASE}/status", lambda p: p == b"online")
        state = await late.json(f"{BASE}/state")
        assert state["state"] == "idle" and state["config_version"] == 0
    await late.next(f"{BASE}/status", lambda p: p == b"offline")
    late.close()


async def test_sigkilled_device_goes_offline_by_last_will(mosquitto, tmp_path):
    config = tmp_path / "toyd.yaml"
    config.write_text(yaml.safe_dump(device_config(mosquitto, device_id="killme")))
    probe = Probe(mosquitto)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toyd",
            "device",
            "--simulate",
            "-c",
            str(config),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await probe.next("toyd/killme/status", lambda p: p == b"online", timeout=20)
        proc.kill()
        proc.wait(5)
        await probe.next("toyd/killme/status", lambda p: p == b"offline", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
        probe.close()
    retained = Probe(mosquitto)
    assert await retained.next("toyd/killme/status") == b"offline"  # retained for late subscribers
    retained.close()


async def test_device_id_flag_names_the_topics(mosquitto, tmp_path):
    config = tmp_path / "toyd.yaml"
    config.write_text(yaml.safe_dump(device_config(mosquitto, device_id="from-file")))
    probe = Probe(mosquitto)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toyd",
            "device",
            "--simulate",
            "-c",
            str(config),
            "--device-id",
            "from-flag",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await probe.next("toyd/from-flag/status", lambda p: p == b"online", timeout=20)
        res = await command(
            probe, "toyd/from-flag", "reload_config"
        )  # the reload keeps --device-id
        assert res["ok"], res
        assert (await command(probe, "toyd/from-flag", "status"))["ok"]
        assert not probe.on("toyd/from-file/status")
    finally:
        proc.terminate()
        proc.wait(10)
        probe.close()


async def test_broker_restart_reconnects_and_resubscribes(state_dir):
    with start_mosquitto() as (broker, port):
        async with running_daemon(device_config(port), state_dir=state_dir) as app:
            bridge = app.host.plugins["mqtt"].bridge
            probe = Probe(port)
            await probe.next(f"{BASE}/status", lambda p: p == b"online")
            assert (await command(probe, BASE, "volume", {"level": 10}))["ok"]
            probe.client.loop_stop()
            broker.kill()
            broker.wait()
            await wait_for(lambda: not bridge.connected, timeout=5)
            app.bus.publish(ButtonPressed())  # the toy keeps working without the broker
            await wait_for(lambda: app.state is State.LISTENING)
            with start_mosquitto(port):
                await wait_for(lambda: bridge.connected, timeout=10)
                probe2 = Probe(port)
                await probe2.next(f"{BASE}/status", lambda p: p == b"online")
                # subscriptions are back: a command after the restart is answered
                res = await command(probe2, BASE, "volume", {"level": 33})
                assert res["ok"]
                state = await probe2.json(f"{BASE}/state", lambda d: d["volume"] == 33)
                assert state["state"] == "listening"
                probe2.close()


async def test_no_broker_toy_works_and_logs_once(state_dir, caplog):
    port = free_port()
    caplog.set_level(logging.DEBUG, logger="toyd.mqtt.bridge")
    async with running_daemon(device_config(port), state_dir=state_dir) as app:
        bridge = app.host.plugins["mqtt"].bridge
        await wait_for(lambda: bridge._failures >= 4, timeout=10)
        app.bus.publish(ButtonPressed())
        await wait_for(lambda: app.state is State.LISTENING)
        warnings = [
            r
            for r in caplog.records
            if r.name == "toyd.mqtt.bridge" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 1 and "retrying in the background" in warnings[0].getMessage()
        with start_mosquitto(port):
            await wait_for(lambda: bridge.connected, timeout=10)
    assert any(
        "after" in r.getMessage() and "failed attempts" in r.getMessage() for r in caplog.records
    )


async def test_a_burst_of_changes_is_one_state_message(mosquitto, state_dir):
    probe = Probe(mosquitto)
    async with running_daemon(
        device_config(mosquitto, state_coalesce_ms=100), state_dir=state_dir
    ) as app:
        await probe.json(f"{BASE}/state")
        before = len(probe.on(f"{BASE}/state"))
        for level in range(20):
            app.bus.publish(VolumeSet(level=level))
        await probe.json(f"{BASE}/state", lambda d: d["volume"] == 19, after=before)
        assert len(probe.on(f"{BASE}/state")) - before == 1, probe.on(f"{BASE}/state")
        assert [json.loads(p)["volume"] for p in probe.on(f"{BASE}/state")[before:]] == [19]
    probe.close()


async def test_outbox_events_from_an_outage_arrive_exactly_once(state_dir):
    """Events recorded while the broker is down wait in the outbox and arrive after the restart."""
    from toyd.events import SafetyAlert, Transcript

    def seen(probe: Probe) -> dict[str, dict]:
        by_uid: dict[str, dict] = {}
        for topic, payload, _ in list(probe.messages):
            if topic.startswith(f"{BASE}/event/"):
                body = json.loads(payload)
                by_uid[body["uid"]] = body  # receivers dedup by uid
        return by_uid

    config = device_config(0, reconnect_min=1.5, reconnect_max=1.5)
    with start_mosquitto() as (broker, port):
        config["mqtt"]["port"] = port
        async with running_daemon(config, state_dir=state_dir) as app:
            bridge = app.host.plugins["mqtt"].bridge
            probe = Probe(port, subscribe=(f"{BASE}/event/#",))
            await wait_for(lambda: bridge.connected)
            app.bus.publish(Transcript(text="before", final=True))
            await wait_for(lambda: any(b.get("text") == "before" for b in seen(probe).values()))
            await _until_count(
                app, 0
            )  # its PUBACK is in too: only what follows waits for the broker
            probe.client.loop_stop()
            broker.kill()
            broker.wait()
            await wait_for(lambda: not bridge.connected, timeout=5)
            failures = bridge._failures
            for i in range(20):
                app.bus.publish(Transcript(text=f"down-{i}", final=True))
            app.bus.publish(SafetyAlert(category="test", severity="high", excerpt="x"))
            await _until_count(app, 21)  # recorded durably and kept: no PUBACK yet
            # restart right after a failed attempt: the toy's next try is 1.5 s away, the
            # parent's client subscribes first
            await wait_for(lambda: bridge._failures > failures, timeout=5)
            with start_mosquitto(port):
                probe2 = Probe(port, subscribe=(f"{BASE}/event/#",))
                await wait_for(lambda: bridge.connected, timeout=10)
                expected = {f"down-{i}" for i in range(20)}
                await wait_for(
                    lambda: expected <= {b.get("text") for b in seen(probe2).values()}, timeout=10
                )
                await wait_for(
                    lambda: any(b.get("category") == "test" for b in seen(probe2).values())
                )
                await wait_for(lambda: app.host.plugins["mqtt"].outbox.sent >= 22, timeout=5)
                await _until_count(app, 0)  # acknowledged after the PUBACKs
                texts = [b.get("text") for b in seen(probe2).values() if "text" in b]
                assert sorted(texts) == sorted(expected)  # exactly once after dedup by uid
                probe2.close()


async def _until_count(app, n: int, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while await app.outbox.count() != n:
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"outbox holds {await app.outbox.count()}, want {n}") from None
