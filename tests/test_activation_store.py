"""The activation store on a real SQLite file and a real PostgreSQL: claims, single use,
expiry, limits, revocation; two gateways sharing one database; an outage; an old file."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from toyd.protocol.activation import challenge_hmac
from toyd.store import StoreError
from toyd.testing.postgres import PrivatePostgres, postgres_bindir, start_postgres
from toyd_plugins.activation_server.store import (
    ActivationRefused,
    ActivationStore,
    Limits,
    token_hash,
)

needs_postgres = pytest.mark.skipif(
    postgres_bindir() is None,
    reason="PostgreSQL server binaries not installed (apt-get install postgresql)",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """One server for the module (tests marked ``needs_postgres``); a database per test."""
    with start_postgres() as server:
        yield server


async def fresh_database(server: PrivatePostgres) -> str:
    """A new, empty database on ``server``: tests do not share codes or failure counts."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server.url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


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


def proof(challenge: str, key: str = "") -> str:
    return challenge_hmac(key, challenge)


async def test_claimed_code_activates_the_token_once(store):
    issued = await store.issue("toy-1", "client")
    assert len(issued.code) == 6 and issued.code.isdigit()
    assert not await store.authenticate("toy-1", issued.token)
    assert (
        await store.activate("toy-1", issued.challenge, proof(issued.challenge)) is False
    )  # not claimed yet: 202
    assert await store.claim(issued.code, "kim", "cli") == "toy-1"
    assert await store.activate("toy-1", issued.challenge, proof(issued.challenge)) is True
    assert await store.authenticate("toy-1", issued.token)
    assert not await store.authenticate("toy-2", issued.token) and not await store.authenticate(
        "toy-1", issued.token + "x"
    )
    with pytest.raises(ActivationRefused) as again:  # single use: the challenge is gone
        await store.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert again.value.status == 404
    with pytest.raises(ActivationRefused):  # and so is the code
        await store.claim(issued.code, "mallory", "cli")
    assert [(t.device_id, t.owner) for t in await store.toys()] == [("toy-1", "kim")]


async def test_the_token_is_only_stored_hashed(store, tmp_path):
    issued = await store.issue("toy-1", "client")
    await store.claim(issued.code, "kim", "cli")
    await store.activate("toy-1", issued.challenge, proof(issued.challenge))
    stored = await store.db.run(lambda tx: tx.fetchall("SELECT * FROM toyd_toys"))
    assert token_hash(issued.token) in stored[0] and issued.token not in str(stored)
    if (tmp_path / "activation.sqlite").exists():
        assert issued.token.encode() not in (tmp_path / "activation.sqlite").read_bytes()


async def test_a_code_expires(store, clock):
    issued = await store.issue("toy-1", "client")
    clock.now += 601
    with pytest.raises(ActivationRefused) as exc:
        await store.claim(issued.code, "kim", "cli")
    assert exc.value.status == 404
    with pytest.raises(ActivationRefused) as exc:
        await store.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert exc.value.status in (404, 410)


async def test_a_new_code_replaces_the_toys_old_one(store):
    first = await store.issue("toy-1", "client")
    second = await store.issue("toy-1", "client")
    with pytest.raises(ActivationRefused):
        await store.claim(
            first.code, "kim", "cli"
        ) if first.code != second.code else await store.activate(
            "toy-1", first.challenge, proof(first.challenge)
        )
    assert await store.claim(second.code, "kim", "cli") == "toy-1"


async def test_wrong_hmac_and_other_device_are_refused(store):
    issued = await store.issue("toy-1", "client")
    await store.claim(issued.code, "kim", "cli")
    with pytest.raises(ActivationRefused) as exc:
        await store.activate("toy-1", issued.challenge, proof(issued.challenge, "not-the-key"))
    assert exc.value.status == 403
    with pytest.raises(ActivationRefused) as exc:
        await store.activate("toy-2", issued.challenge, proof(issued.challenge))
    assert exc.value.status == 404
    assert await store.activate("toy-1", issued.challenge, proof(issued.challenge)) is True


async def test_licence_key_is_required_when_known(store):
    issued = await store.issue("toy-1", "client")
    await store.claim(issued.code, "kim", "cli")
    with pytest.raises(ActivationRefused):
        await store.activate(
            "toy-1", issued.challenge, proof(issued.challenge), license_key="factory-secret"
        )
    assert await store.activate(
        "toy-1", issued.challenge, proof(issued.challenge, "factory-secret"), "factory-secret"
    )


async def test_codes_per_toy_are_limited(store, clock):
    for _ in range(6):
        await store.issue("toy-1", "client")
    with pytest.raises(ActivationRefused) as exc:
        await store.issue("toy-1", "client")
    assert exc.value.status == 429
    await store.issue("toy-2", "client")  # other toys are not affected
    clock.now += 3601
    await store.issue("toy-1", "client")


async def test_bounded_brute_force_never_claims(store):
    """Codes from 000000 up, with the real one among them: the limit stops the guesser first."""
    issued = await store.issue("toy-1", "client")
    real = int(issued.code)
    guesses = (
        [f"{n:06d}" for n in range(40) if n != real][:30]
        + [issued.code]
        + [f"{n:06d}" for n in range(40, 1040)]
    )
    outcomes = []
    for code in guesses:
        try:
            outcomes.append(await store.claim(code, "mallory", "mqtt"))
        except ActivationRefused as exc:
            outcomes.append(exc.status)
    assert "toy-1" not in outcomes
    assert outcomes.count(404) == 5 and outcomes.count(429) == len(guesses) - 5
    assert (
        await store.activate("toy-1", issued.challenge, proof(issued.challenge)) is False
    )  # still unclaimed
    # other claimers are capped too (global limit), and the window ends
    for source in ("cli", "a", "b", "c"):
        for n in range(5):
            with pytest.raises(ActivationRefused):
                await store.claim(
                    f"9{n:05d}" if f"9{n:05d}" != issued.code else "899999", "x", source
                )
    with pytest.raises(ActivationRefused) as exc:
        await store.claim(issued.code, "kim", "parent-elsewhere")
    assert exc.value.status == 429


async def test_guess_window_reopens(store, clock):
    issued = await store.issue("toy-1", "client")
    for n in range(5):
        with pytest.raises(ActivationRefused):
            await store.claim("000000" if issued.code != "000000" else "000001", "m", "cli")
    clock.now += 601
    issued = await store.issue("toy-1", "client")
    assert await store.claim(issued.code, "kim", "cli") == "toy-1"


async def test_revoke(store):
    issued = await store.issue("toy-1", "client")
    await store.claim(issued.code, "kim", "cli")
    await store.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert await store.revoke("toy-1") is True
    assert not await store.authenticate("toy-1", issued.token)
    assert await store.revoke("toy-1") is False
    assert await store.revoked_since(0) == [("toy-1", store.clock())]
    again = await store.issue(
        "toy-1", "client"
    )  # a revoked toy asks for a new code and can be claimed again
    await store.claim(again.code, "kim", "cli")
    assert await store.activate("toy-1", again.challenge, proof(again.challenge))
    assert await store.authenticate("toy-1", again.token) and not await store.authenticate(
        "toy-1", issued.token
    )


@pytest.mark.parametrize("owner", ["", " ", "x" * 65, "ki\nm"])
async def test_bad_owner_is_refused_without_counting(store, owner):
    issued = await store.issue("toy-1", "client")
    with pytest.raises(ActivationRefused) as exc:
        await store.claim(issued.code, owner, "cli")
    assert exc.value.status == 400


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
