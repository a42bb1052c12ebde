"""Quiet hours in the system's own zone (``tz: ""``) on both sides of a daylight-saving change."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from toyd.quiet_hours import QuietHours, in_quiet_hours, next_boundary, zone

NIGHT = QuietHours("20:00", "07:00", "")  # the system's zone, whatever it is today
EARLY = QuietHours("03:00", "04:00", "")


@pytest.fixture
def paris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone is Europe/Paris (CET, summer time from 2026-03-29 01:00 UTC)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("window", "when", "quiet"),
    [
        (NIGHT, "2026-01-10T18:59:00+00:00", False),  # 19:59 CET (UTC+1)
        (NIGHT, "2026-01-10T19:00:00+00:00", True),  # 20:00 CET
        (NIGHT, "2026-07-10T17:59:00+00:00", False),  # 19:59 CEST (UTC+2)
        (NIGHT, "2026-07-10T18:00:00+00:00", True),  # 20:00 CEST
        (EARLY, "2026-03-29T00:59:00+00:00", False),  # 01:59 CET, the last minute before the change
        (EARLY, "2026-03-29T01:00:00+00:00", True),  # 03:00 CEST, the first minute after it
        (EARLY, "2026-10-25T00:59:00+00:00", False),  # 02:59 CEST, before the change back
        (EARLY, "2026-10-25T02:00:00+00:00", True),  # 03:00 CET, after it
    ],
)
def test_system_zone_follows_daylight_saving(paris, window, when, quiet):
    """Each instant in its own season's offset, whatever the offset is as the test runs."""
    assert in_quiet_hours(window, at(when)) is quiet


def test_next_boundary_across_the_change(paris):
    # 00:30 CET on the night summer time begins: quiet hours end at 07:00 CEST = 05:00 UTC
    assert next_boundary(NIGHT, at("2026-03-28T23:30:00+00:00")) == at("2026-03-29T05:00:00+00:00")
    # 12:00 CEST the day before winter time: they begin at 20:00 CEST = 18:00 UTC; the
    # midnight after the change back (CET) is 23:00 UTC
    assert next_boundary(NIGHT, at("2026-10-24T10:00:00+00:00")) == at("2026-10-24T18:00:00+00:00")
    assert next_boundary(None, at("2026-10-25T12:00:00+00:00")) == at("2026-10-25T23:00:00+00:00")
    assert next_boundary(None, at("2026-03-29T12:00:00+00:00")) == at("2026-03-29T22:00:00+00:00")


def test_local_day_and_hour_in_the_system_zone(paris):
    local = at("2026-03-29T22:30:00+00:00").astimezone(zone(""))
    assert (local.date().isoformat(), local.hour, local.utcoffset()) == (
        "2026-03-30",
        0,
        dt.timedelta(hours=2),
    )
    winter = at("2026-01-10T23:30:00+00:00").astimezone(zone(""))
    assert (winter.date().isoformat(), winter.hour) == ("2026-01-11", 0)


def test_named_zone_is_unchanged():
    assert zone("Europe/Paris").utcoffset(dt.datetime(2026, 7, 1)) == dt.timedelta(hours=2)
    assert in_quiet_hours(
        QuietHours("20:00", "07:00", "America/New_York"), at("2026-03-09T00:30:00+00:00")
    )
