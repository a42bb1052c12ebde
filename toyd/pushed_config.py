"""A config overlay pushed by the cloud, kept in the state directory and put in force at every start.

A push is a partial overlay on the config file. Settings a plugin applies live take
effect at once; the rest (a new file path, a new model) take effect at the next start,
because the daemon merges the saved overlay over the file *before* any plugin starts.
``Config.raw`` stays the file's own mapping, so a later push is again merged onto the
file and not onto an older push.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import Config, validate
from .errors import ConfigError
from .statedir import write_atomic

log = logging.getLogger(__name__)

SAVED_FILE = "pushed-config.json"
LEGACY_FILE = "mqtt-pushed-config.json"  # its name while only the mqtt plugin knew about it


@dataclasses.dataclass(frozen=True)
class SavedPush:
    """The last good push: where it came from, its version and the overlay."""

    source: str
    version: int
    overlay: dict[str, Any]


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge: mappings merge key by key, anything else in the overlay replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def file_base(config: Config) -> dict[str, Any]:
    """The file config's raw mapping with the core settings actually in force (CLI overrides)."""
    base = dict(config.raw)
    for field in dataclasses.fields(config.core):
        value = getattr(config.core, field.name)
        base[field.name] = list(value) if isinstance(value, tuple) else value
    return base


def save(state_dir: Path, push: SavedPush) -> None:
    """Persist the last good push (atomic), to be put in force at the next start."""
    write_atomic(
        state_dir / SAVED_FILE,
        json.dumps({"source": push.source, "version": push.version, "config": push.overlay}),
    )


def load(state_dir: Path) -> SavedPush | None:
    """The saved push, or None (logged) when absent or unreadable."""
    for name in (SAVED_FILE, LEGACY_FILE):
        path = state_dir / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            source = data["source"] if "source" in data else f"mqtt:{data['topic']}"
            return SavedPush(str(source), int(data["version"]), dict(data["config"]))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return None
    return None


def apply_saved(
    config: Config, state_dir: Path, schemas: Any, known_plugins: Callable[[], Iterable[str]]
) -> Config:
    """``config`` with the saved push in force (the daemon calls this before plugins start).

    A saved push that no longer fits the file (a plugin was removed, a key renamed) is
    logged and left out: the toy starts on its file config.
    """
    saved = load(state_dir)
    if saved is None:
        return config
    try:
        merged = validate(
            merge(file_base(config), saved.overlay),
            schemas,
            source=saved.source,
            known_plugins=known_plugins,
        )
    except ConfigError as exc:
        log.warning(
            "the saved config push version %d no longer fits this toy's config and is ignored: %s",
            saved.version,
            exc,
        )
        return config
    log.info("config push version %d from %s is in force", saved.version, saved.source)
    return dataclasses.replace(merged, raw=config.raw, source=config.source)
