"""The config reference (docs/config.md) generated from the settings dataclasses themselves."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from .config import CoreSettings
from .registry import PluginInfo
from .schema import describe

INTRO = """# Config reference

toyd reads one YAML file per daemon: `/etc/toyd/toyd.yaml` for a toy (device role),
`/etc/toyd/cloud.yaml` for the companion cloud. Commented examples: `config/toyd.yaml`,
`config/cloud.yaml`. Validate any file without starting anything:

    toyd check-config /etc/toyd/toyd.yaml

Every error names the file, the line, the dotted key path, the bad value and a hint;
unknown keys are errors (a typo never silently does nothing), and so is a key given twice
at any depth (the error names both lines). The same validator checks config pushed over
MQTT (the source is then the topic; a JSON push with a key twice is refused too).

Secrets never need to be written into the file:

```yaml
cloudlink:
  token: {"$env": TOYD_TOKEN}          # from the environment (systemd: Environment= or EnvironmentFile=)
mqtt:
  password: {"$file": /etc/toyd/mqtt-password}   # from a file (relative paths: next to the config)
```

An error never shows a secret's value: not of a `$env`/`$file` value, nor of a key whose
name says it holds a credential (`token`, `password`, `api_key`, `secret`, `psk`, ...);
the message names the kind of value instead ("got a number, not shown").

`systemctl reload toyd` (SIGHUP) re-reads the file; an invalid file is rejected and
the running config stays. Settings a plugin cannot change live take effect after a
restart (the log says which).

This page is generated from the code: `toyd plugins --markdown > docs/config.md`.
"""


def render(infos: Iterable[PluginInfo]) -> str:
    """Markdown for the core settings and every plugin's section."""
    parts = [INTRO, "## Core settings (top level)\n", _table(CoreSettings)]
    for info in sorted(infos, key=lambda i: i.name):
        roles = ", ".join(info.declaration.roles)
        parts.append(f"## `{info.name}` ({roles})\n\n{info.declaration.summary or ''}\n")
        settings = info.declaration.settings
        parts.append(_table(settings, info.name) if settings else "No settings.\n")
    return "\n".join(parts).rstrip() + "\n"


def _table(cls: type, prefix: str = "") -> str:
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key, type_name, default, doc in _flatten(cls, prefix):
        rows.append(f"| `{key}` | {type_name} | {_default(default)} | {doc} |")
    return "\n".join(rows) + "\n"


def _flatten(cls: type, prefix: str) -> list[tuple[str, str, object, str]]:
    rows = []
    for key, type_name, default, doc in describe(cls):
        path = f"{prefix}.{key}" if prefix else key
        nested = default if dataclasses.is_dataclass(default) else None
        if nested is not None:
            rows.append((path, "section", "", doc))
            rows.extend(_flatten(type(nested), path))
        else:
            rows.append((path, type_name.replace("|", "or"), default, doc.replace("|", "/")))
    return rows


def _default(value: object) -> str:
    if value == "(required)":
        return "*required*"
    if isinstance(value, (tuple, list)) and not value:
        return "`[]`"
    if isinstance(value, Mapping) and not value:
        return "`{}`"
    return f"`{value!r}`".replace("|", "/")
