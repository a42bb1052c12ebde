"""Config: YAML file or pushed mapping → validated, frozen :class:`Config`.

One loader serves files on disk and config pushed over MQTT: :func:`load_file` parses
YAML keeping the line of every key, :func:`validate` checks a mapping from any source.
Each enabled plugin's section is validated against the dataclass the plugin declares.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .schema import Secret, Where, build, did_you_mean, setting

Role = Literal["device", "cloud"]
ROLES: tuple[str, ...] = ("device", "cloud")


@dataclasses.dataclass(frozen=True)
class CoreSettings:
    """The top-level keys every toyd config file has."""

    role: Role = setting("device", doc="Which plugin set runs: 'device' (the toy) or 'cloud'.")
    device_id: str = setting(
        "demo-toy", doc="Unique id of this toy; names MQTT topics and the cloud session."
    )
    state_dir: str = setting("/var/lib/toyd", doc="Where SQLite files and runtime state live.")
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", doc="Least severe log level printed."
    )
    plugins: tuple[str, ...] = setting(
        factory=tuple, doc="Plugins to enable, by entry-point name, in start order."
    )
    startup_timeout: float = setting(
        10.0, min=0.1, max=300, doc="Seconds one plugin may take to start before it is disabled."
    )
    turn_timeout: float = setting(
        20.0,
        min=1,
        max=600,
        doc="Seconds THINKING may last with no reply before the toy gives up and goes idle.",
    )
    outbox_max_items: int = setting(
        10000,
        min=10,
        max=10_000_000,
        doc="Parent events kept while undelivered; ordinary ones beyond this are dropped oldest "
        "first, safety alerts never.",
    )
    shutdown_timeout: float = setting(
        1.5, min=0.1, max=60, doc="Seconds the whole graceful shutdown may take."
    )

    def __post_init__(self) -> None:
        if not self.device_id.strip():
            raise ValueError("device_id must not be empty")
        if len(set(self.plugins)) != len(self.plugins):
            raise ValueError("plugins lists a plugin twice")


CORE_KEYS = frozenset(f.name for f in dataclasses.fields(CoreSettings))

# name -> settings dataclass (or None for a plugin without settings)
SchemaLookup = Callable[[str], "type | None"]


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated configuration: core settings plus one section per enabled plugin."""

    core: CoreSettings
    sections: Mapping[str, Any]
    source: str = "<config>"
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def section(self, plugin: str) -> Any:
        """The validated settings of ``plugin`` (None if it declares none)."""
        return self.sections.get(plugin)

    def replace_core(self, **changes: Any) -> Config:
        """A copy with some core settings overridden (CLI flags)."""
        return dataclasses.replace(self, core=dataclasses.replace(self.core, **changes))


@dataclasses.dataclass(frozen=True)
class ParsedYaml:
    """YAML data plus the line of each dotted key path."""

    data: Any
    lines: Mapping[str, int]

    def line(self, path: str) -> int | None:
        # an unknown leaf reports the line of its nearest known parent
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0] if "." in path else ""
        return None


# libyaml's parser when PyYAML was built with it: 25x faster on the example config (start-up)
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, source: str) -> ParsedYaml:
    """Parse YAML text, keeping the line of every mapping key."""
    try:
        loader = SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"YAML syntax error: {problem}",
            source=source,
            line=mark.line + 1 if mark else None,
            hint="check indentation and that every 'key: value' has a space after the colon",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", source=source) from None
    lines: dict[str, int] = {}
    if node is not None:
        _collect_lines(node, "", lines, source)
    return ParsedYaml(data, lines)


def _collect_lines(node: yaml.Node, path: str, lines: dict[str, int], source: str) -> None:
    """Record the line of every key; a key twice in one mapping is an error (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = f"{path}.{key_node.value}" if path else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.value in seen and key_node.tag != "tag:yaml.org,2002:merge":
                raise duplicate_key(key, source, seen[key_node.value], line)
            seen[key_node.value] = line
            lines[key] = line
            _collect_lines(value_node, key, lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{path}[{i}]"
            lines[key] = item.start_mark.line + 1
            _collect_lines(item, key, lines, source)


def duplicate_key(
    path: str, source: str, first: int | None = None, second: int | None = None
) -> ConfigError:
    """The error for a key given twice: the later one would silently win over the first."""
    where = f" (lines {first} and {second})" if first and second else ""
    return ConfigError(
        f"duplicate key{where}: only one would take effect",
        source=source,
        line=second,
        path=path,
        hint="keep one of them and merge what each sets",
    )


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object as parsed, keys in order, duplicates kept (to be checked)."""


