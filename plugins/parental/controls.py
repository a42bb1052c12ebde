"""What a parent set (quiet hours, daily limit) and today's usage, kept across restarts.

Pure logic plus a JSON file in the state directory; the scheduler turns it into
``StateRequest(SLEEP/WAKE)`` events, so the state machine stays the only place that
decides transitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from toyd.quiet_hours import QuietHours, zone

log = logging.getLogger(__name__)

CONTROLS_FILE = "parental.json"
LEGACY_FILE = "mqtt-controls.json"  # where the mqtt plugin kept them before parental controls had their own plugin


@dataclasses.dataclass
class Controls:
    """What the parent set, and today's usage; persisted as JSON."""

    quiet_hours: QuietHours | None = None
    usage_limit_minutes: int = 0
    usage_day: str = ""
    usage_seconds: float = 0.0
    sleep_reason: str = ""  # why the toy sleeps: parent, quiet_hours, usage_limit ("" = awake)

    def today(self, now: dt.datetime) -> str:
        """Today's date in the parent's time zone (the usage day)."""
        return (
            now.astimezone(zone(self.quiet_hours.tz if self.quiet_hours else "")).date().isoformat()
        )

    def roll_day(self, now: dt.datetime) -> bool:
        """Start a new usage day if the date changed; True when it did."""
        day = self.today(now)
        if day == self.usage_day:
            return False
        self.usage_day, self.usage_seconds = day, 0.0
        return True

    def limit_reached(self, extra: float = 0.0) -> bool:
        """True when today's talking time is at or over the daily limit."""
        return (
            bool(self.usage_limit_minutes)
            and self.usage_seconds + extra >= self.usage_limit_minutes * 60
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly snapshot for the state file."""
        data = dataclasses.asdict(self)
        data["quiet_hours"] = dataclasses.asdict(self.quiet_hours) if self.quiet_hours else None
        return data


def load(state_dir: Path) -> Controls | None:
    """The saved controls (or those an older version kept in the mqtt file); None when absent."""
    for name in (CONTROLS_FILE, LEGACY_FILE):
        path = state_dir / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            quiet = data.pop("quiet_hours", None)
            controls = Controls(
                **{k: v for k, v in data.items() if k in Controls.__dataclass_fields__}
            )
            controls.quiet_hours = QuietHours(**quiet) if quiet else None
            return controls
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return None
    return None
