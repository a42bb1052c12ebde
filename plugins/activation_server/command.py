"""``toyd cloud claim|revoke|toys``: a parent's claim or an operator's revocation, from the shell.

They open the same store as the running cloud (found through its config file: a SQLite
file or the PostgreSQL server every gateway shares), so a claim made here is seen by the
toy's next poll and a revocation ends its session within seconds, on whichever gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from toyd.errors import ToydError
from toyd.plugin import CliCommand
from toyd.store import is_postgres, sqlite_path

from .store import ActivationRefused, ActivationStore

T = TypeVar("T")

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
        "--db",
        metavar="FILE|URL",
        help="the activation store itself: a SQLite file or a postgresql:// URL "
        "(overrides --config)",
    )


def open_store(args: argparse.Namespace) -> ActivationStore:
    """The store (not yet opened) of the cloud configured in ``args.config`` (or ``args.db``)."""
    from toyd import statedir
    from toyd.config import load_file
    from toyd.registry import Registry

    from .settings import ActivationServerSettings

    if args.db:
        return ActivationStore.at(args.db, Path.cwd())
    registry = Registry()
    config = load_file(args.config, registry.schema, registry.names)
    if "activation_server" not in config.core.plugins:
        raise ToydError(f"{args.config}: the activation_server plugin is not enabled")
    settings: ActivationServerSettings = config.section("activation_server")
    state_dir = statedir.resolve(config.core.state_dir)
    if not is_postgres(settings.db) and not (path := sqlite_path(settings.db, state_dir)).exists():
        raise ToydError(
            f"{path}: no activation store yet; start `toyd cloud -c {args.config}` once"
        )
    return ActivationStore.at(settings.db, state_dir, settings.limits())


def with_store(args: argparse.Namespace, work: Callable[[ActivationStore], Awaitable[T]]) -> T:
    """Open the store, do ``work``, close it; a refusal or an unreachable store is a ToydError."""

    async def run() -> T:
        store = open_store(args)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ActivationRefused as exc:
        raise ToydError(str(exc)) from None


def _claim_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", metavar="CODE", help="the 6 digits the toy speaks and blinks")
    parser.add_argument(
        "--owner",
        default=getpass.getuser(),
        help="who the toy belongs to (default: your user name)",
    )
    _common(parser)


def run_claim(args: argparse.Namespace) -> int:
    code = args.code.replace(" ", "")
    device_id = with_store(args, lambda store: store.claim(code, args.owner, "cli"))
    print(
        f"claimed {device_id} for {args.owner}; "
        "the toy receives its token at its next poll (a few seconds)"
    )
    return 0


def _revoke_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device_id", metavar="DEVICE_ID")
    _common(parser)


def run_revoke(args: argparse.Namespace) -> int:
    if not with_store(args, lambda store: store.revoke(args.device_id)):
        raise ToydError(f"{args.device_id} has no live token")
    print(f"revoked {args.device_id}: its session ends now and it asks for a new code")
    return 0


def run_toys(args: argparse.Namespace) -> int:
    def when(stamp: float | None) -> str:
        return datetime.datetime.fromtimestamp(stamp).isoformat(" ", "seconds") if stamp else "-"

    rows = [("DEVICE", "OWNER", "ACTIVATED", "REVOKED")]
    rows += [
        (t.device_id, t.owner, when(t.activated_at), when(t.revoked_at))
        for t in with_store(args, ActivationStore.toys)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def _import_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the activation.sqlite file to copy from")
    _common(parser)


def run_import(args: argparse.Namespace) -> int:
    source = Path(args.file).resolve()
    if not source.is_file():
        raise ToydError(f"{source}: no such activation file")

    async def copy(store: ActivationStore) -> tuple[int, int]:
        old = ActivationStore.at(str(source), source.parent)
        await old.open()
        try:
            return await store.copy_toys_from(old), len(await old.toys())
        finally:
            await old.close()

    added, total = with_store(args, copy)
    print(f"copied {added} of {total} toys from {source} (toys already in the store are kept)")
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
            "import-activation",
            "copy the activated toys of an activation.sqlite file into this cloud's store",
            _import_args,
            run_import,
            description="Moving from one machine to gateways on PostgreSQL: toys keep their "
            "tokens (pending codes are not copied; they live minutes).\n\nexample: toyd cloud "
            "import-activation /var/lib/toyd/activation.sqlite -c /etc/toyd/cloud.yaml",
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
