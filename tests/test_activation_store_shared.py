"""The activation store shared: two gateways on one database, a database outage, an
activation file from before (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from activation_support import fresh_database, needs_postgres, proof
from toyd.store import StoreError
from toyd.testing.postgres import start_postgres
from toyd_plugins.activation_server.store import (
    ActivationRefused,
    ActivationStore,
    Limits,
    token_hash,
)

pytest_plugins = ["activation_fixtures"]


# --- several gateways, one database --------------------------------------------------------


async def activated(store: ActivationStore, device_id: str) -> str:
    """A toy taken through the whole flow on ``store``; its live token."""
    issued = await store.issue(device_id, "client")
    await store.claim(issued.code, "kim", "cli")
    assert await store.activate(device_id, issued.challenge, proof(issued.challenge))
    return issued.token


@pytest.fixture
async def two_gateways(url: str, tmp_path: Path) -> AsyncIterator[tuple[ActivationStore, ...]]:
    """Two stores on one database, as two gateway processes open it (own connections)."""
    pair = tuple(ActivationStore.at(url, tmp_path) for _ in range(2))
    for store in pair:
        await store.open()
    try:
        yield pair
    finally:
        for store in pair:
            await store.close()


async def test_claimed_on_one_gateway_the_token_works_on_the_other(two_gateways):
    a, b = two_gateways
    issued = await a.issue("toy-1", "client")
    assert await b.claim(issued.code, "kim", "cli") == "toy-1"
    assert await a.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert await b.authenticate("toy-1", issued.token)
    assert await b.revoke("toy-1")
    assert not await a.authenticate("toy-1", issued.token)
    assert [device for device, _ in await a.revoked_since(0)] == ["toy-1"]


async def test_one_code_claimed_at_once_on_two_gateways_has_exactly_one_winner(two_gateways):
    a, b = two_gateways
    for n in range(10):
        issued = await a.issue(f"toy-{n}", "client")
        outcomes = await asyncio.gather(
            a.claim(issued.code, "kim", f"a{n}"),
            b.claim(issued.code, "lee", f"b{n}"),
            return_exceptions=True,
        )
        won = [o for o in outcomes if o == f"toy-{n}"]
        lost = [o for o in outcomes if isinstance(o, ActivationRefused) and o.status == 404]
        assert len(won) == 1 and len(lost) == 1, outcomes
    # the one activation of a claimed code is single use too, polled on both at once
    issued = await a.issue("toy-x", "client")
    await a.claim(issued.code, "kim", "cli")
    polls = await asyncio.gather(
        *(s.activate("toy-x", issued.challenge, proof(issued.challenge)) for s in (a, b)),
        return_exceptions=True,
    )
    assert polls.count(True) == 1, polls


@needs_postgres
async def test_a_database_outage_is_a_clear_error_and_the_store_recovers(tmp_path):
    pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")
    with start_postgres() as server:
        url = server.url.replace("postgres@", "postgres:s3cret@")
        store = ActivationStore.at(url, tmp_path)
        await store.open()
        try:
            token = await activated(store, "toy-1")
            server.stop("immediate")
            for call in (
                store.authenticate("toy-1", token),
                store.issue("toy-2", "client"),
                store.claim("123456", "kim", "cli"),
                store.revoke("toy-1"),
            ):
                with pytest.raises(StoreError) as caught:
                    await call
                message = str(caught.value)
                assert "unavailable" in message and "s3cret" not in message, message
            server.start()
            assert await store.authenticate("toy-1", token)  # no restart of the gateway needed
        finally:
            await store.close()


@needs_postgres
async def test_a_gateway_starts_while_the_database_is_down(tmp_path):
    pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")
    with start_postgres() as server:
        server.stop()
        store = ActivationStore.at(server.url, tmp_path)
        await store.open()  # not fatal: toys with static tokens still connect
        try:
            with pytest.raises(StoreError):
                await store.issue("toy-1", "client")
            server.start()
            assert await activated(store, "toy-1")  # tables created on first use
        finally:
            await store.close()


@needs_postgres
async def test_wrong_credentials_are_an_error_at_start(postgres, tmp_path):
    pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")
    url = postgres.url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreError, match="no_such_database"):
        await ActivationStore.at(url, tmp_path).open()


LEGACY_SCHEMA = """
CREATE TABLE toys (
    device_id TEXT PRIMARY KEY, owner TEXT NOT NULL, token_hash TEXT,
    activated_at REAL NOT NULL, revoked_at REAL, client_id TEXT NOT NULL DEFAULT '');
