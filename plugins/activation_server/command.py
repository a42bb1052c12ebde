"""``toyd cloud claim|revoke|toys``: a parent's claim or an operator's revocation, from the shell.

They open the same SQLite store as the running cloud (found through its config file), so
a claim made here is seen by the toy's next poll and a revocation ends its session within
seconds.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
from pathlib import Path

from toyd.errors import ToydError
from toyd.plugin import CliCommand

from .store import ActivationRefused, ActivationStore

DEFAULT_CONFIG = "/etc/toyd/cloud.yaml"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"the cloud's config file, to find its activation store (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--db", metavar="FILE", help="the activation store itself (overrides --config)"
    )


def open_store(args: argparse.Namespace) -> ActivationStore:
    """The store of the cloud configured in ``args.config`` (or ``args.db``)."""
    from toyd import statedir
    from toyd.config import load_file
    from toyd.registry import Registry

    from .settings import ActivationServerSettings, db_path

    if args.db:
        return ActivationStore(Path(args.db))
    registry = Registry()
    config = load_file(args.config, registry.schema, registry.names)
    if "activation_server" not in config.core.plugins:
        raise ToydError(f"{args.config}: the activation_server plugin is not enabled")
    settings: ActivationServerSettings = config.section("activation_server")
    path = db_path(settings, statedir.resolve(config.core.state_dir))
    if not path.exists():
        raise ToydError(
            f"{path}: no activation store yet; start `toyd cloud -c {args.config}` once"
        )
    return ActivationStore(path, settings.limits())


def _claim_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", metavar="CODE", help="the 6 digits the toy speaks and blinks")
    parser.add_argument(
        "--owner",
        default=getpass.getuser(),
        help="who the toy belongs to (default: your user name)",
    )
    _common(parser)


def run_claim(args: argparse.Namespace) -> int:
    try:
        device_id = open_store(args).claim(args.code.replace(" ", ""), args.owner, "cli")
    except ActivationRefused as exc:
        raise ToydError(str(exc)) from None
    print(
        f"claimed {device_id} for {args.owner}; "
        "the toy receives its token at its next poll (a few seconds)"
    )
    return 0


def _revoke_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device_id", metavar="DEVICE_ID")
    _common(parser)


def run_revoke(args: argparse.Namespace) -> int:
    if not open_store(args).revoke(args.device_id):
        raise ToydError(f"{args.device_id} has no live token")
    print(f"revoked {args.device_id}: its session ends now and it asks for a new code")
    return 0


def run_toys(args: argparse.Namespace) -> int:
    def when(stamp: float | None) -> str:
        return datetime.datetime.fromtimestamp(stamp).isoformat(" ", "seconds") if stamp else "-"

    rows = [("DEVICE", "OWNER", "ACTIVATED", "REVOKED")]
    rows += [
        (t.device_id, t.owner, when(t.activated_at), when(t.revoked_at))
        for t in open_store(args).toys()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def commands() -> list[CliCommand]:
    return [
        CliCommand(
            "claim",
            "claim a new toy by the code it speaks: it gets its own token",
            _claim_args,
            run_claim,
            description="Bind the toy that is speaking CODE to --owner. The toy then receives "
            "its own token and connects.\n\nexample: toyd cloud claim 417093 --owner kim",
            parent="cloud",
        ),
        CliCommand(
            "revoke",
            "revoke a toy's token: it disconnects and asks for a new code",
            _revoke_args,
            run_revoke,
            parent="cloud",
        ),
        CliCommand(
            "toys",
            "list activated toys, their owners, and revocations",
            _common,
            run_toys,
            parent="cloud",
        ),
    ]
