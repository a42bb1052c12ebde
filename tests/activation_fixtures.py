"""Fixtures of the activation store tests: a clock, and a store on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from activation_support import Clock, fresh_database, needs_postgres
from toyd.testing.postgres import PrivatePostgres, start_postgres
from toyd_plugins.activation_server.store import ActivationStore, Limits


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """One server for the module (tests marked ``needs_postgres``); a database per test."""
    with start_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "activation.sqlite")
    pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")
    return await fresh_database(request.getfixturevalue("postgres"))


@pytest.fixture
async def store(url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[ActivationStore]:
    opened = ActivationStore.at(url, tmp_path, Limits(), clock=clock)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
