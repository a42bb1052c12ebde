"""The ``toyd`` command line: run a daemon, check a config, list plugins, plugin tools."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
import textwrap
from collections.abc import Sequence

from . import __version__, logs, runner
from .config import Config, load_file
from .errors import ToydError
from .host import cli_commands, hook_names
from .plugin import CliCommand
from .registry import Registry

log = logging.getLogger(__name__)

DEFAULT_CONFIG = {"device": "/etc/toyd/toyd.yaml", "cloud": "/etc/toyd/cloud.yaml"}
ROLE_COMMANDS = ("device", "cloud")
VALUED = (
    "-c",
    "--config",
    "--device-id",
    "--state-dir",
    "--log-level",
    "--disable",
)  # options taking a value
CORE_COMMANDS = ("device", "cloud", "check-config", "plugins")

EPILOG = textwrap.dedent(
    """\
    examples:
      toyd device --simulate -c config/toyd.yaml   run a toy with simulated button, LED and audio
      toyd cloud -c config/cloud.yaml              run the companion cloud
      toyd check-config config/toyd.yaml           validate a config file, start nothing
      toyd plugins                                 list installed plugins and their hooks

    Config reference: docs/config.md. Writing plugins: docs/hooks.md.
    """
)


def build_parser(
    registry: Registry, *, plugin_commands: bool = True
) -> tuple[argparse.ArgumentParser, dict[str, CliCommand]]:
    """The parser: core commands, plus every plugin's commands when ``plugin_commands``.

    Plugin commands mean importing every installed plugin, so :func:`main` asks for
    them only when the command line may name one (or lists them all, ``toyd --help``).
    """
    parser = argparse.ArgumentParser(
        prog="toyd",
        description="toyd: plugin-based firmware for AI voice toys, and the cloud that gives them a voice.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"toyd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    role_parsers: dict[str, argparse.ArgumentParser] = {}
    for role in ("device", "cloud"):
        p = sub.add_parser(
            role,
            help=f"run the {role} daemon (systemd: toyd{'' if role == 'device' else '-cloud'}.service)",
            description=f"Run the toyd {role} daemon until SIGTERM/SIGINT; SIGHUP reloads the config file.",
        )
        role_parsers[role] = p
        p.add_argument(
            "-c",
            "--config",
            default=DEFAULT_CONFIG[role],
            metavar="FILE",
            help=f"YAML config file (default: {DEFAULT_CONFIG[role]})",
        )
        if role == "device":
            p.add_argument(
                "--simulate",
                action="store_true",
                help="no real GPIO or sound card: gpiozero mock pins and file/pipe audio; everything else real",
            )
        p.add_argument("--device-id", metavar="ID", help="override device_id from the config")
        p.add_argument(
            "--state-dir", metavar="DIR", help="override state_dir (SQLite files, runtime state)"
        )
        p.add_argument(
            "--log-level", choices=("debug", "info", "warning", "error"), help="override log_level"
        )
        p.add_argument(
            "--disable",
            action="append",
            default=[],
            metavar="PLUGIN",
            help="do not load PLUGIN even if the config enables it (repeatable)",
        )
    p = sub.add_parser(
        "check-config",
        help="validate a config file without starting anything (exit 0 valid, 1 invalid)",
        description="Validate FILE exactly as the daemon would, including every enabled plugin's section.",
    )
    p.add_argument("file", metavar="FILE")
    p = sub.add_parser(
        "plugins",
        help="list installed plugins: name, version, role, hooks, enabled",
        description="List every installed plugin (entry-point group 'toyd').",
    )
    p.add_argument("-c", "--config", metavar="FILE", help="mark the plugins this config enables")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the config reference of core and every plugin (docs/config.md)",
    )
    commands: dict[str, CliCommand] = {}
    role_subs: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for command in _plugin_commands(registry) if plugin_commands else ():
        key = f"{command.parent} {command.name}" if command.parent else command.name
        if command.name in CORE_COMMANDS or key in commands:
            raise ToydError(f"two commands are named {key!r}")
        if command.parent:  # toyd cloud claim ...: a sub-command of a role
            if command.parent not in role_subs:
                role_subs[command.parent] = role_parsers[command.parent].add_subparsers(
                    dest="role_command", metavar="COMMAND", title=f"{command.parent} commands"
                )
            target = role_subs[command.parent]
        else:
            target = sub
        p = target.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(p)
        commands[key] = command
    return parser, commands


def _plugin_commands(registry: Registry) -> list[CliCommand]:
    out: list[CliCommand] = []
    infos, _ = registry.all_infos()
    for info in infos:
        out.extend(cli_commands(info.name, info.factory()))
    return out


def _wants_plugin_commands(argv: Sequence[str]) -> bool:
    """False when the command line is a core command or ``--version``: no plugin is imported then."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command is None:
        return "--version" not in argv  # bare `toyd` and `toyd --help` list every command
    if (
        command in ROLE_COMMANDS
    ):  # `toyd cloud claim ...`, `toyd cloud --help`: a role's own commands
        rest = argv[argv.index(command) + 1 :]
        words = [
            a
            for i, a in enumerate(rest)
            if not a.startswith("-") and (i == 0 or rest[i - 1] not in VALUED)
        ]
        return bool(words) or "-h" in rest or "--help" in rest
    return command not in CORE_COMMANDS


