"""What a plugin hands the host: its declaration, its services, its CLI commands."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Awaitable, Callable

from .markers import hookimpl

__all__ = ["CliCommand", "PluginDeclaration", "Service", "hookimpl"]


@dataclasses.dataclass(frozen=True)
class PluginDeclaration:
    """Which roles a plugin serves and the dataclass of its config section."""

    roles: tuple[str, ...]
    settings: type | None = None
    summary: str = ""


@dataclasses.dataclass(frozen=True)
class Service:
    """A long-running coroutine supervised by the host; ``run`` is called again on restart."""

    name: str
    run: Callable[[], Awaitable[None]]
    restart: bool = True


@dataclasses.dataclass(frozen=True)
class CliCommand:
    """A ``toyd`` sub-command contributed by a plugin."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | Awaitable[int]]
    description: str = ""
    parent: str = ""  # a role ("cloud", "device"): the command is ``toyd <parent> <name>``
