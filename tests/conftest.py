"""Shared test setup: the repo root and the example configs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the thread of any aiosqlite connection left open, so the run can end, and say so.

    aiosqlite's worker thread is not a daemon: one connection that a test (or the code
    under test) never closed would keep the interpreter, and CI with it, from ever exiting.
    """
    import threading

    from aiosqlite import core

    leaked = [
        t
        for t in threading.enumerate()
        if t.is_alive()
        and getattr(getattr(t, "_target", None), "__name__", "") == "_connection_worker_thread"
    ]
    for thread in leaked:
        thread._args[0].put((None, lambda: core._STOP_RUNNING_SENTINEL))  # type: ignore[attr-defined]
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"warning: {len(leaked)} SQLite connection(s) were never closed; "
                "their threads were stopped so the run could end",
                yellow=True,
            )
