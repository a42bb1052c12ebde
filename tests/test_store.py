"""The cloud store: the same behaviour from SQLite and PostgreSQL, and no write lost to an outage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from toyd.store import Alert, Store, StoreError, open_store
from toyd.store.postgres import PostgresStore, redact
from toyd.testing.helpers import wait_for
from toyd.testing.postgres import PrivatePostgres, postgres_bindir, start_postgres

needs_postgres = pytest.mark.skipif(
    postgres_bindir() is None,
    reason="PostgreSQL server binaries not installed (apt-get install postgresql)",
)
asyncpg = pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    with start_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "memory.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres").url
    opened = open_store(url, tmp_path, turns=2, summary_chars=80)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def device() -> str:
    return f"toy-{uuid.uuid4().hex[:8]}"


async def test_recent_exchanges_stay_verbatim_and_older_ones_fold_into_the_summary(
    store: Store,
) -> None:
    toy, other = device(), device()
    for n in range(4):
        await store.remember(toy, f"question {n}", f"answer {n}")
    await store.remember(other, "hello", "hi")
    summary, recent = await store.recall(toy)
    assert recent == [("question 2", "answer 2"), ("question 3", "answer 3")]
    assert summary == "The child said: question 0\nThe child said: question 1"
    assert await store.recall(other) == ("", [("hello", "hi")]), "memory is per toy"


async def test_alerts_are_logged_per_toy_oldest_first(store: Store) -> None:
    toy = device()
    for n in range(3):
        await store.record_alert(Alert(toy, 100.0 + n, "violence", "high", f"line {n}"))
    await store.record_alert(Alert(device(), 1.0, "bullying", "medium", "elsewhere"))
    assert [a.excerpt for a in await store.alerts(toy)] == ["line 0", "line 1", "line 2"]
    assert [a.excerpt for a in await store.alerts(toy, limit=1)] == ["line 2"]


@needs_postgres
async def test_two_gateways_share_one_conversation(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    first, second = (open_store(postgres.url, tmp_path, turns=4) for _ in range(2))
    await first.open()
    await second.open()
    try:
        toy = device()
        await first.remember(toy, "my name is mia", "hello mia")
        await second.remember(toy, "what is my name", "your name is mia")
        assert (await first.recall(toy))[1] == [
            ("my name is mia", "hello mia"),
            ("what is my name", "your name is mia"),
        ]
    finally:
        await first.close()
        await second.close()


@needs_postgres
async def test_a_server_restart_loses_no_write(tmp_path: Path) -> None:
    with start_postgres() as server:
        store = open_store(server.url, tmp_path, turns=10)
        assert isinstance(store, PostgresStore)
        await store.open()
        try:
            toy = device()
            await store.remember(toy, "before", "ok")
            server.stop("immediate")
            await store.remember(toy, "during 1", "ok")
            await store.record_alert(Alert(toy, 5.0, "grooming", "high", "held while down"))
            await store.remember(toy, "during 2", "ok")
            assert store.pending == 3
            # the turn still sees what this gateway holds
            assert [c for c, _ in (await store.recall(toy))[1]] == [
                "before",
                "during 1",
                "during 2",
            ]
            server.start()
            await wait_for(lambda: store.pending == 0, timeout=20)
            other = open_store(server.url, tmp_path, turns=10)
            await other.open()
            try:
                assert [c for c, _ in (await other.recall(toy))[1]] == [
                    "before",
                    "during 1",
                    "during 2",
                ]
                assert [a.excerpt for a in await other.alerts(toy)] == ["held while down"]
            finally:
                await other.close()
        finally:
            await store.close()


@needs_postgres
async def test_a_store_opened_while_the_server_is_down_catches_up(tmp_path: Path) -> None:
    with start_postgres() as server:
        server.stop()
        store = open_store(server.url, tmp_path)
        await store.open()  # not fatal: the gateway starts and serves turns without memory
        try:
            toy = device()
            await store.remember(toy, "hello", "hi")
            assert store.pending == 1
            server.start()
            await wait_for(lambda: store.pending == 0, timeout=20)
            assert (await store.recall(toy))[1] == [("hello", "hi")]
        finally:
            await store.close()


async def test_a_bad_url_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    store = open_store("postgresql://toyd:s3cret@127.0.0.1:1/db?sslmode=bogus", tmp_path)
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value)
    assert redact("postgresql://toyd:s3cret@db:5432/toyd") == "postgresql://toyd:***@db:5432/toyd"


async def test_an_unwritable_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "missing-dir" / "memory.sqlite"), tmp_path)
    with pytest.raises(StoreError, match="cannot open the store"):
        await store.open()
    await asyncio.sleep(0)
