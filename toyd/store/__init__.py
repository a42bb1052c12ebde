"""State of the cloud that outlives a connection: conversation memory and the alert log.

A gateway process keeps nothing a toy needs after it disconnects; what must survive goes
through a :class:`Store`. SQLite is the one-machine default; PostgreSQL lets several
gateway processes (behind HAProxy) share it, so a toy that reconnects to another gateway
continues its conversation. Pick one with a URL: ``llm_memory.sqlite`` (a file, relative to
the state directory) or ``postgresql://user@host:5432/db``.
"""

from .base import Alert, Store, StoreError, fold, open_store

__all__ = ["Alert", "Store", "StoreError", "fold", "open_store"]