def parse_json(text: str | bytes, source: str) -> Any:
    """Parse JSON (a config push); a duplicate key at any depth is a ConfigError naming its path.

    Malformed JSON raises :class:`ValueError` (or RecursionError when absurdly deep).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _unique(json.loads(text, object_pairs_hook=_Pairs), "", source)


def _unique(value: Any, path: str, source: str) -> Any:
    if isinstance(value, _Pairs):
        out: dict[str, Any] = {}
        for key, item in value:
            sub = f"{path}.{key}" if path else key
            if key in out:
                raise duplicate_key(sub, source)
            out[key] = _unique(item, sub, source)
        return out
    if isinstance(value, list):
        return [_unique(item, f"{path}[{i}]", source) for i, item in enumerate(value)]
    return value


def resolve_secrets(data: Any, where: Where, path: str = "", base_dir: Path | None = None) -> Any:
    """Replace ``{"$env": NAME}`` and ``{"$file": PATH}`` with their (secret) text.

    ``{"$env": NAME, "default": TEXT}`` falls back to TEXT when NAME is not set (dev
    defaults in example configs).
    """
    if isinstance(data, Mapping):
        keys = set(data)
        if (len(data) == 1 and keys & {"$env", "$file"}) or keys == {"$env", "default"}:
            return _secret(data, where, path, base_dir)
        return {
            k: resolve_secrets(v, where, f"{path}.{k}" if path else str(k), base_dir)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [resolve_secrets(v, where, f"{path}[{i}]", base_dir) for i, v in enumerate(data)]
    return data


def _secret(data: Mapping[str, Any], where: Where, path: str, base_dir: Path | None) -> Secret:
    if "$env" in data:
        name = data["$env"]
        if (
            isinstance(name, str)
            and name not in os.environ
            and isinstance(data.get("default"), str)
        ):
            return Secret(data["default"])
        if not isinstance(name, str) or name not in os.environ:
            raise where.error(
                path,
                f"environment variable {name!r} is not set",
                hint="export it, or set it in the systemd unit's Environment=",
            )
        return Secret(os.environ[name])
    name = data["$file"]
    if not isinstance(name, str):
        raise where.error(path, "$file needs a path", value=name)
    file = Path(name).expanduser()
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    try:
        return Secret(file.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise where.error(path, f"cannot read secret file {str(file)!r}: {exc.strerror}") from None


def validate(
    data: Any,
    schemas: SchemaLookup,
    *,
    source: str = "<config>",
    lines: Callable[[str], int | None] | None = None,
    base_dir: Path | None = None,
    known_plugins: Callable[[], list[str]] | None = None,
) -> Config:
    """Validate a mapping from any source (file, MQTT push) into a :class:`Config`.

    ``schemas(name)`` returns a plugin's settings dataclass or None, and raises
    :class:`KeyError` for a plugin that is not installed.
    """
    where = Where(source, lines or (lambda path: None))
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise where.error("", "the config must be a mapping of keys to values", value=data)
    data = resolve_secrets(data, where, base_dir=base_dir)
    core_data = {k: v for k, v in data.items() if k in CORE_KEYS}
    core = build(CoreSettings, core_data, where=where)
    installed = known_plugins() if known_plugins else []
    for i, name in enumerate(core.plugins):
        try:
            schemas(name)
        except KeyError:
            hint = _plugin_hint(name, installed)
            raise where.error(f"plugins[{i}]", f"unknown plugin {name!r}", hint=hint) from None
    sections: dict[str, Any] = {}
    for key in data:
        if key in CORE_KEYS:
            continue
        if key in core.plugins:
            continue
        if key not in installed:
            options = sorted(CORE_KEYS | set(installed))
            hint = (
                did_you_mean(key, options)
                or "a top-level key is a core setting or the name of an installed plugin"
            )
            raise where.error(str(key), "unknown key", hint=hint)
    for name in core.plugins:
        schema = schemas(name)
        if schema is None:
            if data.get(name):
                raise where.error(
                    name, f"plugin {name!r} takes no settings", hint="remove this section"
                )
            sections[name] = None
            continue
        sections[name] = build(schema, data.get(name), where=where, path=name)
    return Config(core=core, sections=sections, source=source, raw=data)


def _plugin_hint(name: str, installed: list[str]) -> str:
    hint = did_you_mean(name, installed)
    listing = ", ".join(sorted(installed)) or "none"
    return f"{hint + ' ' if hint else ''}installed plugins: {listing} (see `toyd plugins`)"


def load_file(
    path: str | Path, schemas: SchemaLookup, known_plugins: Callable[[], list[str]] | None = None
) -> Config:
    """Read, parse and validate a YAML config file."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found", source=source, hint="pass the config with -c FILE"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("file is not UTF-8 text", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=source) from None
    parsed = parse_yaml(text, source)
    return validate(
        parsed.data,
        schemas,
        source=source,
        lines=parsed.line,
        base_dir=file.parent,
        known_plugins=known_plugins,
    )
