"""Config of the cloud link and the gateway: the example files, secrets with dev defaults, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from toyd.config import load_file
from toyd.errors import ConfigError
from toyd.registry import Registry

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path):  # type: ignore[no-untyped-def]
    registry = Registry()
    return load_file(path, registry.schema, registry.names)


def test_example_configs_enable_the_link_with_matching_dev_tokens(monkeypatch):
    monkeypatch.delenv("TOYD_CLOUD_TOKEN", raising=False)
    monkeypatch.delenv("TOYD_DEMO_TOY_TOKEN", raising=False)
    toy = load(ROOT / "config" / "toyd.yaml")
    cloud = load(ROOT / "config" / "cloud.yaml")
    link, gateway = toy.section("cloudlink"), cloud.section("gateway")
    assert link.url == f"ws://127.0.0.1:{gateway.port}"
    assert gateway.tokens[toy.core.device_id] == link.token == "dev-token-demo-toy"
    assert repr(link.token) == "'***'"  # a secret, never logged


def test_env_token_wins_over_the_dev_default(monkeypatch):
    monkeypatch.setenv("TOYD_CLOUD_TOKEN", "production-token")
    assert load(ROOT / "config" / "toyd.yaml").section("cloudlink").token == "production-token"


@pytest.mark.parametrize(
    "section, text, problem",
    [
        ("cloudlink", "url: http://cloud.example", "url must start with ws:// or wss://"),
        ("cloudlink", "reply_timeout: 0", "out of range"),
        (
            "cloudlink",
            "backoff_initial: 10\n  backoff_max: 1",
            "backoff_max must be at least backoff_initial",
        ),
        (
            "cloudlink",
            "token: {$env: TOYD_TEST_UNSET_VARIABLE}",
            "environment variable 'TOYD_TEST_UNSET_VARIABLE' is not set",
        ),
        ("gateway", "tokens: {toy-1: short}", "shorter than 8 characters"),
        ("gateway", "tls_key: /etc/key.pem", "tls_key is set but tls_cert is not"),
        ("gateway", "prot: 9000", "unknown key"),
    ],
)
def test_bad_values_are_named_with_file_and_line(tmp_path, section, text, problem):
    role = "device" if section == "cloudlink" else "cloud"
    file = tmp_path / "toyd.yaml"
    file.write_text(f"role: {role}\nplugins: [{section}]\n{section}:\n  {text}\n")
    with pytest.raises(ConfigError) as info:
        load(file)
    message = str(info.value)
    assert problem in message and str(file) in message and f"{section}" in message


def test_a_real_toy_refuses_the_publicly_known_token(tmp_path, monkeypatch):
    """`toyd device` (no --simulate) with the example config's default token stops with file and key."""
    import subprocess
    import sys

    import yaml

    monkeypatch.delenv("TOYD_CLOUD_TOKEN", raising=False)
    config = tmp_path / "toyd.yaml"
    data = yaml.safe_load((ROOT / "config" / "toyd.yaml").read_text())
    config.write_text(yaml.safe_dump({**data, "state_dir": str(tmp_path / "state")}))
    run = subprocess.run(
        [sys.executable, "-m", "toyd", "device", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode != 0
    assert (
        str(config) in run.stderr
        and "cloudlink.token" in run.stderr
        and "publicly known" in run.stderr
    ), run.stderr


async def test_the_known_token_is_allowed_only_when_simulating(state_dir, monkeypatch):
    from toyd.errors import PluginError
    from toyd.testing import running_daemon

    config = {
        "role": "device",
        "plugins": ["cloudlink"],
        "cloudlink": {"url": "ws://127.0.0.1:9", "token": "dev-token-demo-toy"},
    }
    async with running_daemon(config, state_dir=state_dir, simulate=True) as app:
        assert app.host.plugins["cloudlink"].settings.token == "dev-token-demo-toy"
    with pytest.raises(PluginError, match="cloudlink.token"):
        async with running_daemon(config, state_dir=state_dir, simulate=False):
            pass
    config["cloudlink"]["token"] = "this-toys-own-token"
    async with running_daemon(config, state_dir=state_dir, simulate=False) as app:
        assert app.host.plugins["cloudlink"].settings.token == "this-toys-own-token"
