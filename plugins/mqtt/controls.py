"""Parent controls kept across restarts: quiet hours, daily usage limit, usage counting.

Pure logic plus a JSON file in the state directory; the plugin's scheduler turns it into
``StateRequest(SLEEP/WAKE)`` events, so the state machine stays the only place that
decides transitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import zoneinfo
from pathlib import Path
from typing import Any

from .settings import QuietHours

log = logging.getLogger(__name__)


def zone(tz: str) -> dt.tzinfo:
    """The time zone named ``tz`` (empty = the system's local zone)."""
    return zoneinfo.ZoneInfo(tz) if tz else dt.datetime.now().astimezone().tzinfo  # type: ignore[return-value]


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


@dataclasses.dataclass
class Controls:
    """What the parent set, and today's usage; persisted as JSON."""

    quiet_hours: QuietHours | None = None
    usage_limit_minutes: int = 0
    usage_day: str = ""
    usage_seconds: float = 0.0
    volume: int | None = None
    persona: str = ""
    sleep_reason: str = ""  # why the toy sleeps: parent, quiet_hours, usage_limit ("" = awake)

    def today(self, now: dt.datetime) -> str:
        """Today's date in the parent's time zone (the usage day)."""
        return now.astimezone(zone(self.quiet_hours.tz if self.quiet_hours else "")).date().isoformat()

    def roll_day(self, now: dt.datetime) -> bool:
        """Start a new usage day if the date changed; True when it did."""
        day = self.today(now)
        if day == self.usage_day:
            return False
        self.usage_day, self.usage_seconds = day, 0.0
        return True

    def limit_reached(self, extra: float = 0.0) -> bool:
        """True when today's talking time is at or over the daily limit."""
        return bool(self.usage_limit_minutes) and self.usage_seconds + extra >= self.usage_limit_minutes * 60

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly snapshot for the state file."""
        data = dataclasses.asdict(self)
        data["quiet_hours"] = dataclasses.asdict(self.quiet_hours) if self.quiet_hours else None
        return data


def load(path: Path) -> Controls | None:
    """Read the saved controls; None (logged) when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        quiet = data.pop("quiet_hours", None)
        controls = Controls(**{k: v for k, v in data.items() if k in Controls.__dataclass_fields__})
        controls.quiet_hours = QuietHours(**quiet) if quiet else None
        return controls
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def save(path: Path, controls: Controls) -> None:
    """Write atomically (temp file, fsync, rename): a power cut keeps the old or the new file."""
    write_atomic(path, json.dumps(controls.to_json(), indent=1))


_write_lock = threading.Lock()


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader or a power cut never sees half a file.

    Writes run in executor threads; one may still be running when its task is cancelled
    (shutdown) and a final write starts: the lock keeps them in order, one at a time.
    """
    with _write_lock:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
