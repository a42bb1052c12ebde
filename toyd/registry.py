"""Finds installed plugins (entry-point group ``toyd``) and reads their declarations.

Built-in plugins (in the ``toyd`` distribution) and third-party packages load by the
same route. Importing a plugin must be cheap: heavy imports belong in ``toyd_startup``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .errors import PluginError
from .host import declare
from .plugin import PluginDeclaration

log = logging.getLogger(__name__)

GROUP = "toyd"
Factory = Callable[[], Any]


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """An installed plugin: where it comes from and what it declares."""

    name: str
    factory: Factory
    declaration: PluginDeclaration
    distribution: str
    version: str
    builtin: bool


class Registry:
    """Installed plugins by name; ``extra`` adds factories directly (tests, embedding)."""

    def __init__(
        self, extra: Mapping[str, Factory] | None = None, *, entry_points: bool = True
    ) -> None:
        self._entry_points: dict[str, md.EntryPoint] = {}
        if entry_points:
            for ep in md.entry_points(group=GROUP):
                self._entry_points.setdefault(ep.name, ep)
        self._extra = dict(extra or {})
        self._cache: dict[str, PluginInfo] = {}

    def names(self) -> list[str]:
        """Every installed plugin name."""
        return sorted(set(self._entry_points) | set(self._extra))

    def info(self, name: str) -> PluginInfo:
        """Load ``name`` (KeyError if not installed, PluginError if broken)."""
        if name in self._cache:
            return self._cache[name]
        if name in self._extra:
            factory, dist, version, builtin = self._extra[name], "(registered directly)", "", False
        elif name in self._entry_points:
            ep = self._entry_points[name]
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else ""
            builtin = dist == "toyd"
            try:
                factory = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error names the plugin
                raise PluginError(
                    name,
                    f"cannot be imported from {ep.value} ({dist}): {type(exc).__name__}: {exc}",
                ) from exc
        else:
            raise KeyError(name)
        try:
            plugin = factory()
        except Exception as exc:  # noqa: BLE001 - a broken constructor names the plugin
            raise PluginError(name, f"cannot be created: {type(exc).__name__}: {exc}") from exc
        declaration = declare(name, plugin)
        info = PluginInfo(name, factory, declaration, dist, version, builtin)
        self._cache[name] = info
        return info

    def schema(self, name: str) -> type | None:
        """The settings dataclass of ``name`` (KeyError if not installed)."""
        return self.info(name).declaration.settings

    def all_infos(self) -> tuple[list[PluginInfo], dict[str, PluginError]]:
        """Every installed plugin that loads, and the errors of those that do not."""
        infos, errors = [], {}
        for name in self.names():
            try:
                infos.append(self.info(name))
            except PluginError as exc:
                errors[name] = exc
        return infos, errors
