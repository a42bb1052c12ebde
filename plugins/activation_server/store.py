"""The activation store: pending codes, claims, per-toy tokens, failed-claim counts.

One database is the single source of truth, shared by every gateway process (HTTP
endpoint, MQTT claims, gateway authentication) and the ``toyd cloud claim/revoke/toys``
commands: a SQLite file on one machine, a PostgreSQL server across machines
(``activation_server.db``). Every operation is one transaction written once for both
engines (:func:`toyd.store.open_database`); a claim takes its code with ``UPDATE … WHERE
owner IS NULL RETURNING``, so two gateways can never both claim one code. Tokens are
stored as SHA-256 hashes only: they are 256-bit random, so a plain hash is as good as a
slow one, and a stolen database holds no usable credential.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from toyd.protocol.activation import CODE_DIGITS, challenge_hmac
from toyd.store import Database, Tx, open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS toyd_toys (
    device_id TEXT PRIMARY KEY, owner TEXT NOT NULL, token_hash TEXT,
    activated_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION,
    client_id TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS toyd_activation_codes (
    challenge TEXT PRIMARY KEY, device_id TEXT NOT NULL, client_id TEXT NOT NULL,
    code TEXT NOT NULL, token_hash TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL, owner TEXT, claimed_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS toyd_activation_codes_code ON toyd_activation_codes (code);
CREATE INDEX IF NOT EXISTS toyd_activation_codes_device
    ON toyd_activation_codes (device_id, created);
CREATE TABLE IF NOT EXISTS toyd_codes_issued (device_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS toyd_codes_issued_device ON toyd_codes_issued (device_id, at);
CREATE TABLE IF NOT EXISTS toyd_failed_claims (source TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS toyd_failed_claims_source ON toyd_failed_claims (source, at);
"""
# the table names of activation files written before the store could be shared
LEGACY_TABLES = {
    "toys": "toyd_toys",
    "pending": "toyd_activation_codes",
    "issued": "toyd_codes_issued",
    "failed_claims": "toyd_failed_claims",
}
LEGACY_INDEXES = ("pending_code", "pending_device", "issued_device", "failed_source")
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
    """Every operation of the activation flow, each one transaction."""

    def __init__(
        self, db: Database, limits: Limits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.limits = limits or Limits()
        self.clock = clock

    @classmethod
    def at(
        cls,
        url: str,
        state_dir: Path,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ActivationStore:
        """The store ``url`` names: a SQLite file (relative to ``state_dir``) or ``postgresql://``."""
        return cls(open_database(url, state_dir, SCHEMA, migrate), limits, clock)

    async def open(self) -> None:
        """Connect, migrate an older file, create the tables (raises ``StoreError``)."""
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    # --- the toy ----------------------------------------------------------------------------

    async def issue(self, device_id: str, client_id: str) -> Issued:
        """A new code + challenge + (not yet valid) token; the toy's older codes die."""
        now, lim = self.clock(), self.limits
        challenge, token = secrets.token_urlsafe(24), secrets.token_urlsafe(32)

        async def unit(tx: Tx) -> str:
            await tx.lock("toyd-activation-issue")  # codes unique and counted across gateways
            await tx.execute("DELETE FROM toyd_activation_codes WHERE expires < ?", now)
            await tx.execute("DELETE FROM toyd_codes_issued WHERE at < ?", now - 3600)
            (count,) = await tx.fetchone(
                "SELECT COUNT(*) FROM toyd_codes_issued WHERE device_id = ?", device_id
            ) or (0,)
            if count >= lim.codes_per_toy_per_hour:
                raise ActivationRefused(
                    429, "too many activation codes for this toy; try again within the hour"
                )
            live = {row[0] for row in await tx.fetchall("SELECT code FROM toyd_activation_codes")}
            code = _new_code(live)
            # one live code per toy
            await tx.execute("DELETE FROM toyd_activation_codes WHERE device_id = ?", device_id)
            await tx.execute(
                "INSERT INTO toyd_activation_codes (challenge, device_id, client_id, code, "
                "token_hash, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                challenge,
                device_id,
                client_id,
                code,
                token_hash(token),
                now,
                now + lim.code_ttl,
            )
            await tx.execute("INSERT INTO toyd_codes_issued VALUES (?, ?)", device_id, now)
            return code

        code = await self.db.run(unit)
        return Issued(code=code, challenge=challenge, token=token, expires_in=lim.code_ttl)

    async def activate(
        self, device_id: str, challenge: str, proof: str, license_key: str = ""
    ) -> bool:
        """True once claimed (the token is live from now on), False while not yet claimed.

        Raises :class:`ActivationRefused` for an unknown or expired challenge (ask for a new
        code) or a wrong HMAC.
        """
        now = self.clock()

        async def unit(tx: Tx) -> bool:
            row = await tx.fetchone(
                "SELECT device_id, client_id, token_hash, expires, owner "
                "FROM toyd_activation_codes WHERE challenge = ?",
                challenge,
            )
            if row is None or not hmac.compare_digest(row[0], device_id):
                raise ActivationRefused(404, "unknown challenge; ask for a new activation code")
            _, client_id, hashed, expires, owner = row
            if expires < now:
                raise ActivationRefused(410, "the activation code expired; ask for a new one")
            if not hmac.compare_digest(challenge_hmac(license_key, challenge), proof.lower()):
                raise ActivationRefused(403, "wrong HMAC of the challenge")
            if owner is None:
                return False
            taken = await tx.fetchone(  # single use, even against a poll on another gateway
                "DELETE FROM toyd_activation_codes WHERE challenge = ? AND owner IS NOT NULL "
                "RETURNING challenge",
                challenge,
            )
            if taken is None:
                raise ActivationRefused(404, "unknown challenge; ask for a new activation code")
            await tx.execute(
                "INSERT INTO toyd_toys (device_id, owner, token_hash, activated_at, revoked_at, "
                "client_id) VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT (device_id) DO UPDATE SET "
                "owner = excluded.owner, token_hash = excluded.token_hash, "
                "activated_at = excluded.activated_at, revoked_at = NULL, "
                "client_id = excluded.client_id",
                device_id,
                owner,
                hashed,
                now,
                client_id,
            )
            return True

        return await self.db.run(unit)

    async def authenticate(self, device_id: str, token: str) -> bool:
        """True if ``token`` is the live token of ``device_id`` (constant-time compare)."""

        async def unit(tx: Tx) -> str | None:
            row = await tx.fetchone(
                "SELECT token_hash FROM toyd_toys WHERE device_id = ? AND revoked_at IS NULL",
                device_id,
            )
            return row[0] if row else None

        stored = await self.db.run(unit)
        matches = hmac.compare_digest(
            stored or _NO_HASH, token_hash(token)
        )  # same work for unknown toys
        return matches and stored is not None

    # --- the parent --------------------------------------------------------------------------

    async def claim(self, code: str, owner: str, source: str) -> str:
        """Bind the toy showing ``code`` to ``owner``; returns its device id.

        Failed claims are counted per source and overall; past either limit every claim
        is refused before the code is even looked at, so guessing stays bounded.
        """
        now, lim = self.clock(), self.limits
        owner = owner.strip()
        if not owner or len(owner) > OWNER_MAX or not owner.isprintable():
            raise ActivationRefused(400, f"owner must be 1-{OWNER_MAX} printable characters")

        async def unit(tx: Tx) -> str | None:
            await tx.lock("toyd-activation-claim")  # failed claims counted exactly, cloud-wide
            await tx.execute(
                "DELETE FROM toyd_failed_claims WHERE at < ?", now - lim.failed_claim_window
            )
            (mine,) = await tx.fetchone(
                "SELECT COUNT(*) FROM toyd_failed_claims WHERE source = ?", source
            ) or (0,)
            (everyone,) = await tx.fetchone("SELECT COUNT(*) FROM toyd_failed_claims") or (0,)
            if mine >= lim.failed_claims_per_source or everyone >= lim.failed_claims_global:
                raise ActivationRefused(
                    429, "too many wrong codes; claiming is paused for a few minutes"
                )
            row = None
            if len(code) == CODE_DIGITS and code.isdigit():
                row = await tx.fetchone(  # taken by exactly one claimer, whichever gateway
                    "UPDATE toyd_activation_codes SET owner = ?, claimed_at = ? "
                    "WHERE code = ? AND expires >= ? AND owner IS NULL RETURNING device_id",
                    owner,
                    now,
                    code,
                    now,
                )
            if row is None:
                await tx.execute("INSERT INTO toyd_failed_claims VALUES (?, ?)", source, now)
                return None
            return str(row[0])

        device_id = await self.db.run(unit)
        if device_id is None:  # raised after the commit, so that the failure is counted
            raise ActivationRefused(
                404, "no toy is waiting with this code (wrong, expired or already used)"
            )
        return device_id

    async def revoke(self, device_id: str) -> bool:
        """Invalidate the toy's token (it will ask for a new code); True if it had one."""
        now = self.clock()

        async def unit(tx: Tx) -> bool:
            await tx.execute("DELETE FROM toyd_activation_codes WHERE device_id = ?", device_id)
            changed = await tx.execute(
                "UPDATE toyd_toys SET token_hash = NULL, revoked_at = ? WHERE device_id = ? "
                "AND revoked_at IS NULL",
                now,
                device_id,
            )
            return changed > 0

        return await self.db.run(unit)

    async def toys(self) -> list[Toy]:
        """Every activated (or revoked) toy, by device id."""
        rows = await self.db.run(
            lambda tx: tx.fetchall(
                "SELECT device_id, owner, activated_at, revoked_at FROM toyd_toys "
                "ORDER BY device_id"
            )
        )
        return [Toy(*row) for row in rows]

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        """``(device_id, revoked_at)`` of toys revoked at or after ``since``, by any gateway."""
        rows = await self.db.run(
            lambda tx: tx.fetchall(
                "SELECT device_id, revoked_at FROM toyd_toys WHERE revoked_at >= ?", since
            )
        )
        return [(str(r[0]), float(r[1])) for r in rows]

    async def copy_toys_from(self, other: ActivationStore) -> int:
        """Copy ``other``'s toys (hashed tokens, revocations) here; toys known here are kept."""
        rows = await other.db.run(
            lambda tx: tx.fetchall(
                "SELECT device_id, owner, token_hash, activated_at, revoked_at, client_id "
                "FROM toyd_toys"
            )
        )

        async def unit(tx: Tx) -> int:
            added = 0
            for row in rows:
                added += await tx.execute(
                    "INSERT INTO toyd_toys (device_id, owner, token_hash, activated_at, "
                    "revoked_at, client_id) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (device_id) DO NOTHING",
                    *row,
                )
            return added

        return await self.db.run(unit)


async def migrate(tx: Tx) -> None:
    """An activation file from before the shared store: its tables get their new names."""
    if tx.engine != "sqlite":
        return  # PostgreSQL never held the old names; `toyd cloud import-activation` copies a file
    names = {
        row[0] for row in await tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    for old, new in LEGACY_TABLES.items():
        if old in names and new not in names:
            await tx.execute(f"ALTER TABLE {old} RENAME TO {new}")
    for index in LEGACY_INDEXES:  # the renamed tables get the new indexes from SCHEMA
        await tx.execute(f"DROP INDEX IF EXISTS {index}")


def _new_code(live: set[str]) -> str:
    while True:
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        if code not in live:
            return code
