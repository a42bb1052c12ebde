"""Quiet hours: a daily window in the parent's time zone, and when it next begins or ends.

Shared by the parental plugin (which puts the toy to sleep) and remote-control plugins
(which parse a parent's command into a :class:`QuietHours`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo

from .schema import setting

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def check_hhmm(value: str, key: str) -> None:
    """Raise ValueError unless ``value`` is a 24-hour ``HH:MM`` time."""
    if not _HHMM.match(value):
        raise ValueError(f"{key} must be a 24-hour time HH:MM, like 19:30 (got {value!r})")


def check_tz(value: str) -> None:
    """Raise ValueError unless ``value`` is an IANA time zone (empty = the system's)."""
    if not value:
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name like Europe/Paris"
        ) from None


@dataclasses.dataclass(frozen=True)
class QuietHours:
    """A daily window in which the toy sleeps (may span midnight)."""

    start: str = setting(doc="Start, HH:MM (24 h).")
    end: str = setting(doc="End, HH:MM (24 h); before start means the next morning.")
    tz: str = setting("", doc="IANA time zone, like Europe/Paris; empty = the system's.")

    def __post_init__(self) -> None:
        check_hhmm(self.start, "start")
        check_hhmm(self.end, "end")
        if self.start == self.end:
            raise ValueError("start and end must differ")
        check_tz(self.tz)


class SystemZone(dt.tzinfo):
    """The system's local zone, its offset taken at each moment asked about.

    ``datetime.now().astimezone().tzinfo`` is a fixed offset, today's: a window or a
    day boundary on the other side of a daylight-saving change would be an hour off.
    The C library's local time (``TZ``, ``/etc/localtime``) knows every change.
    """

    def _fixed(self, when: dt.datetime) -> dt.datetime:
        # a naive datetime's astimezone() reads it as local wall time, fold included
        return when.replace(tzinfo=None).astimezone()

    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta | None:
        return None if when is None else self._fixed(when).utcoffset()

    def dst(self, when: dt.datetime | None) -> dt.timedelta | None:
        return None  # not known from the C library without a second lookup; nothing needs it

    def tzname(self, when: dt.datetime | None) -> str | None:
        return None if when is None else self._fixed(when).tzname()

    def fromutc(self, when: dt.datetime) -> dt.datetime:
        local = dt.datetime.fromtimestamp(when.replace(tzinfo=dt.UTC).timestamp())
        return local.replace(tzinfo=self)

    def __repr__(self) -> str:
        return "SystemZone()"


SYSTEM_ZONE = SystemZone()


def zone(tz: str) -> dt.tzinfo:
    """The time zone named ``tz`` (empty = the system's local zone, daylight saving included)."""
    return zoneinfo.ZoneInfo(tz) if tz else SYSTEM_ZONE


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def in_quiet_hours(quiet: QuietHours, now: dt.datetime) -> bool:
    """True when ``now`` (any zone) is inside the daily window, which may span midnight."""
    local = now.astimezone(zone(quiet.tz))
    t, start, end = local.hour * 60 + local.minute, _minutes(quiet.start), _minutes(quiet.end)
    return start <= t < end if start < end else (t >= start or t < end)


def next_boundary(quiet: QuietHours | None, now: dt.datetime, tz: str = "") -> dt.datetime:
    """The next moment something may change: quiet start, quiet end or local midnight."""
    tzinfo = zone(quiet.tz if quiet else tz)
    local = now.astimezone(tzinfo)
    candidates = [dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo)]
    if quiet is not None:
        for hhmm in (quiet.start, quiet.end):
            h, m = map(int, hhmm.split(":"))
            at = local.replace(hour=h, minute=m, second=0, microsecond=0)
            if at <= local:
                at = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(h, m), tzinfo)
            candidates.append(at)
    return min(candidates)
