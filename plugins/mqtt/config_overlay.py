"""The overlay a config push carries: parse it and check what it may change.

A push is a *partial overlay*: ``{"version": N, "config": {<section>: {<key>: value}}}``.
It is deep-merged onto the config file (:mod:`toyd.pushed_config`) and the result goes
through :func:`toyd.config.validate`, the same validator as the YAML file. A push may set
the sections of enabled plugins, but never a core key (role, device_id, plugins,
state_dir, ...) nor how the toy reaches the cloud or the broker (:data:`NOT_PUSHABLE`):
a push must never be able to cut the toy off, or hand it to someone else's server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from toyd import App, Config, ConfigError
from toyd.config import CORE_KEYS, parse_json, validate
from toyd.pushed_config import merge

from .settings import PUSHABLE_KEYS

MAX_DEPTH = 32  # far beyond any real config; bounds every recursive walk of a push

# Connection settings per section, never pushable (the mqtt section: everything but PUSHABLE_KEYS).
NOT_PUSHABLE: Mapping[str, frozenset[str]] = {
    "cloudlink": frozenset({"url", "token", "ca_file"}),
}
CONNECTION_HINT = 'connection settings are set in the toy\'s config file only (docs/mqtt.md, "What a push may change")'


@dataclasses.dataclass(frozen=True)
class Push:
    """A parsed push: its version and the overlay."""

    version: int
    overlay: dict[str, Any]


def parse(payload: bytes, source: str, max_bytes: int) -> Push:
    """Decode and shape-check a push; ConfigError names the topic and the key."""
    if len(payload) > max_bytes:
        raise ConfigError(
            f"config push too large ({len(payload)} bytes, limit {max_bytes})", source=source
        )
    try:
        data = parse_json(payload, source)  # a duplicate key is a ConfigError naming its path
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"malformed JSON: {exc}", source=source) from None
    if depth(data) > MAX_DEPTH:
        raise ConfigError(
            f"nested more than {MAX_DEPTH} levels deep",
            source=source,
            hint="a config push is a few levels of sections and keys",
        )
    if not isinstance(data, dict):
        raise ConfigError(
            'a config push must be a JSON object {"version": N, "config": {...}}', source=source
        )
    unknown = sorted(set(data) - {"version", "config"})
    if unknown:
        raise ConfigError(
            "unknown key", source=source, path=unknown[0], hint="a push has only version and config"
        )
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(
            "expected a whole number of at least 1",
            source=source,
            path="version",
            value=version,
            has_value=True,
        )
    overlay = data.get("config", {})
    if not isinstance(overlay, dict):
        raise ConfigError(
            "expected a mapping of plugin sections",
            source=source,
            path="config",
            value=overlay,
            has_value=True,
        )
    return Push(version, overlay)


def depth(data: Any) -> int:
    """How deeply ``data`` nests (iteratively: no input can exhaust the stack)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_allowed(overlay: Mapping[str, Any], enabled: tuple[str, ...], source: str) -> None:
    """Refuse keys a push may not set, naming the key path."""
    _no_secret_refs(overlay, "config", source)
    for key, value in overlay.items():
        if key in CORE_KEYS:
            raise ConfigError(
                "core settings cannot be pushed (they need a restart and could strand the toy)",
                source=source,
                path=f"config.{key}",
                hint="edit the toy's config file",
            )
        for sub in value if isinstance(value, Mapping) else ():
            if key == "mqtt" and sub not in PUSHABLE_KEYS:
                raise ConfigError(
                    "this key cannot be pushed: it decides how the toy reaches the broker",
                    source=source,
                    path=f"config.mqtt.{sub}",
                    hint="pushable: " + ", ".join(sorted(PUSHABLE_KEYS)),
                )
            if sub in NOT_PUSHABLE.get(key, ()):
                raise ConfigError(
                    "this key cannot be pushed: it decides how the toy reaches the cloud",
                    source=source,
                    path=f"config.{key}.{sub}",
                    hint=CONNECTION_HINT,
                )
        if key not in enabled:
            raise ConfigError(
                f"plugin {key!r} is not enabled on this toy",
                source=source,
                path=f"config.{key}",
                hint="enabled plugins: " + ", ".join(enabled),
            )


def _no_secret_refs(data: Any, path: str, source: str) -> None:
    # $env/$file would let whoever can push read the toy's environment and files
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in ("$env", "$file"):
                raise ConfigError(
                    f"{key} references are not allowed in a push", source=source, path=path
                )
            _no_secret_refs(value, f"{path}.{key}", source)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _no_secret_refs(value, f"{path}[{i}]", source)


def build(app: App, base: Mapping[str, Any], push: Push, source: str) -> Config:
    """Check and validate ``push`` over ``base`` with the file validator."""
    check_allowed(push.overlay, app.config.core.plugins, source)
    registry = app.host.registry
    # errors name the push's own key paths ("config.mqtt.max_volume"), not the merged ones
    try:
        return validate(
            merge(base, push.overlay), registry.schema, source=source, known_plugins=registry.names
        )
    except ConfigError as exc:
        if exc.path and exc.path.split(".")[0] in push.overlay:
            exc = ConfigError(
                exc.problem,
                source=source,
                path=f"config.{exc.path}",
                value=exc.value,
                has_value=exc.has_value,
                hint=exc.hint,
            )
        raise exc from None
