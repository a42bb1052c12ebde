"""Helpers of the activation store tests: a clock, PostgreSQL databases, the toy's proof.

Their fixtures are in activation_fixtures.py (loaded through ``pytest_plugins``).
"""

from __future__ import annotations

import uuid

import pytest

from toyd.protocol.activation import challenge_hmac
from toyd.testing.postgres import PrivatePostgres, postgres_bindir

needs_postgres = pytest.mark.skipif(
    postgres_bindir() is None,
    reason="PostgreSQL server binaries not installed (apt-get install postgresql)",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


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


def proof(challenge: str, key: str = "") -> str:
    return challenge_hmac(key, challenge)
