"""Every parent command over a real Mosquitto, its result, and its effect on the toy."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mqtt_support import Probe, command, device_config
from toyd import State
from toyd.events import (
    ButtonPressed,
    PersonaSet,
    SayRequested,
    SpeechEnded,
    StateChanged,
    TurnFailed,
    VolumeSet,
)
from toyd.testing import next_event, running_daemon, wait_for
from toyd_plugins.parental.controls import Controls
from toyd_plugins.parental.plugin import ParentalPlugin

BASE = "toyd/toy1"
# the toy's wall clock, held by the tests: midday, far from any day boundary in any zone
NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def held_clock() -> dict:
    """The parental plugin with a clock the test holds (quiet hours, the usage day)."""
    return {"parental": lambda: ParentalPlugin(clock=lambda: NOW)}


@pytest.fixture
async def toy(mosquitto, state_dir):
    probe = Probe(mosquitto)
    config = device_config(
        mosquitto, personas=["buddy", "storyteller"], persona="buddy", max_volume=90
    )
    async with running_daemon(
        config, state_dir=state_dir, entry_points=True, extra_plugins=held_clock()
    ) as app:
        await probe.next(f"{BASE}/status", lambda p: p == b"online")
        sub = app.bus.subscribe("test", (VolumeSet, PersonaSet, SayRequested, StateChanged))
        yield app, probe, sub
    probe.close()


async def test_volume_sets_volume_and_state(toy):
    app, probe, sub = toy
    res = await command(probe, BASE, "volume", {"level": 42})
    assert res == {"ok": True, "error": None, "request_id": res["request_id"]}
    assert (await next_event(sub, VolumeSet)).level == 42
    state = await probe.json(f"{BASE}/state", lambda d: d["volume"] == 42)
    assert state["state"] == "idle"


async def test_volume_above_max_volume_is_refused(toy):
    app, probe, sub = toy
    res = await command(probe, BASE, "volume", {"level": 95})
    assert not res["ok"] and "max_volume 90" in res["error"] and "level" in res["error"]


async def test_mute_and_unmute(toy):
    app, probe, sub = toy
    assert (await command(probe, BASE, "mute", {"on": True}))["ok"]
    await wait_for(lambda: app.state is State.MUTED)
    await probe.json(f"{BASE}/state", lambda d: d["muted"] is True and d["state"] == "muted")
    assert (await command(probe, BASE, "mute", {"on": True}))["ok"]  # already muted: a no-op
    assert (await command(probe, BASE, "mute", {"on": False}))["ok"]
    await wait_for(lambda: app.state is State.IDLE)


async def test_sleep_and_wake(toy):
    app, probe, sub = toy
    assert (await command(probe, BASE, "sleep", {"on": True}))["ok"]
    await wait_for(lambda: app.state is State.SLEEPING)
    state = await probe.json(f"{BASE}/state", lambda d: d["sleeping"] is True)
    assert state["sleep_reason"] == "parent"
    assert (await command(probe, BASE, "wake"))["ok"]
    await wait_for(lambda: app.state is State.IDLE)
    assert (await command(probe, BASE, "sleep", {"on": False}))["ok"]  # already awake


async def test_button_while_sleeping_gets_the_sleep_line(toy):
    app, probe, sub = toy
    await command(probe, BASE, "sleep", {"on": True})
    await wait_for(lambda: app.state is State.SLEEPING)
    app.bus.publish(ButtonPressed())
    said = await next_event(sub, SayRequested)
    assert "sleep" in said.text.lower()
    assert app.state is State.SLEEPING


async def test_quiet_hours_now_puts_the_toy_to_sleep_and_off_wakes_it(toy):
    app, probe, sub = toy
    start, end = (
        (NOW - dt.timedelta(minutes=5)).strftime("%H:%M"),
        (NOW + dt.timedelta(minutes=60)).strftime("%H:%M"),
    )
    res = await command(probe, BASE, "quiet_hours", {"start": start, "end": end, "tz": "UTC"})
    assert res["ok"], res
    await wait_for(lambda: app.state is State.SLEEPING)
    state = await probe.json(f"{BASE}/state", lambda d: d["sleep_reason"] == "quiet_hours")
    assert state["quiet_hours"] == {"start": start, "end": end, "tz": "UTC"}
    assert (await command(probe, BASE, "quiet_hours", {"off": True}))["ok"]
    await wait_for(lambda: app.state is State.IDLE)


async def test_quiet_hours_bad_values_are_named(toy):
    app, probe, sub = toy
    res = await command(probe, BASE, "quiet_hours", {"start": "25:00", "end": "07:00"})
    assert not res["ok"] and "cmd/quiet_hours: start" in res["error"]
    res = await command(
        probe, BASE, "quiet_hours", {"start": "20:00", "end": "07:00", "tz": "Mars/Olympus"}
    )
    assert not res["ok"] and "tz" in res["error"] and "Mars/Olympus" in res["error"]
    res = await command(probe, BASE, "quiet_hours", {"off": True, "start": "20:00"})
    assert not res["ok"] and "start" in res["error"]
    assert app.state is State.IDLE


async def test_usage_limit_reached_sleeps_at_the_end_of_the_turn(mosquitto, state_dir):
    today = Controls().today(NOW)  # the usage day as the toy counts it, in its zone
    (state_dir / "parental.json").write_text(
        json.dumps({"usage_day": today, "usage_seconds": 59.8})
    )
    probe = Probe(mosquitto)
    async with running_daemon(
        device_config(mosquitto), state_dir=state_dir, extra_plugins=held_clock()
    ) as app:
        parental = app.host.plugins["parental"].parental
        await probe.next(
            f"{BASE}/status", lambda p: p == b"online"
        )  # subscribed: commands reach it
        res = await command(probe, BASE, "usage_limit", {"minutes": 1})
        assert res["ok"] and app.state is State.IDLE  # 59.8 s used: still under the limit
        app.bus.publish(ButtonPressed())
        await wait_for(lambda: app.state is State.LISTENING)
        app.bus.publish(SpeechEnded())
        await wait_for(lambda: app.state is State.THINKING)
        # the child keeps talking past the minute: the turn is not cut off...
        await wait_for(lambda: parental.usage_seconds() >= 60, timeout=3)
        assert app.state is State.THINKING
        # ...but when it ends, the toy sleeps instead of waiting for the next question
        app.bus.publish(TurnFailed(reason="test"))
        await wait_for(lambda: app.state is State.SLEEPING, timeout=5)
        state = await probe.json(f"{BASE}/state", lambda d: d["sleeping"])
        assert state["sleep_reason"] == "usage_limit" and state["usage_limit_minutes"] == 1
        assert state["usage_today_minutes"] >= 1.0
        # lifting the limit wakes the toy
        assert (await command(probe, BASE, "usage_limit", {"minutes": 0}))["ok"]
        await wait_for(lambda: app.state is State.IDLE)
    probe.close()


async def test_say_when_idle_speaks_at_once(toy):
    app, probe, sub = toy
    res = await command(probe, BASE, "say", {"text": "Dinner is ready!"})
    assert res["ok"] and res["data"] == {"queued": False}
    said = await next_event(sub, SayRequested)
    assert said.text == "Dinner is ready!" and said.request_id == res["request_id"]


async def test_say_mid_conversation_waits_for_idle(toy):
    app, probe, sub = toy
    app.bus.publish(ButtonPressed())
    await wait_for(lambda: app.state is State.LISTENING)
    res = await command(probe, BASE, "say", {"text": "Bath time"})
    assert res["ok"] and res["data"] == {"queued": True}
    assert not [e for e in _drain(sub) if isinstance(e, SayRequested)]
    app.bus.publish(SpeechEnded(reason="too_short"))  # back to IDLE
    said = await next_event(sub, SayRequested)
    assert said.text == "Bath time"


async def test_say_while_sleeping_is_refused(toy):
    app, probe, sub = toy
    await command(probe, BASE, "sleep", {"on": True})
    await wait_for(lambda: app.state is State.SLEEPING)
    res = await command(probe, BASE, "say", {"text": "hello"})
    assert not res["ok"] and "sleeping" in res["error"]


async def test_persona_valid_and_unknown(toy):
    app, probe, sub = toy
    assert (await command(probe, BASE, "persona", {"id": "storyteller"}))["ok"]
    assert (await next_event(sub, PersonaSet)).persona == "storyteller"
    await probe.json(f"{BASE}/state", lambda d: d["persona"] == "storyteller")
    res = await command(probe, BASE, "persona", {"id": "pirate"})
    assert not res["ok"] and "pirate" in res["error"] and "buddy" in res["error"]


async def test_status_returns_full_state(toy):
    app, probe, sub = toy
    res = await command(probe, BASE, "status")
    assert res["ok"]
    data = res["data"]
    for key in (
        "state",
        "offline",
        "cloud",
        "volume",
        "muted",
        "sleeping",
        "persona",
        "config_version",
        "quiet_hours",
        "usage_limit_minutes",
        "usage_today_minutes",
    ):
        assert key in data
    assert data["state"] == "idle" and data["persona"] == "buddy"


async def test_reload_config_without_a_file_says_so(toy):
    app, probe, sub = toy
    res = await command(probe, BASE, "reload_config")
    assert not res["ok"] and "config file" in res["error"]


def _drain(sub):
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out