CREATE TABLE pending (
    challenge TEXT PRIMARY KEY, device_id TEXT NOT NULL, client_id TEXT NOT NULL,
    code TEXT NOT NULL, token_hash TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    owner TEXT, claimed_at REAL);
CREATE INDEX pending_code ON pending(code);
CREATE INDEX pending_device ON pending(device_id, created);
CREATE TABLE issued (device_id TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX issued_device ON issued(device_id, at);
CREATE TABLE failed_claims (source TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX failed_source ON failed_claims(source, at);
"""


async def test_an_activation_file_from_before_keeps_its_toys(tmp_path, clock):
    """A file written by the synchronous store: its toys stay activated, its codes claimable."""
    path = tmp_path / "activation.sqlite"
    db = sqlite3.connect(path)
    db.executescript(LEGACY_SCHEMA)
    db.execute(
        "INSERT INTO toys VALUES ('old-toy', 'kim', ?, 1.0, NULL, '')", (token_hash("old-token"),)
    )
    db.execute(
        "INSERT INTO pending VALUES ('c' || 'h', 'waiting-toy', 'c', '424242', ?, ?, ?, NULL, NULL)",
        (token_hash("new-token"), clock.now, clock.now + 600),
    )
    db.commit()
    db.close()
    for _ in range(2):  # opening again finds it migrated already
        store = ActivationStore.at(str(path), tmp_path, clock=clock)
        await store.open()
        try:
            assert await store.authenticate("old-toy", "old-token")
            assert [t.device_id for t in await store.toys()] == ["old-toy"]
        finally:
            await store.close()
    await store.open()
    try:
        assert await store.claim("424242", "lee", "cli") == "waiting-toy"
    finally:
        await store.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert not tables & {"toys", "pending", "issued", "failed_claims", "pending_code"}


@needs_postgres
async def test_an_old_file_is_copied_into_postgresql(postgres, tmp_path, capsys):
    """Moving to gateways on PostgreSQL: `toyd cloud import-activation` keeps every toy's token."""
    pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")
    from toyd.cli import main as toyd_main

    path = tmp_path / "activation.sqlite"
    db = sqlite3.connect(path)
    db.executescript(LEGACY_SCHEMA)
    db.execute("INSERT INTO toys VALUES ('old-toy', 'kim', ?, 1.0, NULL, '')", (token_hash("t1"),))
    db.execute("INSERT INTO toys VALUES ('gone-toy', 'kim', NULL, 1.0, 2.0, '')")
    db.commit()
    db.close()
    url = await fresh_database(postgres)
    args = ["cloud", "import-activation", str(path), "--db", url]
    assert await asyncio.to_thread(toyd_main, args) == 0
    assert "copied 2 of 2 toys" in capsys.readouterr().out
    assert await asyncio.to_thread(toyd_main, args) == 0  # again: nothing twice
    assert "copied 0 of 2 toys" in capsys.readouterr().out
    store = ActivationStore.at(url, tmp_path)
    await store.open()
    try:
        assert await store.authenticate("old-toy", "t1")
        assert [(t.device_id, t.revoked_at) for t in await store.toys()] == [
            ("gone-toy", 2.0),
            ("old-toy", None),
        ]
    finally:
        await store.close()


@needs_postgres
async def test_a_store_opens_while_another_holds_a_write_open(postgres, tmp_path, clock):
    """Opening checks the schema; it must not wait for (or deadlock with) another's writes.

    Seen: two `toyd cloud claim` started at once, and one failed with a PostgreSQL deadlock:
    its `CREATE INDEX IF NOT EXISTS` locked a table the other was writing to.
    """
    url = await fresh_database(postgres)
    first = ActivationStore.at(url, tmp_path, Limits(), clock=clock)
    await first.open()
    second = ActivationStore.at(url, tmp_path, Limits(), clock=clock)
    writing, release = asyncio.Event(), asyncio.Event()

    async def hold(tx):
        await tx.execute("INSERT INTO toyd_failed_claims VALUES (?, ?)", "held", 0.0)
        await tx.execute("UPDATE toyd_activation_codes SET owner = owner")
        writing.set()
        await release.wait()

    holder = asyncio.create_task(first.db.run(hold))
    try:
        await asyncio.wait_for(writing.wait(), 10)
        await asyncio.wait_for(second.open(), 10)  # before the fix: blocked until `hold` ended
        await asyncio.wait_for(second.issue("toy-2", "client"), 10)
    finally:
        release.set()
        await holder
        await second.close()
        await first.close()
