"""Hostile xiaozhi clients: mutated frames and wrong audio formats get clear errors, never a crash."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toyd.errors import ProtocolError
from toyd.protocol import Listen
from toyd.testing import free_port, running_daemon, wait_for
from toyd_plugins.gateway.xiaozhi import Dialect, is_xiaozhi_hello
from xiaozhi_clients import HELLO, echo_cloud

MAC, TOKEN = "02:00:00:00:00:02", "xz-token-2"
GOOD = [
    {"type": "listen", "state": "start", "mode": "auto"},
    {"type": "listen", "state": "stop"},
    {"type": "listen", "state": "detect", "text": "hi"},
    {"type": "abort", "reason": "wake_word_detected"},
    {"type": "mcp", "payload": {"jsonrpc": "2.0", "id": 1, "result": {}}},
]
JUNK = [None, 7, -1.5, [], {}, True, "x" * 3000, {"a": [1, {"b": None}]}, "realtime", "start"]


def mutate(rng: random.Random, msg: dict) -> str:
    msg = dict(msg)
    key = rng.choice(list(msg))
    if rng.random() < 0.3:
        del msg[key]
    else:
        msg[key] = rng.choice(JUNK)
    text = json.dumps(msg)
    if rng.random() < 0.2:
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice(["", "}", "\x00", "ÿ"]) + text[cut + 1 :]
    return text


def test_mutated_client_messages_are_protocol_errors_or_fine():
    rng = random.Random(5)
    for _ in range(3000):
        frame = mutate(rng, rng.choice(GOOD))
        try:
            msg = Dialect.parse(frame)
        except ProtocolError as exc:
            assert exc.code in ("bad_json", "bad_message") and str(exc)
            continue
        if isinstance(msg, Listen):
            assert msg.mode in ("push_to_talk", "auto") and msg.state in ("start", "stop", "detect")


@settings(max_examples=300, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from(["format", "sample_rate", "channels", "frame_duration"]),
        st.sampled_from(JUNK + [16000, 24000, 44100, 20, 60, 30, "opus", 1, 2]),
    )
)
def test_any_audio_params_give_a_dialect_or_unsupported_audio(params):
    frame = json.dumps({**HELLO, "audio_params": params})
    assert is_xiaozhi_hello(frame)
    try:
        dialect = Dialect.from_hello(frame)
    except ProtocolError as exc:
        assert exc.code == "unsupported_audio"
        return
    assert dialect.sample_rate in (8000, 12000, 16000, 24000, 48000) and dialect.frame_ms in (
        20,
        40,
        60,
    )


def test_toyd_hellos_are_not_taken_for_xiaozhi():
    assert not is_xiaozhi_hello(json.dumps({**HELLO, "device_id": "toy-1"}))
    assert not is_xiaozhi_hello("[")
    assert not is_xiaozhi_hello('"hello"')


async def test_a_hostile_xiaozhi_client_is_closed_cleanly_and_the_gateway_serves_on(tmp_path):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    port = free_port()
    config = echo_cloud(port, MAC, TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}", "Protocol-Version": "1", "Device-Id": MAC}
    rng = random.Random(9)
    async with running_daemon(config, state_dir=tmp_path) as cloud:
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers) as ws:
            await ws.send(json.dumps(HELLO))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
            session = cloud.host.plugins["gateway"].gateway.sessions[MAC]
            await ws.send(json.dumps({"type": "listen", "state": "start", "mode": "manual"}))
            try:
                for _ in range(5):  # garbage as Opus while listening: counted errors, no crash
                    await ws.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
                for _ in range(40):
                    await ws.send(mutate(rng, rng.choice(GOOD)))
                # then plain garbage until the gateway has had enough, paced under the message
                # rate limit (dropped messages are not counted) so a fast machine gets there too
                deadline = asyncio.get_running_loop().time() + 30
                while asyncio.get_running_loop().time() < deadline:
                    await ws.send("{not json")
                    await asyncio.sleep(0.05)
            except ConnectionClosed:
                pass
            await asyncio.wait_for(ws.wait_closed(), 10)  # too many errors: 1008, like a toyd toy
            assert ws.close_code == 1008
        assert session.errors >= 1
        await wait_for(lambda: MAC not in cloud.host.plugins["gateway"].gateway.sessions, timeout=5)
        async with connect(
            f"ws://127.0.0.1:{port}/", additional_headers=headers
        ) as ws:  # serves on
            await ws.send(json.dumps(HELLO))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_every_opus_rate_is_accepted(rate):
    params = {**HELLO["audio_params"], "sample_rate": rate}
    assert Dialect.from_hello(json.dumps({**HELLO, "audio_params": params})).sample_rate == rate
