"""The activation store: pending codes, claims, per-toy tokens, failed-claim counts (SQLite).

One SQLite file is the single source of truth, shared by the running cloud (HTTP endpoint,
MQTT claims, gateway authentication) and the ``toyd cloud claim/revoke/toys`` commands, so
a claim typed on the server's shell is seen by the next poll. Tokens are stored as SHA-256
hashes only: they are 256-bit random, so a plain hash is as good as a slow one, and a
stolen database file holds no usable credential.

Calls are blocking (sqlite3); the plugin runs them in executor threads, one connection per
call, with a busy timeout so the CLI and the daemon can write at the same time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from toyd.protocol.activation import CODE_DIGITS, challenge_hmac

SCHEMA = """
CREATE TABLE IF NOT EXISTS toys (
    device_id TEXT PRIMARY KEY, owner TEXT NOT NULL, token_hash TEXT,
    activated_at REAL NOT NULL, revoked_at REAL, client_id TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS pending (
    challenge TEXT PRIMARY KEY, device_id TEXT NOT NULL, client_id TEXT NOT NULL,
    code TEXT NOT NULL, token_hash TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    owner TEXT, claimed_at REAL);
CREATE INDEX IF NOT EXISTS pending_code ON pending(code);
CREATE INDEX IF NOT EXISTS pending_device ON pending(device_id, created);
CREATE TABLE IF NOT EXISTS issued (device_id TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS issued_device ON issued(device_id, at);
CREATE TABLE IF NOT EXISTS failed_claims (source TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failed_source ON failed_claims(source, at);
"""
OWNER_MAX = 64
_NO_HASH = "0" * 64


class ActivationRefused(Exception):
    """A request the store will not honour; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Anti-abuse limits (the plugin's settings feed these)."""

    code_ttl: float = 600.0
    codes_per_toy_per_hour: int = 6
    failed_claims_per_source: int = 5
    failed_claims_global: int = 20
    failed_claim_window: float = 600.0


@dataclasses.dataclass(frozen=True)
class Issued:
    """A fresh code for a toy: shown to the parent (code), proved by the toy (challenge)."""

    code: str
    challenge: str
    token: str
    expires_in: float


@dataclasses.dataclass(frozen=True)
class Toy:
    """One activated (or revoked) toy."""

    device_id: str
    owner: str
    activated_at: float
    revoked_at: float | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ActivationStore:
    """Every operation of the activation flow, each one SQLite transaction."""

    def __init__(
        self, path: Path, limits: Limits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.limits = limits or Limits()
        self.clock = clock
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.executescript(SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # --- the toy ----------------------------------------------------------------------------

    def issue(self, device_id: str, client_id: str) -> Issued:
        """A new code + challenge + (not yet valid) token; the toy's older codes die."""
        now, lim = self.clock(), self.limits
        with self._db() as db:
            db.execute("DELETE FROM pending WHERE expires < ?", (now,))
            db.execute("DELETE FROM issued WHERE at < ?", (now - 3600,))
            (count,) = db.execute(
                "SELECT COUNT(*) FROM issued WHERE device_id = ?", (device_id,)
            ).fetchone()
            if count >= lim.codes_per_toy_per_hour:
                raise ActivationRefused(
                    429, "too many activation codes for this toy; try again within the hour"
                )
            live = {row[0] for row in db.execute("SELECT code FROM pending")}
            code = _new_code(live)
            challenge, token = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
            db.execute(
                "DELETE FROM pending WHERE device_id = ?", (device_id,)
            )  # one live code per toy
            db.execute(
                "INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (challenge, device_id, client_id, code, token_hash(token), now, now + lim.code_ttl),
            )
            db.execute("INSERT INTO issued VALUES (?, ?)", (device_id, now))
        return Issued(code=code, challenge=challenge, token=token, expires_in=lim.code_ttl)

    def activate(self, device_id: str, challenge: str, proof: str, license_key: str = "") -> bool:
        """True once claimed (the token is live from now on), False while not yet claimed.

        Raises :class:`ActivationRefused` for an unknown or expired challenge (ask for a new
        code) or a wrong HMAC.
        """
        now = self.clock()
        with self._db() as db:
            row = db.execute(
                "SELECT device_id, client_id, token_hash, expires, owner FROM pending "
                "WHERE challenge = ?",
                (challenge,),
            ).fetchone()
            if row is None or not hmac.compare_digest(row[0], device_id):
                raise ActivationRefused(404, "unknown challenge; ask for a new activation code")
            _, client_id, hashed, expires, owner = row
            if expires < now:
                raise ActivationRefused(410, "the activation code expired; ask for a new one")
            if not hmac.compare_digest(challenge_hmac(license_key, challenge), proof.lower()):
                raise ActivationRefused(403, "wrong HMAC of the challenge")
            if owner is None:
                return False
            db.execute("DELETE FROM pending WHERE challenge = ?", (challenge,))  # single use
            db.execute(
                "INSERT OR REPLACE INTO toys VALUES (?, ?, ?, ?, NULL, ?)",
                (device_id, owner, hashed, now, client_id),
            )
        return True

    def authenticate(self, device_id: str, token: str) -> bool:
        """True if ``token`` is the live token of ``device_id`` (constant-time compare)."""
        with self._db() as db:
            row = db.execute(
                "SELECT token_hash FROM toys WHERE device_id = ? AND revoked_at IS NULL",
                (device_id,),
            ).fetchone()
        stored = row[0] if row else None
        matches = hmac.compare_digest(
            stored or _NO_HASH, token_hash(token)
        )  # same work for unknown toys
        return matches and stored is not None

    # --- the parent --------------------------------------------------------------------------

    def claim(self, code: str, owner: str, source: str) -> str:
        """Bind the toy showing ``code`` to ``owner``; returns its device id.

        Failed claims are counted per source and overall; past either limit every claim
        is refused before the code is even looked at, so guessing stays bounded.
        """
        now, lim = self.clock(), self.limits
        owner = owner.strip()
        if not owner or len(owner) > OWNER_MAX or not owner.isprintable():
            raise ActivationRefused(400, f"owner must be 1-{OWNER_MAX} printable characters")
        with self._db() as db:
            db.execute("DELETE FROM failed_claims WHERE at < ?", (now - lim.failed_claim_window,))
            (mine,) = db.execute(
                "SELECT COUNT(*) FROM failed_claims WHERE source = ?", (source,)
            ).fetchone()
            (everyone,) = db.execute("SELECT COUNT(*) FROM failed_claims").fetchone()
            if mine >= lim.failed_claims_per_source or everyone >= lim.failed_claims_global:
                raise ActivationRefused(
                    429, "too many wrong codes; claiming is paused for a few minutes"
                )
            row = None
            if len(code) == CODE_DIGITS and code.isdigit():
                row = db.execute(
                    "SELECT challenge, device_id FROM pending WHERE code = ? AND expires >= ? "
                    "AND owner IS NULL",
                    (code, now),
                ).fetchone()
            if row is None:
                db.execute("INSERT INTO failed_claims VALUES (?, ?)", (source, now))
                failure = ActivationRefused(
                    404, "no toy is waiting with this code (wrong, expired or already used)"
                )
            else:
                db.execute(
                    "UPDATE pending SET owner = ?, claimed_at = ? WHERE challenge = ?",
                    (owner, now, row[0]),
                )
                return str(row[1])
        raise failure

    def revoke(self, device_id: str) -> bool:
        """Invalidate the toy's token (it will ask for a new code); True if it had one."""
        with self._db() as db:
            db.execute("DELETE FROM pending WHERE device_id = ?", (device_id,))
            cur = db.execute(
                "UPDATE toys SET token_hash = NULL, revoked_at = ? WHERE device_id = ? "
                "AND revoked_at IS NULL",
                (self.clock(), device_id),
            )
            return cur.rowcount > 0

    def toys(self) -> list[Toy]:
        with self._db() as db:
            rows = db.execute(
                "SELECT device_id, owner, activated_at, revoked_at FROM toys ORDER BY device_id"
            ).fetchall()
        return [Toy(*row) for row in rows]

    def revoked_since(self, since: float) -> list[str]:
        """Device ids revoked at or after ``since`` (the gateway drops their sessions)."""
        with self._db() as db:
            return [
                r[0]
                for r in db.execute("SELECT device_id FROM toys WHERE revoked_at >= ?", (since,))
            ]


def _new_code(live: set[str]) -> str:
    while True:
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        if code not in live:
            return code
