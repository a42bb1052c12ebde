"""Config pushed by the cloud on ``<prefix>/<id>/config``: parse, check, merge, persist.

A push is a *partial overlay*: ``{"version": N, "config": {<section>: {<key>: value}}}``.
It is deep-merged onto the config file (mappings merge key by key, any other value
replaces) and the result goes through :func:`toyd.config.validate`, the same validator
as the YAML file. A push may set the sections of enabled plugins, but no core key
(role, device_id, plugins, state_dir, ...) and, in the ``mqtt`` section, only
:data:`~.settings.PUSHABLE_KEYS`: a push must never be able to cut the toy off the broker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toyd import App, Config, ConfigError
from toyd.config import CORE_KEYS, parse_json, validate

from .controls import write_atomic
from .settings import PUSHABLE_KEYS

log = logging.getLogger(__name__)

SAVED_FILE = "mqtt-pushed-config.json"


@dataclasses.dataclass(frozen=True)
class Push:
    """A parsed push: its version and the overlay."""

    version: int
    overlay: dict[str, Any]


def parse(payload: bytes, source: str, max_bytes: int) -> Push:
    """Decode and shape-check a push; ConfigError names the topic and the key."""
    if len(payload) > max_bytes:
        raise ConfigError(f"config push too large ({len(payload)} bytes, limit {max_bytes})", source=source)
    try:
        data = parse_json(payload, source)  # a duplicate key is a ConfigError naming its path
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"malformed JSON: {exc}", source=source) from None
    if not isinstance(data, dict):
        raise ConfigError('a config push must be a JSON object {"version": N, "config": {...}}', source=source)
    unknown = sorted(set(data) - {"version", "config"})
    if unknown:
        raise ConfigError("unknown key", source=source, path=unknown[0], hint="a push has only version and config")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError("expected a whole number of at least 1", source=source, path="version",
                          value=version, has_value=True)
    overlay = data.get("config", {})
    if not isinstance(overlay, dict):
        raise ConfigError("expected a mapping of plugin sections", source=source, path="config",
                          value=overlay, has_value=True)
    return Push(version, overlay)


def check_allowed(overlay: Mapping[str, Any], enabled: tuple[str, ...], source: str) -> None:
    """Refuse keys a push may not set, naming the key path."""
    _no_secret_refs(overlay, "config", source)
    for key, value in overlay.items():
        if key in CORE_KEYS:
            raise ConfigError("core settings cannot be pushed (they need a restart and could strand the toy)",
                              source=source, path=f"config.{key}", hint="edit the toy's config file")
        if key not in enabled:
            raise ConfigError(f"plugin {key!r} is not enabled on this toy", source=source, path=f"config.{key}",
                              hint="enabled plugins: " + ", ".join(enabled))
        if key == "mqtt" and isinstance(value, Mapping):
            for sub in value:
                if sub not in PUSHABLE_KEYS:
                    raise ConfigError("this key cannot be pushed: it decides how the toy reaches the broker",
                                      source=source, path=f"config.mqtt.{sub}",
                                      hint="pushable: " + ", ".join(sorted(PUSHABLE_KEYS)))


def _no_secret_refs(data: Any, path: str, source: str) -> None:
    # $env/$file would let whoever can push read the toy's environment and files
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in ("$env", "$file"):
                raise ConfigError(f"{key} references are not allowed in a push", source=source, path=path)
            _no_secret_refs(value, f"{path}.{key}", source)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _no_secret_refs(value, f"{path}[{i}]", source)


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


def build(app: App, base: Mapping[str, Any], push: Push, source: str) -> Config:
    """Check and validate ``push`` over ``base`` with the file validator."""
    check_allowed(push.overlay, app.config.core.plugins, source)
    registry = app.host.registry
    # errors name the push's own key paths ("config.mqtt.max_volume"), not the merged ones
    try:
        return validate(merge(base, push.overlay), registry.schema, source=source, known_plugins=registry.names)
    except ConfigError as exc:
        if exc.path and exc.path.split(".")[0] in push.overlay:
            exc = ConfigError(exc.problem, source=source, path=f"config.{exc.path}", value=exc.value,
                              has_value=exc.has_value, hint=exc.hint)
        raise exc from None


def save(state_dir: Path, topic: str, push: Push) -> None:
    """Persist the last good push (atomic) so it is re-applied at the next start."""
    write_atomic(state_dir / SAVED_FILE, json.dumps({"topic": topic, "version": push.version, "config": push.overlay}))


def load(state_dir: Path) -> tuple[str, Push] | None:
    """The saved push, or None (logged) when absent or unreadable."""
    path = state_dir / SAVED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["topic"]), Push(int(data["version"]), dict(data["config"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
