"""Meta-tests for hooks (docs and tests exist for each) and the lifecycle hooks themselves."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
from pathlib import Path

import pytest

from plugins_for_tests import CounterPlugin, Tick
from toyd import CliCommand, PluginDeclaration, hookdoc, hookimpl
from toyd.cli import build_parser
from toyd.config import validate
from toyd.daemon import Daemon
from toyd.errors import PluginError, ToydError
from toyd.events import ConfigApplied, ConfigRejected
from toyd.host import PluginHost, spec_modules
from toyd.registry import Registry
from toyd.testing import next_event, running_daemon

ROOT = Path(__file__).resolve().parents[1]


def all_hookspecs() -> dict[str, object]:
    return {name: func for module in spec_modules() for name, func in hookdoc.hookspecs(module)}


def test_every_hook_has_a_contract_and_an_example() -> None:
    for name, func in all_hookspecs().items():
        doc = inspect.getdoc(func) or ""
        assert "Contract:" in doc and "Example::" in doc, (
            f"{name} needs a docstring with Contract: and Example::"
        )


def test_every_hook_is_documented_in_docs_hooks_md() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    missing = [n for n in all_hookspecs() if f"### `{n}" not in text]
    assert not missing, f"docs/hooks.md lacks: {missing}"
    assert text == hookdoc.render(), (
        "docs/hooks.md is generated: run python -m toyd.hookdoc > docs/hooks.md"
    )


def test_every_hook_has_a_test() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    missing = [n for n in all_hookspecs() if f"def test_hook_{n}" not in source]
    assert not missing, f"write a test_hook_<name> test for: {missing}"


def test_hook_toyd_declare() -> None:
    class NoDeclare:
        pass

    class WrongDeclare:
        @hookimpl
        def toyd_declare(self):
            return {"roles": ["device"]}

    registry = Registry(
        {"counter": CounterPlugin, "none": NoDeclare, "wrong": WrongDeclare}, entry_points=False
    )
    info = registry.info("counter")
    assert (
        info.declaration.roles == ("device", "cloud")
        and info.declaration.settings.__name__ == "CounterSettings"
    )
    with pytest.raises(PluginError, match="plugin 'none': toyd_declare failed"):
        registry.info("none")
    with pytest.raises(PluginError, match="must return a PluginDeclaration"):
        registry.info("wrong")
    infos, errors = registry.all_infos()
    assert [i.name for i in infos] == ["counter"] and set(errors) == {"none", "wrong"}


def test_hook_toyd_cli_commands(capsys: pytest.CaptureFixture[str]) -> None:
    class Hello:
        @hookimpl
        def toyd_declare(self):
            return PluginDeclaration(roles=("device",))

        @hookimpl
        def toyd_cli_commands(self):
            def add(p: argparse.ArgumentParser) -> None:
                p.add_argument("name")

            return [
                CliCommand(
                    "hello",
                    "greet someone",
                    add_arguments=add,
                    run=lambda a: print(f"hi {a.name}") or 0,
                )
            ]

    class Clash(Hello):
        @hookimpl
        def toyd_cli_commands(self):
            return [CliCommand("plugins", "clash", add_arguments=lambda p: None, run=lambda a: 0)]

    parser, commands = build_parser(Registry({"hello": Hello}, entry_points=False))
    args = parser.parse_args(["hello", "bear"])
    assert commands["hello"].run(args) == 0 and capsys.readouterr().out == "hi bear\n"
    with pytest.raises(ToydError, match="two commands are named 'plugins'"):
        build_parser(Registry({"clash": Clash}, entry_points=False))


class Recorder:
    """Records the order of lifecycle calls across instances."""

    log: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device",))

    @hookimpl
    async def toyd_startup(self, app, settings):
        await asyncio.sleep(0)
        Recorder.log.append(f"start {self.name} {settings}")

    @hookimpl
    def toyd_shutdown(self, app):
        Recorder.log.append(f"stop {self.name}")


async def test_hook_toyd_startup(state_dir: Path) -> None:
    Recorder.log = []
    extra = {"a": lambda: Recorder("a"), "b": lambda: Recorder("b"), "counter": CounterPlugin}
    async with running_daemon(
        {"role": "device", "plugins": ["b", "a", "counter"], "counter": {"step": 4}},
        state_dir=state_dir,
        extra_plugins=extra,
        entry_points=False,
    ) as app:
        assert Recorder.log == ["start b None", "start a None"]  # config order, async awaited
        assert app.host.plugins["counter"].settings.step == 4  # its own validated section


async def test_hook_toyd_startup_failure_of_a_builtin_is_fatal(state_dir: Path) -> None:
    class Broken:
        @hookimpl
        def toyd_declare(self):
            return PluginDeclaration(roles=("device",))

        @hookimpl
        def toyd_startup(self, app, settings):
            raise OSError("no such device")

    registry = Registry({"broken": Broken}, entry_points=False)
    registry.info("broken")
    registry._cache["broken"] = dataclasses.replace(registry._cache["broken"], builtin=True)
    config = validate(
        {"plugins": ["broken"], "state_dir": str(state_dir)},
        registry.schema,
        known_plugins=registry.names,
    )
    daemon = Daemon(config, registry=registry)
    with pytest.raises(
        PluginError, match="plugin 'broken': failed to start: OSError: no such device"
    ):
        await daemon.start()
    await daemon.stop()


async def test_hook_toyd_services(state_dir: Path) -> None:
    async with running_daemon(
        {"role": "device", "plugins": ["counter"]},
        state_dir=state_dir,
        extra_plugins={"counter": CounterPlugin},
        entry_points=False,
    ) as app:
        sub = app.bus.subscribe("t", (Tick,))
        first, second = await next_event(sub, Tick), await next_event(sub, Tick)
        assert second.value > first.value and "counter:tick" in app.supervisor.task_names
        assert app.host.plugins["counter"].calls == ["startup", "services"]


async def test_hook_toyd_reconfigure(state_dir: Path, tmp_path: Path) -> None:
    registry = Registry({"counter": CounterPlugin, "a": lambda: Recorder("a")}, entry_points=False)
    path = tmp_path / "toyd.yaml"
    path.write_text(f"state_dir: {state_dir}\nplugins: [counter, a]\ncounter:\n  step: 1\n")
    from toyd.config import load_file

    daemon = Daemon(
        load_file(path, registry.schema, registry.names), registry=registry, config_path=str(path)
    )
    app = await daemon.start()
    try:
        sub = app.bus.subscribe("t", (ConfigApplied, ConfigRejected))
        path.write_text(f"state_dir: {state_dir}\nplugins: [counter, a]\ncounter:\n  step: 5\n")
        await daemon.reload()
        applied = await next_event(sub, ConfigApplied)
        assert applied.source == str(path)
        assert (
            app.host.plugins["counter"].settings.step == 5
            and "reconfigure" in app.host.plugins["counter"].calls
        )
        path.write_text(
            "plugins: [counter]\ncounter:\n  step: 99\n"
        )  # invalid: the running config stays
        await daemon.reload()
        rejected = await next_event(sub, ConfigRejected)
        assert (
            "counter.step: out of range" in rejected.error
            and app.host.plugins["counter"].settings.step == 5
        )
        new = validate(
            {"state_dir": str(state_dir), "plugins": ["counter"], "counter": {"step": 2}},
            registry.schema,
            known_plugins=registry.names,
        )
        assert await app.apply_config(new, version=7, source="mqtt:test") == [
            "plugins"
        ]  # plugin list: restart
        assert (await next_event(sub, ConfigApplied)).version == 7
    finally:
        await daemon.stop()


async def test_hook_toyd_shutdown(state_dir: Path) -> None:
    Recorder.log = []
    extra = {"a": lambda: Recorder("a"), "b": lambda: Recorder("b")}
    async with running_daemon(
        {"role": "device", "plugins": ["a", "b"]},
        state_dir=state_dir,
        extra_plugins=extra,
        entry_points=False,
    ):
        pass
    assert Recorder.log[-2:] == ["stop b", "stop a"]  # reverse start order


def test_a_misspelled_hook_names_its_plugin() -> None:
    class Typo:
        @hookimpl
        def toyd_declare(self):
            return PluginDeclaration(roles=("device",))

        @hookimpl
        def toyd_startpu(self, app, settings):  # the typo check_pending() catches at load
            pass

    host = PluginHost("device", Registry({"typo": Typo}, entry_points=False))
    with pytest.raises(
        PluginError, match=r"^plugin 'typo': implements an unknown hook: .*toyd_startpu"
    ):
        host.load(["typo"])


def test_a_hook_with_arguments_its_contract_lacks_is_refused_or_skipped() -> None:
    class WrongArgs:
        @hookimpl
        def toyd_declare(self):
            return PluginDeclaration(roles=("device",))

        @hookimpl
        def toyd_startup(self, app, config):  # the contract says ``settings``
            pass

    host = PluginHost(
        "device", Registry({"wrong": WrongArgs, "counter": CounterPlugin}, entry_points=False)
    )
    assert host.load(["wrong", "counter"]) == ["wrong"]  # third-party: skipped, the others load
    assert list(host.plugins) == ["counter"]


async def test_hooks_are_called_through_pluggy_one_plugin_at_a_time() -> None:
    class Declines:
        @hookimpl
        def toyd_declare(self):
            return PluginDeclaration(roles=("cloud",))

        @hookimpl
        async def toyd_check_text(self, turn, text, speaker):
            return None  # an async decline: the next plugin answers

    class Answers(Declines):
        @hookimpl
        def toyd_check_text(self, turn, text, speaker):
            return f"{speaker}: {text}"

    calls: list[str] = []
    host = PluginHost(
        "cloud", Registry({"answers": Answers, "declines": Declines}, entry_points=False)
    )
    host.load(["answers", "declines"])
    host.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: calls.append(f"{name}:{len(impls)}"),
        lambda outcome, name, impls, kwargs: None,
    )
    answer = await host.call_first("toyd_check_text", turn=None, text="hi", speaker="child")
    assert answer == "child: hi"
    assert calls == ["toyd_check_text:1", "toyd_check_text:1"]  # last loaded first, each alone
