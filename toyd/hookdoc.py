"""The hook reference (docs/hooks.md) generated from the hookspec modules, so it cannot drift.

Run ``python -m toyd.hookdoc > docs/hooks.md`` after changing a hookspec; a test
checks that the file is current.
"""

from __future__ import annotations

import inspect
import textwrap
from types import ModuleType

from .host import spec_modules

INTRO = """# Writing toyd plugins: the hooks

A toyd plugin is a Python class whose methods are marked with `@hookimpl` (from
`toyd`, defined in `toyd/markers.py`). The host creates one instance per daemon, calls
its hooks, and the plugin talks to other plugins only through events on `app.bus`
(see `toyd/events.py`). Built-in plugins (in `plugins/`) and third-party packages are
found the same way: an entry point in the group `toyd`.

This page is generated from the hookspec docstrings: `python -m toyd.hookdoc > docs/hooks.md`.

## A complete plugin

```python
# my_toyd_purr/plugin.py
import dataclasses
import logging
from toyd import PluginDeclaration, Service, hookimpl, setting
from toyd.events import ButtonPressed

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class PurrSettings:
    times: int = setting(3, min=1, max=10, doc="How often to log a purr per press.")

class PurrPlugin:
    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device",), settings=PurrSettings, summary="Purrs on button presses")

    @hookimpl
    async def toyd_startup(self, app, settings):
        self.settings = settings
        self.presses = app.bus.subscribe("purr", (ButtonPressed,))

    @hookimpl
    def toyd_services(self, app):
        return [Service("purr", self.run)]

    async def run(self):
        async for _ in self.presses:
            for _ in range(self.settings.times):
                log.info("purr")
```

```toml
# pyproject.toml of the plugin package
[project.entry-points.toyd]
purr = "my_toyd_purr.plugin:PurrPlugin"
```

```yaml
# /etc/toyd/toyd.yaml
plugins: [button, purr]
purr:
  times: 2
```

`toyd plugins` lists it; `toyd check-config` validates its section; a typo in a key
is reported with file, line and a suggestion.

## Rules the host enforces

All of them live in one place, `toyd/host.py` (`PluginHost`):

- Hooks are called with keyword arguments, through pluggy, one plugin at a time; an
  implementation may take fewer arguments than the spec, never others. Any
  implementation may be `async def`.
- Each plugin's hook call has its own error handling and time limit: one plugin
  raising or hanging never silences the others. A built-in plugin that fails to start
  stops the daemon with a clear error; a third-party one is logged and disabled.
- A misspelled hook name (`toyd_starup`) fails at start-up (`check_pending`), naming
  the plugin.
- First-result hooks are asked last-loaded first; an implementation declines by
  returning (or resolving to) None and the next one is asked.
- Long-running work is a `Service`; the supervisor restarts it with exponential
  backoff when it raises and cancels it on shutdown. Re-raise `CancelledError`.
- Blocking work goes to `await app.run_blocking(fn, ...)`; gpiozero/PyAudio threads
  publish with `app.bus.publish_threadsafe(event)`.
- Test helpers ship with toyd: `toyd.testing` (`running_daemon`, `start_mosquitto`,
  `espeak_pcm`, `next_event`) and the pytest fixtures `mosquitto` and `state_dir`.
"""

TITLES = {
    "toyd.hookspecs": "Lifecycle hooks (both roles)",
    "toyd.device_hookspecs": "Device-role hooks",
    "toyd.cloud_hookspecs": "Cloud-role hooks (the AI chain)",
}


def hookspecs(module: ModuleType) -> list[tuple[str, object]]:
    """``(name, function)`` of every hookspec in ``module``, in source order."""
    found = [
        (n, f) for n, f in vars(module).items() if n.startswith("toyd_") and inspect.isfunction(f)
    ]
    return sorted(found, key=lambda item: item[1].__code__.co_firstlineno)  # type: ignore[attr-defined]


def render() -> str:
    """Markdown for every hook: signature, contract and example, grouped by module."""
    parts = [INTRO]
    for module in spec_modules():
        summary = (inspect.getdoc(module) or "").split("\n\n", 1)[0].replace("\n", " ")
        parts.append(
            f"\n## {TITLES.get(module.__name__, module.__name__)}\n\n`{module.__name__}`: {summary}\n"
        )
        for name, func in hookspecs(module):
            parts.append(_hook(name, func))
    return "".join(parts).rstrip() + "\n"


def _hook(name: str, func: object) -> str:
    params = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
        for p in inspect.signature(func, eval_str=False).parameters.values()
    )  # type: ignore[arg-type]
    returns = func.__annotations__.get("return")  # type: ignore[attr-defined]
    opts = getattr(func, "toyd_spec", {}) or {}
    first = " (first result)" if opts.get("firstresult") else ""
    head = f"### `{name}({params})" + (f" -> {returns}" if returns else "") + f"`{first}\n"
    doc = inspect.getdoc(func) or ""
    text, _, example = doc.partition("Example::")
    body = text.rstrip() + "\n"
    if example.strip():
        body += (
            "\nExample:\n\n```python\n" + textwrap.dedent(example.strip("\n")).rstrip() + "\n```\n"
        )
    return f"\n{head}\n{body}"


if __name__ == "__main__":
    print(render(), end="")
