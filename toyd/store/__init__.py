"""State of the cloud that outlives a connection: memory, alerts, activation codes and tokens.

A gateway process keeps nothing a toy needs after it disconnects; what must survive goes
through a :class:`Store`. SQLite is the one-machine default; PostgreSQL lets several
gateway processes (behind HAProxy) share it, so a toy that reconnects to another gateway
continues its conversation. Pick one with a URL: ``llm_memory.sqlite`` (a file, relative to
the state directory) or ``postgresql://user@host:5432/db``. State whose logic is the same
SQL on both engines (activation) uses :func:`open_database` instead (``sql.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from .base import Alert, Store, StoreError, fold, is_postgres
from .sql import Database, Tx

__all__ = [
    "Alert",
    "Database",
    "Store",
    "StoreError",
    "Tx",
    "fold",
    "is_postgres",
    "open_database",
    "open_store",
    "sqlite_path",
]


def open_store(url: str, state_dir: Path, *, turns: int = 6, summary_chars: int = 600) -> Store:
    """The store ``url`` names (not yet opened): a PostgreSQL URL, or a SQLite file path.

    It lives here, above both back ends, so that neither imports the other's module.
    """
    if is_postgres(url):
        from .postgres import PostgresStore

        return PostgresStore(url, turns=turns, summary_chars=summary_chars)
    from .sqlite import SqliteStore

    return SqliteStore(sqlite_path(url, state_dir), turns=turns, summary_chars=summary_chars)


def open_database(
    url: str,
    state_dir: Path,
    schema: str,
    migrate: Callable[[Tx], Awaitable[None]] | None = None,
) -> Database:
    """A :class:`Database` for state written once for both engines (not yet opened)."""
    if is_postgres(url):
        from .sql_postgres import PostgresDatabase

        return PostgresDatabase(url, schema, migrate)
    from .sql_sqlite import SqliteDatabase

    return SqliteDatabase(sqlite_path(url, state_dir), schema, migrate)


def sqlite_path(url: str, state_dir: Path) -> Path:
    """The file a SQLite setting names: absolute, or relative to the state directory."""
    path = Path(url.removeprefix("sqlite:")).expanduser()
    return path if path.is_absolute() else state_dir / path
