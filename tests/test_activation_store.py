"""The activation store on a real SQLite file: claims, single use, expiry, limits, revocation."""

from __future__ import annotations

import pytest

from toyd.protocol.activation import challenge_hmac
from toyd_plugins.activation_server.store import ActivationRefused, ActivationStore, Limits


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path, clock) -> ActivationStore:
    return ActivationStore(tmp_path / "activation.sqlite", Limits(), clock=clock)


def proof(challenge: str, key: str = "") -> str:
    return challenge_hmac(key, challenge)


def test_claimed_code_activates_the_token_once(store):
    issued = store.issue("toy-1", "client")
    assert len(issued.code) == 6 and issued.code.isdigit()
    assert not store.authenticate("toy-1", issued.token)
    assert (
        store.activate("toy-1", issued.challenge, proof(issued.challenge)) is False
    )  # not claimed yet: 202
    assert store.claim(issued.code, "kim", "cli") == "toy-1"
    assert store.activate("toy-1", issued.challenge, proof(issued.challenge)) is True
    assert store.authenticate("toy-1", issued.token)
    assert not store.authenticate("toy-2", issued.token) and not store.authenticate(
        "toy-1", issued.token + "x"
    )
    with pytest.raises(ActivationRefused) as again:  # single use: the challenge is gone
        store.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert again.value.status == 404
    with pytest.raises(ActivationRefused):  # and so is the code
        store.claim(issued.code, "mallory", "cli")
    assert [(t.device_id, t.owner) for t in store.toys()] == [("toy-1", "kim")]


def test_the_token_is_only_stored_hashed(store, tmp_path):
    issued = store.issue("toy-1", "client")
    store.claim(issued.code, "kim", "cli")
    store.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert issued.token.encode() not in (tmp_path / "activation.sqlite").read_bytes()


def test_a_code_expires(store, clock):
    issued = store.issue("toy-1", "client")
    clock.now += 601
    with pytest.raises(ActivationRefused) as exc:
        store.claim(issued.code, "kim", "cli")
    assert exc.value.status == 404
    with pytest.raises(ActivationRefused) as exc:
        store.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert exc.value.status in (404, 410)


def test_a_new_code_replaces_the_toys_old_one(store):
    first = store.issue("toy-1", "client")
    second = store.issue("toy-1", "client")
    with pytest.raises(ActivationRefused):
        store.claim(first.code, "kim", "cli") if first.code != second.code else store.activate(
            "toy-1", first.challenge, proof(first.challenge)
        )
    assert store.claim(second.code, "kim", "cli") == "toy-1"


def test_wrong_hmac_and_other_device_are_refused(store):
    issued = store.issue("toy-1", "client")
    store.claim(issued.code, "kim", "cli")
    with pytest.raises(ActivationRefused) as exc:
        store.activate("toy-1", issued.challenge, proof(issued.challenge, "not-the-key"))
    assert exc.value.status == 403
    with pytest.raises(ActivationRefused) as exc:
        store.activate("toy-2", issued.challenge, proof(issued.challenge))
    assert exc.value.status == 404
    assert store.activate("toy-1", issued.challenge, proof(issued.challenge)) is True


def test_licence_key_is_required_when_known(store):
    issued = store.issue("toy-1", "client")
    store.claim(issued.code, "kim", "cli")
    with pytest.raises(ActivationRefused):
        store.activate(
            "toy-1", issued.challenge, proof(issued.challenge), license_key="factory-secret"
        )
    assert store.activate(
        "toy-1", issued.challenge, proof(issued.challenge, "factory-secret"), "factory-secret"
    )


def test_codes_per_toy_are_limited(store, clock):
    for _ in range(6):
        store.issue("toy-1", "client")
    with pytest.raises(ActivationRefused) as exc:
        store.issue("toy-1", "client")
    assert exc.value.status == 429
    store.issue("toy-2", "client")  # other toys are not affected
    clock.now += 3601
    store.issue("toy-1", "client")


def test_bounded_brute_force_never_claims(store):
    """Codes from 000000 up, with the real one among them: the limit stops the guesser first."""
    issued = store.issue("toy-1", "client")
    real = int(issued.code)
    guesses = (
        [f"{n:06d}" for n in range(40) if n != real][:30]
        + [issued.code]
        + [f"{n:06d}" for n in range(40, 1040)]
    )
    outcomes = []
    for code in guesses:
        try:
            outcomes.append(store.claim(code, "mallory", "mqtt"))
        except ActivationRefused as exc:
            outcomes.append(exc.status)
    assert "toy-1" not in outcomes
    assert outcomes.count(404) == 5 and outcomes.count(429) == len(guesses) - 5
    assert (
        store.activate("toy-1", issued.challenge, proof(issued.challenge)) is False
    )  # still unclaimed
    # other claimers are capped too (global limit), and the window ends
    for source in ("cli", "a", "b", "c"):
        for n in range(5):
            with pytest.raises(ActivationRefused):
                store.claim(f"9{n:05d}" if f"9{n:05d}" != issued.code else "899999", "x", source)
    with pytest.raises(ActivationRefused) as exc:
        store.claim(issued.code, "kim", "parent-elsewhere")
    assert exc.value.status == 429


def test_guess_window_reopens(store, clock):
    issued = store.issue("toy-1", "client")
    for n in range(5):
        with pytest.raises(ActivationRefused):
            store.claim("000000" if issued.code != "000000" else "000001", "m", "cli")
    clock.now += 601
    issued = store.issue("toy-1", "client")
    assert store.claim(issued.code, "kim", "cli") == "toy-1"


def test_revoke(store):
    issued = store.issue("toy-1", "client")
    store.claim(issued.code, "kim", "cli")
    store.activate("toy-1", issued.challenge, proof(issued.challenge))
    assert store.revoke("toy-1") is True
    assert not store.authenticate("toy-1", issued.token)
    assert store.revoke("toy-1") is False
    assert store.revoked_since(0) == ["toy-1"]
    again = store.issue(
        "toy-1", "client"
    )  # a revoked toy asks for a new code and can be claimed again
    store.claim(again.code, "kim", "cli")
    assert store.activate("toy-1", again.challenge, proof(again.challenge))
    assert store.authenticate("toy-1", again.token) and not store.authenticate(
        "toy-1", issued.token
    )


@pytest.mark.parametrize("owner", ["", " ", "x" * 65, "ki\nm"])
def test_bad_owner_is_refused_without_counting(store, owner):
    issued = store.issue("toy-1", "client")
    with pytest.raises(ActivationRefused) as exc:
        store.claim(issued.code, owner, "cli")
    assert exc.value.status == 400
