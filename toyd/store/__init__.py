"""State of the cloud that outlives a connection: conversation memory and the alert log.

A gateway process keeps nothing a toy needs after it disconnects; what must survive goes
through a :class:`Store`. SQLite is the one-machine default; PostgreSQL lets several
gateway processes (behind HAProxy) share it, so a toy that reconnects to another gateway
continues its conversation. Pick one with a URL: ``llm_memory.sqlite`` (a file, relative to
the state directory) or ``postgresql://user@host:5432/db``.
"""

from __future__ import annotations

from pathlib import Path

from .base import Alert, Store, StoreError, fold, is_postgres

__all__ = ["Alert", "Store", "StoreError", "fold", "open_store"]


def open_store(url: str, state_dir: Path, *, turns: int = 6, summary_chars: int = 600) -> Store:
    """The store ``url`` names (not yet opened): a PostgreSQL URL, or a SQLite file path.

    It lives here, above both back ends, so that neither imports the other's module.
    """
    if is_postgres(url):
        from .postgres import PostgresStore

        return PostgresStore(url, turns=turns, summary_chars=summary_chars)
    from .sqlite import SqliteStore

    path = Path(url.removeprefix("sqlite:"))
    return SqliteStore(
        path if path.is_absolute() else state_dir / path, turns=turns, summary_chars=summary_chars
    )