def load_config(path: str, registry: Registry) -> Config:
    return load_file(path, registry.schema, registry.names)


def cmd_daemon(args: argparse.Namespace, registry: Registry) -> int:
    from .daemon import Daemon

    config = load_config(args.config, registry)
    if config.core.role != args.command:
        role = config.core.role
        raise ToydError(
            f"{args.config}: this file is for the {role} role; run `toyd {role} -c {args.config}`"
        )
    overrides = {}
    if args.device_id:
        overrides["device_id"] = args.device_id
    if args.log_level:
        overrides["log_level"] = args.log_level
    if args.disable:
        overrides["plugins"] = tuple(p for p in config.core.plugins if p not in args.disable)
    config = config.replace_core(**overrides) if overrides else config
    logs.setup(config.core.log_level)
    daemon = Daemon(
        config,
        registry=registry,
        simulate=getattr(args, "simulate", False),
        state_dir=args.state_dir,
        config_path=args.config,
        overrides=tuple(overrides),
    )
    runner.run(daemon.run())
    return 0


def cmd_check_config(args: argparse.Namespace, registry: Registry) -> int:
    config = load_config(args.file, registry)
    plugins = ", ".join(config.core.plugins) or "none"
    print(
        f"{args.file}: OK ({config.core.role} role, device {config.core.device_id}, plugins: {plugins})"
    )
    return 0


def cmd_plugins(args: argparse.Namespace, registry: Registry) -> int:
    if args.markdown:
        from .configdoc import render

        infos, errors = registry.all_infos()
        print(render(infos), end="")
        return 1 if errors else 0
    enabled: set[str] = set()
    if args.config:
        enabled = set(load_config(args.config, registry).core.plugins)
    infos, errors = registry.all_infos()
    rows = [("NAME", "VERSION", "ROLES", "ENABLED", "HOOKS")]
    for info in infos:
        hooks = hook_names(info.name, info.factory())
        mark = ("yes" if info.name in enabled else "no") if args.config else "-"
        version = info.version + ("" if info.builtin else f" ({info.distribution})")
        rows.append(
            (
                info.name,
                version,
                ",".join(info.declaration.roles),
                mark,
                " ".join(h.removeprefix("toyd_") for h in hooks),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    for name, exc in errors.items():
        print(f"BROKEN {name}: {exc}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``toyd`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    registry = Registry()
    try:
        parser, commands = build_parser(registry, plugin_commands=_wants_plugin_commands(argv))
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        key = (
            f"{args.command} {args.role_command}"
            if getattr(args, "role_command", None)
            else args.command
        )
        if key in commands:
            result = commands[key].run(args)
            if inspect.isawaitable(result):
                result = asyncio.run(result)
            return int(result or 0)
        handler = {
            "device": cmd_daemon,
            "cloud": cmd_daemon,
            "check-config": cmd_check_config,
            "plugins": cmd_plugins,
        }
        return handler[args.command](args, registry)
    except ToydError as exc:
        print(f"toyd: error: {exc}", file=sys.stderr)
        log.debug("traceback", exc_info=exc)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
