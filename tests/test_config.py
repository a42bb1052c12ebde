"""Config validation: every error names the file, the line, the key path, the value and a hint."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugins_for_tests import CounterPlugin
from toyd.config import load_file, parse_json, parse_yaml, validate
from toyd.errors import ConfigError
from toyd.registry import Registry
from toyd.schema import Secret, build, describe, setting

REGISTRY = Registry({"counter": CounterPlugin}, entry_points=False)


def load(tmp_path: Path, text: str):
    path = tmp_path / "toyd.yaml"
    path.write_text(text)
    return load_file(path, REGISTRY.schema, REGISTRY.names)


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value


def test_valid_file_gives_frozen_typed_config(tmp_path: Path) -> None:
    config = load(
        tmp_path, "role: cloud\ndevice_id: bear-1\nplugins: [counter]\ncounter:\n  step: 3\n"
    )
    assert config.core.role == "cloud" and config.core.device_id == "bear-1"
    assert config.section("counter").step == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.core.device_id = "x"  # type: ignore[misc]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, "role: device\nplugins:\n  - counter\n counter: [\n")
    assert err.line == 4 and "YAML syntax error" in err.message and str(tmp_path) in err.message


def test_unknown_key_typo_suggests_the_right_one(tmp_path: Path) -> None:
    err = error_of(tmp_path, "role: device\nplugins: [counter]\ncounter:\n  stpe: 2\n")
    assert (err.line, err.path) == (4, "counter.stpe")
    assert err.message.endswith("counter.stpe: unknown key; hint: did you mean 'step'?")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, "role: device\ndevice_idd: x\n")
    assert (err.line, err.path) == (2, "device_idd") and "did you mean 'device_id'" in err.hint


def test_wrong_type_names_value(tmp_path: Path) -> None:
    err = error_of(tmp_path, "role: device\nplugins: [counter]\ncounter:\n  step: lots\n")
    assert (err.line, err.path) == (4, "counter.step")
    assert "expected a whole number (got 'lots')" in err.message


def test_out_of_range(tmp_path: Path) -> None:
    err = error_of(tmp_path, "role: device\nplugins: [counter]\ncounter:\n  step: 11\n")
    assert "out of range: must be between 1 and 10 (got 11)" in err.message and err.line == 4


def test_unknown_plugin_lists_installed(tmp_path: Path) -> None:
    err = error_of(tmp_path, "role: device\nplugins:\n  - countr\n")
    assert (err.line, err.path) == (3, "plugins[0]")
    assert "unknown plugin 'countr'" in err.message and "did you mean 'counter'" in err.hint


def test_bad_literal_and_bool(tmp_path: Path) -> None:
    assert "one of 'device', 'cloud'" in error_of(tmp_path, "role: toy\n").hint
    err = error_of(tmp_path, "role: device\nlog_level: loud\n")
    assert err.path == "log_level" and err.line == 2


def test_cross_field_check(tmp_path: Path) -> None:
    err = error_of(tmp_path, "role: device\nplugins: [counter, counter]\n")
    assert "plugins lists a plugin twice" in err.message


def test_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass(frozen=True)
    class S:
        token: str = setting("", doc="t")
        password: str = setting("", doc="p")

    (tmp_path / "pw").write_text("hunter2\n")
    monkeypatch.setenv("TOYD_TEST_TOKEN", "abc")
    registry = Registry({"s": lambda: _plugin_with(S)}, entry_points=False)
    data = {
        "plugins": ["s"],
        "s": {"token": {"$env": "TOYD_TEST_TOKEN"}, "password": {"$file": "pw"}},
    }
    config = validate(data, registry.schema, base_dir=tmp_path, known_plugins=registry.names)
    assert config.section("s").token == "abc" and config.section("s").password == "hunter2"
    assert isinstance(config.section("s").token, Secret) and "abc" not in repr(config.section("s"))
    data["s"] = {"token": {"$env": "TOYD_NOT_SET_ANYWHERE"}}
    with pytest.raises(
        ConfigError, match="s.token: environment variable 'TOYD_NOT_SET_ANYWHERE' is not set"
    ):
        validate(data, registry.schema, known_plugins=registry.names)
    data["s"] = {"token": {"$file": "missing"}}
    with pytest.raises(ConfigError, match="cannot read secret file"):
        validate(data, registry.schema, base_dir=tmp_path, known_plugins=registry.names)


def _plugin_with(settings: type):
    from toyd import PluginDeclaration, hookimpl

    class P:
        @hookimpl
        def toyd_declare(self):
            return PluginDeclaration(roles=("device",), settings=settings)

    return P()


def test_validate_a_pushed_mapping_names_its_topic() -> None:
    with pytest.raises(ConfigError) as info:
        validate(
            {"plugins": ["counter"], "counter": {"step": "x"}},
            REGISTRY.schema,
            source="mqtt:toyd/bear/config",
            known_plugins=REGISTRY.names,
        )
    assert info.value.message.startswith(
        "mqtt:toyd/bear/config: counter.step: expected a whole number"
    )


@dataclasses.dataclass(frozen=True)
class Colour:
    rgb: tuple[int, int, int] = setting((0, 0, 0), doc="colour")


@dataclasses.dataclass(frozen=True)
class Nested:
    colours: dict[str, Colour] = setting(factory=dict, doc="per state")
    pins: tuple[int, ...] = setting((), doc="pins")
    name: str | None = setting(None, doc="optional")
    ratio: float = setting(1.0, min=0, max=1, doc="ratio")


def test_schema_types_nested_tuple_mapping_optional() -> None:
    S = Nested
    s = build(S, {"colours": {"idle": {"rgb": [1, 2, 3]}}, "pins": [1, 2], "ratio": 0})
    assert (
        s.colours["idle"].rgb == (1, 2, 3)
        and s.pins == (1, 2)
        and s.name is None
        and s.ratio == 0.0
    )
    with pytest.raises(ConfigError, match=r"colours.idle.rgb\[1\]: expected a whole number"):
        build(S, {"colours": {"idle": {"rgb": [1, "x", 3]}}})
    with pytest.raises(ConfigError, match="expected a list of 3 items"):
        build(S, {"colours": {"idle": {"rgb": [1]}}})
    with pytest.raises(ConfigError, match="expected true or false"):
        build(
            dataclasses.make_dataclass(
                "B", [("b", bool, dataclasses.field(default=False))], frozen=True
            ),
            {"b": "yes"},
        )
    assert [row[0] for row in describe(S)] == ["colours", "pins", "name", "ratio"]


def test_parse_yaml_records_lines() -> None:
    parsed = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - y\n", "f")
    assert parsed.line("a.b") == 2 and parsed.line("a.c[1]") == 5 and parsed.line("a.zzz") == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "statusfile:\n  path: a\nrole: device\nstatusfile:\n  path: b\n",
            "f.yaml:4: statusfile: duplicate key (lines 1 and 4)",
        ),
        (
            "cloudlink:\n  url: ws://a\n  connect_timeout: 5\n  url: ws://b\n",
            "f.yaml:4: cloudlink.url: duplicate key (lines 2 and 4)",
        ),
        (
            "led:\n  colours:\n    - {idle: 1, idle: 2}\n",
            "f.yaml:3: led.colours[0].idle: duplicate key (lines 3 and 3)",
        ),
    ],
)
def test_duplicate_keys_at_any_depth_name_file_lines_and_path(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_duplicate_keys_in_json_pushes_name_the_topic_and_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_json(
            '{"version": 2, "config": {"mqtt": {"max_volume": 10, "max_volume": 90}}}',
            "mqtt:toyd/t/config",
        )
    assert str(info.value).startswith("mqtt:toyd/t/config: config.mqtt.max_volume: duplicate key")
    with pytest.raises(ConfigError, match=r"^mqtt:x: version: duplicate key"):
        parse_json('{"version": 2, "version": 3}', "mqtt:x")
    assert parse_json('{"a": [{"b": 1}, {"b": 2}]}', "x") == {"a": [{"b": 1}, {"b": 2}]}


@pytest.mark.parametrize(
    "text",
    [
        "plugins: [cloudlink]\ncloudlink:\n  token: 8675309123456789\n",
        "plugins: [mqtt]\nmqtt:\n  password: [8675309, 123]\n",
        "plugins: [gateway]\ngateway:\n  tokens:\n    toy: 8675309123456789\n",
        'plugins: [mqtt]\nmqtt:\n  port: {"$env": TOYD_TEST_SECRET_PORT}\n',
    ],
)
def test_check_config_never_prints_a_secret_value(tmp_path: Path, text: str) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(text)
    env = {**os.environ, "TOYD_TEST_SECRET_PORT": "8675309123456789"}
    result = subprocess.run(
        [sys.executable, "-m", "toyd", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1 and "not shown: the key holds a secret" in result.stderr, (
        result.stderr
    )
    assert "8675309" not in result.stderr + result.stdout


def test_example_configs_are_valid(repo_root: Path) -> None:
    registry = Registry()
    for name in ("toyd.yaml", "cloud.yaml"):
        config = load_file(repo_root / "config" / name, registry.schema, registry.names)
        assert config.core.plugins


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("role: device\nplugins: [statusfile\n", "YAML syntax error"),
        (
            "role: device\nplugins: [statusfile]\nstatusfile:\n  pth: x\n",
            ":4: statusfile.pth: unknown key; hint: did you mean 'path'?",
        ),
        (
            "role: device\nshutdown_timeout: soon\n",
            ":2: shutdown_timeout: expected a number (got 'soon')",
        ),
        ("role: device\nplugins: [statusfil]\n", ":2: plugins[0]: unknown plugin 'statusfil'"),
        (
            "plugins: [statusfile]\nstatusfile: {}\nstatusfile:\n  path: x\n",
            ":3: statusfile: duplicate key (lines 2 and 3)",
        ),
    ],
)
def test_check_config_cli_one_clear_message_no_traceback(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "toyd", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_config_cli_accepts_examples(repo_root: Path) -> None:
    for name in ("toyd.yaml", "cloud.yaml"):
        result = subprocess.run(
            [sys.executable, "-m", "toyd", "check-config", str(repo_root / "config" / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert ": OK (" in result.stdout


def test_docs_config_md_is_generated_from_the_code(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "toyd", "plugins", "--markdown"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (repo_root / "docs" / "config.md").read_text() == result.stdout, (
        "run: toyd plugins --markdown > docs/config.md"
    )
