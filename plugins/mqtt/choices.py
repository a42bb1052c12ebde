"""A parent's remote choices (volume, persona) kept across restarts in the state directory."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from toyd.statedir import write_atomic

log = logging.getLogger(__name__)

CHOICES_FILE = "mqtt-controls.json"


@dataclasses.dataclass
class Choices:
    """The last volume and persona a parent chose (None/"" = never chose)."""

    volume: int | None = None
    persona: str = ""


def load(state_dir: Path) -> Choices | None:
    """The saved choices; None (logged when unreadable) without a usable file."""
    path = state_dir / CHOICES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        volume = data.get("volume")
        return Choices(
            volume=volume if isinstance(volume, int) else None,
            persona=str(data.get("persona") or ""),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def save(state_dir: Path, choices: Choices) -> None:
    """Write atomically: a power cut keeps the old or the new file."""
    write_atomic(state_dir / CHOICES_FILE, json.dumps(dataclasses.asdict(choices)))
