"""The activation store on a real SQLite file and a real PostgreSQL: claims, single use,
expiry, limits, revocation (several gateways, an outage, old files: test_activation_store_shared.py)."""

from __future__ import annotations

import pytest

from activation_support import proof
from toyd_plugins.activation_server.store import ActivationRefused, token_hash

pytest_plugins = ["activation_fixtures"]


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
