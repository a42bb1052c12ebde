"""Quiet hours and the daily limit: the clock logic, and the scheduler driving the real state machine."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mqtt_support import device_config
from toyd import State
from toyd.quiet_hours import QuietHours, in_quiet_hours, next_boundary
from toyd.testing import free_port, running_daemon, wait_for
from toyd_plugins.mqtt.config_overlay import merge
from toyd_plugins.parental.controls import Controls
from toyd_plugins.parental.plugin import ParentalPlugin

UTC = dt.UTC
NIGHT = QuietHours("20:00", "07:00", "Europe/Paris")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def held_clock(now: list[dt.datetime]) -> dict:
    """The parental plugin reading ``now[0]`` from its creation on: its first check already
    uses the test's time, never the real clock."""
    return {"parental": lambda: ParentalPlugin(clock=lambda: now[0])}


@pytest.mark.parametrize(
    ("when", "quiet"),
    [
        ("2026-01-10T18:59:00+00:00", False),  # 19:59 in Paris (UTC+1)
        ("2026-01-10T19:00:00+00:00", True),  # 20:00
        ("2026-01-10T23:30:00+00:00", True),
        ("2026-01-11T05:59:00+00:00", True),  # 06:59
        ("2026-01-11T06:00:00+00:00", False),  # 07:00
        ("2026-07-10T18:00:00+00:00", True),  # summer time: 20:00 is 18:00 UTC
    ],
)
def test_window_spanning_midnight_in_the_parents_zone(when, quiet):
    assert in_quiet_hours(NIGHT, at(when)) is quiet


def test_same_day_window():
    nap = QuietHours("13:00", "14:30", "UTC")
    assert in_quiet_hours(nap, at("2026-01-10T13:00:00+00:00"))
    assert not in_quiet_hours(nap, at("2026-01-10T14:30:00+00:00"))


def test_next_boundary_is_the_nearest_change():
    now = at("2026-01-10T12:00:00+00:00")
    assert next_boundary(NIGHT, now) == at("2026-01-10T19:00:00+00:00")
    assert next_boundary(NIGHT, at("2026-01-10T19:00:00+00:00")) == at(
        "2026-01-10T23:00:00+00:00"
    )  # midnight Paris
    assert next_boundary(None, now, "UTC") == at("2026-01-11T00:00:00+00:00")


def test_usage_day_rolls_over_at_local_midnight():
    c = Controls(
        quiet_hours=NIGHT, usage_limit_minutes=10, usage_day="2026-01-10", usage_seconds=900
    )
    assert c.limit_reached()
    assert not c.roll_day(at("2026-01-10T22:59:00+00:00"))  # 23:59 in Paris
    assert (
        c.roll_day(at("2026-01-10T23:00:00+00:00"))
        and c.usage_seconds == 0
        and not c.limit_reached()
    )


def test_push_merge_is_a_deep_overlay():
    base = {
        "mqtt": {"host": "h", "quiet_hours": {"start": "20:00", "end": "07:00"}},
        "plugins": ["mqtt"],
    }
    out = merge(base, {"mqtt": {"quiet_hours": {"start": "19:00"}, "personas": ["a"]}})
    assert out == {
        "mqtt": {"host": "h", "quiet_hours": {"start": "19:00", "end": "07:00"}, "personas": ["a"]},
        "plugins": ["mqtt"],
    }
    assert base["mqtt"]["quiet_hours"]["start"] == "20:00"  # the file config is untouched


async def test_scheduler_follows_the_clock_and_respects_the_parent(state_dir):
    config = device_config(free_port(), quiet_hours={"start": "20:00", "end": "07:00", "tz": "UTC"})
    now = [at("2026-01-10T19:59:00+00:00")]
    async with running_daemon(config, state_dir=state_dir, extra_plugins=held_clock(now)) as app:
        parental = app.host.plugins["parental"].parental
        parental.evaluate()
        assert app.state is State.IDLE
        now[0] = at("2026-01-10T20:00:00+00:00")  # quiet hours begin
        parental.evaluate()
        await wait_for(lambda: app.state is State.SLEEPING)
        await wait_for(lambda: parental.controls.sleep_reason == "quiet_hours")
        now[0] = at(
            "2026-01-11T07:00:00+00:00"
        )  # and end: the scheduler wakes what it put to sleep
        parental.evaluate()
        await wait_for(lambda: app.state is State.IDLE)
        # a parent's own "sleep" is not undone by the clock
        from toyd import Trigger
        from toyd.events import StateRequest

        app.bus.publish(StateRequest(trigger=Trigger.SLEEP, cause="parent"))
        await wait_for(lambda: parental.controls.sleep_reason == "parent")
        now[0] = at("2026-01-11T20:00:00+00:00")
        parental.evaluate()
        now[0] = at("2026-01-12T07:00:00+00:00")
        parental.evaluate()
        assert app.state is State.SLEEPING


async def test_usage_limit_sleep_ends_the_next_day(state_dir):
    today = "2026-01-10"
    (state_dir / "mqtt-controls.json").write_text(
        json.dumps({"usage_day": today, "usage_seconds": 700, "usage_limit_minutes": 10})
    )
    now = [at("2026-01-10T12:00:00+00:00")]
    async with running_daemon(
        device_config(free_port(), usage_limit_minutes=10),
        state_dir=state_dir,
        extra_plugins=held_clock(now),
    ) as app:
        parental = app.host.plugins["parental"].parental
        parental.evaluate()
        await wait_for(lambda: app.state is State.SLEEPING)
        await wait_for(lambda: parental.controls.sleep_reason == "usage_limit")
        now[0] = at("2026-01-12T12:00:00+00:00")
        parental.evaluate()  # a new day: the limit no longer applies
        await wait_for(lambda: app.state is State.IDLE)
    saved = json.loads((state_dir / "parental.json").read_text())
    assert saved["usage_day"] != today and saved["usage_seconds"] == 0


async def test_parental_controls_work_without_mqtt(state_dir):
    """No broker, no mqtt plugin: the file's quiet hours still put the toy to sleep, by a clock the test holds."""
    config = {
        "role": "device",
        "plugins": ["parental"],
        "parental": {"quiet_hours": {"start": "20:00", "end": "07:00", "tz": "UTC"}},
    }
    now = [at("2026-01-10T20:30:00+00:00")]
    async with running_daemon(config, state_dir=state_dir, extra_plugins=held_clock(now)) as app:
        parental = app.host.plugins["parental"].parental
        parental.evaluate()
        await wait_for(lambda: app.state is State.SLEEPING)
        now[0] = at("2026-01-11T07:00:00+00:00")
        parental.evaluate()
        await wait_for(lambda: app.state is State.IDLE)
    assert json.loads((state_dir / "parental.json").read_text())["quiet_hours"]["start"] == "20:00"


async def test_controls_saved_by_an_older_version_in_the_mqtt_file_are_kept(state_dir):
    (state_dir / "mqtt-controls.json").write_text(
        json.dumps(
            {
                "usage_limit_minutes": 15,
                "quiet_hours": {"start": "21:00", "end": "06:00", "tz": "UTC"},
                "volume": 40,
            }
        )
    )
    async with running_daemon(
        {"role": "device", "plugins": ["parental"]}, state_dir=state_dir
    ) as app:
        controls = app.host.plugins["parental"].parental.controls
        assert controls.usage_limit_minutes == 15 and controls.quiet_hours == QuietHours(
            "21:00", "06:00", "UTC"
        )
