"""Config push: the cloud publishes per-toy YAML; the toy validates, applies, persists, reports."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from mqtt_support import Probe, command, device_config
from toyd.config import validate
from toyd.daemon import Daemon
from toyd.events import ConfigApplied, ConfigRejected, PersonaSet
from toyd.registry import Registry
from toyd.testing import free_port, next_event, running_daemon, wait_for

BASE = "toyd/toy1"
CONFIG_TOPIC = f"{BASE}/config"


def toy_config(port: int, **mqtt):
    return device_config(port, personas=["buddy", "storyteller"], persona="buddy", **mqtt)


def cloud_config(port: int, folder) -> dict:
    return {
        "role": "cloud",
        "device_id": "cloud",
        "plugins": ["configpush"],
        "configpush": {
            "port": port,
            "dir": str(folder),
            "poll_interval": 0.05,
            "reconnect_min": 0.05,
            "reconnect_max": 0.3,
        },
    }


def push(probe: Probe, version, config, *, raw: bytes | None = None) -> None:
    body = raw if raw is not None else json.dumps({"version": version, "config": config}).encode()
    probe.publish(CONFIG_TOPIC, body, retain=True)


@pytest.fixture
async def toy(mosquitto, state_dir):
    probe = Probe(mosquitto)
    async with running_daemon(toy_config(mosquitto), state_dir=state_dir) as app:
        await probe.next(f"{BASE}/status", lambda p: p == b"online")
        sub = app.bus.subscribe("test", (ConfigApplied, ConfigRejected, PersonaSet))
        yield app, probe, sub
    probe.close()


async def test_cloud_folder_to_toy_end_to_end(mosquitto, state_dir, tmp_path):
    folder = tmp_path / "toys"
    folder.mkdir()
    (folder / "toy1.yaml").write_text(
        textwrap.dedent("""\
        version: 1
        mqtt:
          persona: storyteller
          max_volume: 70
        parental:
          quiet_hours: {start: "20:00", end: "07:00", tz: Europe/Paris}
    """)
    )
    probe = Probe(mosquitto)
    async with (
        running_daemon(toy_config(mosquitto), state_dir=state_dir / "toy") as toy,
        running_daemon(cloud_config(mosquitto, folder), state_dir=state_dir / "cloud") as cloud,
    ):
        state = await probe.json(f"{BASE}/state", lambda d: d["config_version"] == 1, timeout=10)
        assert state["persona"] == "storyteller"
        assert state["quiet_hours"] == {"start": "20:00", "end": "07:00", "tz": "Europe/Paris"}
        assert toy.config.section("mqtt").max_volume == 70
        res = await command(probe, BASE, "volume", {"level": 75})
        assert not res["ok"] and "max_volume 70" in res["error"]
        # an edit with a higher version is re-published and applied
        (folder / "toy1.yaml").write_text("version: 2\nmqtt: {max_volume: 90}\n")
        await probe.json(f"{BASE}/state", lambda d: d["config_version"] == 2, timeout=10)
        assert toy.config.section("mqtt").max_volume == 90
        # a broken file is not published: the toy keeps version 2
        (folder / "toy1.yaml").write_text("version: 3\nmqtt: {max_volume: [\n")
        await wait_for(
            lambda: (
                cloud.host.plugins["configpush"]._seen.get("toy1")
                == (folder / "toy1.yaml").stat().st_mtime
            ),
            timeout=5,
        )
        assert json.loads(probe.on(CONFIG_TOPIC)[-1])["version"] == 2
        assert toy.config.section("mqtt").max_volume == 90
    probe.close()


async def test_cloud_refuses_a_file_without_a_version(tmp_path, caplog):
    from toyd import ConfigError
    from toyd_plugins.configpush.plugin import read_toy

    path = tmp_path / "toy9.yaml"
    path.write_text("mqtt: {}\nversion: two\n")
    with pytest.raises(ConfigError, match=r"toy9.yaml:2: version: expected a whole number"):
        read_toy(path)


async def test_invalid_push_is_rejected_and_named(toy):
    app, probe, sub = toy
    push(probe, 1, {"mqtt": {"max_volume": 60}})
    assert (await next_event(sub, ConfigApplied)).version == 1
    push(probe, 2, {"mqtt": {"max_volume": 500}})
    rejected = await next_event(sub, ConfigRejected)
    assert rejected.source == f"mqtt:{CONFIG_TOPIC}" and "config.mqtt.max_volume" in rejected.error
    error = await probe.json(f"{BASE}/event/error")  # through the durable outbox
    assert error["source"] == f"mqtt:{CONFIG_TOPIC}" and error["kind"] == "config_rejected"
    assert (
        "config.mqtt.max_volume" in error["error"]
        and "out of range" in error["error"]
        and error["uid"]
    )
    assert app.config.section("mqtt").max_volume == 60
    assert (await command(probe, BASE, "status"))["data"]["config_version"] == 1


@pytest.mark.parametrize(
    ("config", "path", "problem"),
    [
        ({"mqtt": {"host": "evil.example"}}, "config.mqtt.host", "cannot be pushed"),
        ({"mqtt": {"password": "x"}}, "config.mqtt.password", "cannot be pushed"),
        ({"device_id": "other"}, "config.device_id", "core settings cannot be pushed"),
        ({"plugins": []}, "config.plugins", "core settings"),
        ({"wakeword": {"threshold": 0.5}}, "config.wakeword", "not enabled"),
        ({"parental": {"sleep_line": {"$env": "HOME"}}}, "config.parental.sleep_line", "$env"),
        ({"mqtt": {"persona": "pirate"}}, "config.mqtt", "not in personas"),
        (
            {"parental": {"quiet_hours": {"start": "7pm", "end": "07:00"}}},
            "config.parental.quiet_hours",
            "HH:MM",
        ),
        ({"mqtt": {"max_volum": 3}}, "config.mqtt.max_volum", "cannot be pushed"),
        ({"mqtt": ["persona"]}, "config.mqtt", "expected a mapping"),
    ],
)
async def test_forbidden_or_invalid_keys_are_refused(toy, config, path, problem):
    app, probe, sub = toy
    push(probe, 5, config)
    rejected = await next_event(sub, ConfigRejected)
    assert path in rejected.error and problem in rejected.error, rejected.error
    assert app.config.section("mqtt").host == "127.0.0.1" and app.device_id == "toy1"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{nope", "malformed JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"config": {}}', "version: expected a whole number"),
        (b'{"version": 0, "config": {}}', "version: expected a whole number of at least 1"),
        (b'{"version": 1, "config": {}, "extra": 1}', "extra: unknown key"),
        (b'{"version": 1, "config": 3}', "config: expected a mapping"),
        (
            b'{"version": 1, "config": {"mqtt": {"max_volume": 10, "max_volume": 90}}}',
            "config.mqtt.max_volume: duplicate key",
        ),
    ],
)
async def test_malformed_pushes_are_refused(toy, raw, problem):
    app, probe, sub = toy
    push(probe, 0, None, raw=raw)
    rejected = await next_event(sub, ConfigRejected)
    assert problem in rejected.error and CONFIG_TOPIC in rejected.error, rejected.error


async def test_stale_and_equal_versions_are_ignored(toy):
    app, probe, sub = toy
    push(probe, 3, {"mqtt": {"max_volume": 50}})
    assert (await next_event(sub, ConfigApplied)).version == 3
    push(probe, 2, {"mqtt": {"max_volume": 10}})
    push(probe, 3, {"mqtt": {"max_volume": 20}})
    push(probe, 4, {"mqtt": {"max_volume": 40}})
    assert (
        await next_event(sub, ConfigApplied)
    ).version == 4  # 2 and 3 came first and changed nothing
    assert app.config.section("mqtt").max_volume == 40


async def test_applied_push_is_persisted_and_reapplied_without_a_broker(mosquitto, state_dir):
    probe = Probe(mosquitto)
    async with running_daemon(toy_config(mosquitto), state_dir=state_dir) as app:
        push(probe, 7, {"mqtt": {"max_volume": 33, "persona": "storyteller"}})
        await probe.json(f"{BASE}/state", lambda d: d["config_version"] == 7)
    probe.publish(CONFIG_TOPIC, b"", retain=True)
    probe.close()
    saved = json.loads((state_dir / "pushed-config.json").read_text())
    assert saved["version"] == 7
    async with running_daemon(toy_config(free_port()), state_dir=state_dir) as app:
        plugin = app.host.plugins["mqtt"]
        assert plugin.applied_version == 7 and app.config.section("mqtt").max_volume == 33
        assert (
            plugin.snapshot()["config_version"] == 7
            and plugin.snapshot()["persona"] == "storyteller"
        )


async def test_reload_keeps_the_pushed_overlay(mosquitto, state_dir, tmp_path):
    path = tmp_path / "toyd.yaml"
    data = {**toy_config(mosquitto), "state_dir": str(state_dir)}
    path.write_text(yaml.safe_dump(data))
    registry = Registry()
    cfg = validate(data, registry.schema, source=str(path), known_plugins=registry.names)
    daemon = Daemon(cfg, registry=registry, config_path=str(path), simulate=True)
    app = await daemon.start()
    probe = Probe(mosquitto)
    try:
        push(probe, 1, {"mqtt": {"max_volume": 44}})
        await probe.json(f"{BASE}/state", lambda d: d["config_version"] == 1)
        data["parental"]["sleep_line"] = "Shh, sleepy time."
        path.write_text(yaml.safe_dump(data))
        assert (await command(probe, BASE, "reload_config"))["ok"]
        await wait_for(
            lambda: (
                app.config.section("parental").sleep_line == "Shh, sleepy time."
                and app.config.section("mqtt").max_volume == 44
            )
        )
        path.write_text("role: device\nplugins: [mqtt]\nmqtt: {max_volume: loud}\n")
        res = await command(probe, BASE, "reload_config")
        assert not res["ok"] and "toyd.yaml:3" in res["error"] and "mqtt.max_volume" in res["error"]
        error = await probe.json(f"{BASE}/event/error")
        assert "toyd.yaml" in error["source"]
        assert app.config.section("mqtt").max_volume == 44
    finally:
        probe.close()
        await daemon.stop()
