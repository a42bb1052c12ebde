"""Supervisor isolation: a raising or hanging plugin never takes down the daemon or the others."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from plugins_for_tests import (
    BlockingStartupPlugin,
    CloudOnlyPlugin,
    CounterPlugin,
    FailingShutdownPlugin,
    HangingStartupPlugin,
    RaisingPlugin,
    StubbornServicePlugin,
    Tick,
)
from toyd.bus import EventBus
from toyd.events import PluginFailed
from toyd.plugin import Service
from toyd.supervisor import Supervisor
from toyd.testing import next_event, running_daemon


async def test_raising_service_restarts_with_backoff_and_others_keep_running(
    state_dir: Path,
) -> None:
    RaisingPlugin.runs = 0
    extra = {"counter": CounterPlugin, "raiser": RaisingPlugin}
    async with running_daemon(
        {"role": "device", "plugins": ["raiser", "counter"]},
        state_dir=state_dir,
        extra_plugins=extra,
        entry_points=False,
    ) as app:
        app.supervisor.backoff_initial = 0.01
        sub = app.bus.subscribe("test", (PluginFailed, Tick))
        failure = await next_event(sub, PluginFailed)
        assert failure.plugin == "raiser" and "deliberate failure" in failure.error
        assert failure.restart_in is not None
        await next_event(sub, PluginFailed)  # restarted, failed again
        tick = await next_event(sub, Tick)  # the other plugin is unaffected
        assert tick.source == "counter"
        assert app.supervisor.restarts["raiser:boom"] >= 1
        assert "counter:tick" in app.supervisor.task_names


async def test_backoff_grows_exponentially_and_is_capped() -> None:
    bus = EventBus()
    sup = Supervisor(bus, backoff_initial=0.001, backoff_max=0.004)
    sub = bus.subscribe("t", (PluginFailed,))

    async def fail() -> None:
        raise ValueError("x")

    sup.start("p", Service("s", fail))
    delays = [(await next_event(sub, PluginFailed)).restart_in for _ in range(5)]
    assert delays == [0.001, 0.002, 0.004, 0.004, 0.004]
    assert await sup.stop(1.0) == []


async def test_service_that_returns_is_not_restarted() -> None:
    bus = EventBus()
    sup = Supervisor(bus)
    done = asyncio.Event()

    async def once() -> None:
        done.set()

    task = sup.start("p", Service("once", once))
    await asyncio.wait_for(task, 2)
    assert done.is_set() and sup.restarts["p:once"] == 0


async def test_third_party_plugin_that_hangs_at_startup_is_disabled(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = {"hanger": HangingStartupPlugin, "counter": CounterPlugin}
    config = {"role": "device", "plugins": ["hanger", "counter"], "startup_timeout": 0.2}
    async with running_daemon(
        config, state_dir=state_dir, extra_plugins=extra, entry_points=False
    ) as app:
        assert list(app.host.plugins) == ["counter"]
        sub = app.bus.subscribe("test", (Tick,))
        await next_event(sub, Tick)
    assert "'hanger' did not start within 0.2 s; disabled" in caplog.text


async def test_stubborn_service_and_hanging_shutdown_are_bounded(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = {
        "stubborn": StubbornServicePlugin,
        "bad_close": FailingShutdownPlugin,
        "counter": CounterPlugin,
    }
    config = {
        "role": "device",
        "plugins": ["counter", "stubborn", "bad_close"],
        "shutdown_timeout": 0.5,
    }
    started = time.monotonic()
    async with running_daemon(
        config, state_dir=state_dir, extra_plugins=extra, entry_points=False
    ) as app:
        counter = app.host.plugins["counter"]
        stubborn = app.host.plugins["stubborn"]
        await asyncio.wait_for(stubborn.running.wait(), 5)
        tasks = {t.get_name(): t for t in asyncio.all_tasks()}
    elapsed = time.monotonic() - started
    stubborn.release = True
    tasks["stubborn:stubborn"].cancel()
    assert elapsed < 5  # bounded; the exact figure is in bench/
    assert "abandoned: stubborn:stubborn" in caplog.text
    assert "plugin bad_close: toyd_shutdown failed: RuntimeError: cannot close" in caplog.text
    assert counter.calls[-1] == "shutdown"  # the others still shut down


async def test_third_party_plugin_of_the_wrong_role_is_skipped(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = {"cloudonly": CloudOnlyPlugin, "counter": CounterPlugin}
    async with running_daemon(
        {"role": "device", "plugins": ["cloudonly", "counter"]},
        state_dir=state_dir,
        extra_plugins=extra,
        entry_points=False,
    ) as app:
        assert list(app.host.plugins) == ["counter"]
    assert "plugin 'cloudonly': serves cloud, not the device role; skipped" in caplog.text


async def test_run_blocking_keeps_the_loop_responsive(state_dir: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    async with running_daemon(
        {"role": "device", "plugins": ["blocker"]},
        state_dir=state_dir,
        extra_plugins={"blocker": BlockingStartupPlugin},
        entry_points=False,
    ) as app:
        assert app.host.plugins["blocker"].result == "loaded"
    task.cancel()
    assert ticks >= 3
