"""Hostile input to the xiaozhi plugin: mutated frames, wrong sample rates, MCP garbage."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkkit import play_reply, speak_turn, speech
from toyd import events as ev
from toyd.testing import next_event, running_daemon, wait_for
from toyd_plugins.xiaozhi.mcp import INVALID_PARAMS, INVALID_REQUEST, McpTools
from toyd_plugins.xiaozhi.wire import XiaozhiProtocolError, check_audio_params, parse_server
from xiaozhi_server import Script, xiaozhi_server

GOOD = [
    {
        "type": "hello",
        "transport": "websocket",
        "session_id": "s",
        "audio_params": {
            "format": "opus",
            "sample_rate": 24000,
            "channels": 1,
            "frame_duration": 60,
        },
    },
    {"type": "stt", "text": "hi"},
    {"type": "llm", "emotion": "happy", "text": "x"},
    {"type": "tts", "state": "sentence_start", "text": "Hi."},
    {"type": "mcp", "payload": {"jsonrpc": "2.0"}},
    {"type": "alert", "status": "s", "message": "m", "emotion": "sad"},
    {"type": "system", "command": "reboot"},
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def mutate(rng: random.Random, msg: dict) -> str:
    """Drop, retype or replace one field, or damage the bytes of the text."""
    msg = dict(msg)
    key = rng.choice(list(msg))
    roll = rng.random()
    if roll < 0.3:
        del msg[key]
    elif roll < 0.6:
        msg[key] = rng.choice(
            [None, 7, 1.5, [], {}, True, "x" * 5000, {"nested": [1, {"a": None}]}]
        )
    text = json.dumps(msg)
    if roll >= 0.8:
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice(["", "\x00", "}", "\ud800", "ÿ"]) + text[cut + 1 :]
    return text


def test_mutated_messages_give_clear_errors_only():
    rng = random.Random(13)
    for _ in range(3000):
        frame = mutate(rng, rng.choice(GOOD))
        try:
            msg = parse_server(frame)
        except XiaozhiProtocolError as exc:
            assert str(exc)
            continue
        for key in ("text", "emotion", "command", "status", "message"):
            if key in msg and msg["type"] in ("stt", "llm", "tts", "alert", "system"):
                assert isinstance(msg[key], str)


@pytest.mark.parametrize(
    "params, problem",
    [
        (
            {"format": "opus", "sample_rate": 44100, "frame_duration": 60},
            "sample_rate 44100 is not an Opus rate",
        ),
        ({"format": "opus", "sample_rate": 22050, "frame_duration": 60}, "sample_rate 22050"),
        ({"format": "opus", "sample_rate": True}, "sample_rate True"),
        ({"format": "pcm", "sample_rate": 16000}, "format 'pcm' is not supported"),
        ({"format": "opus", "sample_rate": 16000, "frame_duration": 30}, "frame_duration 30 ms"),
        ({"format": "opus", "sample_rate": 16000, "channels": 6}, "channels 6"),
        ("16000", "audio_params must be an object"),
    ],
)
def test_wrong_audio_params_are_named(params, problem):
    with pytest.raises(XiaozhiProtocolError, match=problem):
        check_audio_params(params, "hello")


@settings(max_examples=300, deadline=None)
@given(payload=JSON)
def test_mcp_garbage_gets_a_json_rpc_error_or_nothing(payload):
    tools = McpTools(lambda event: None, dict)
    reply = tools.handle(payload)
    if reply is not None:
        assert reply["jsonrpc"] == "2.0" and ("error" in reply or "result" in reply)
        json.dumps(reply)


@pytest.mark.parametrize(
    "payload, code",
    [
        ([1, 2], INVALID_REQUEST),
        ({"jsonrpc": "1.0", "id": 1, "method": "initialize"}, INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": [1], "method": "tools/list"}, INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": []}, INVALID_PARAMS),
        (
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "self.audio_speaker.set_volume", "arguments": {"volume": 1e9}},
            },
            INVALID_PARAMS,
        ),
        (
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "self.led.set_color", "arguments": {"r": "red", "g": 0, "b": 0}},
            },
            INVALID_PARAMS,
        ),
        (
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "self.audio_speaker.set_volume", "arguments": "loud"},
            },
            INVALID_PARAMS,
        ),
    ],
)
def test_mcp_bad_requests_name_the_problem(payload, code):
    published = []
    reply = McpTools(published.append, dict).handle(payload)
    assert reply is not None and reply["error"]["code"] == code and reply["error"]["message"]
    assert published == []  # nothing happened to the toy


async def test_the_toy_survives_a_hostile_server_and_still_answers(tmp_path):
    rng = random.Random(7)
    async with xiaozhi_server(Script()) as server:
        config = {
            "role": "device",
            "device_id": "toy-1",
            "plugins": ["xiaozhi"],
            "xiaozhi": {
                "url": f"ws://127.0.0.1:{server.port}",
                "token": "xz-token",
                "backoff_initial": 0.05,
                "backoff_max": 0.5,
            },
        }
        async with running_daemon(config, state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test", maxsize=100000)
            await next_event(sub, ev.CloudOnline, timeout=10)
            plugin = toy.host.plugins["xiaozhi"]
            await speak_turn(
                toy, sub, speech()
            )  # hostile frames arrive while the toy waits for a reply
            for _ in range(200):
                frame = mutate(rng, rng.choice(GOOD[1:]))
                await server.send(
                    frame.encode("utf-8", "replace").decode()
                )  # a text frame is UTF-8
            await server.send("[" * 100000)  # deep nesting
            await server.send({"type": "tts", "state": "start"})  # a real reply after all that
            for size in (0, 1, 3, 200, 4000):  # with binary garbage as Opus in it
                await server.send(bytes(rng.randrange(256) for _ in range(size)))
            await server.send(b"\xff" * 1000)  # code 3, 63 frames: never valid
            await server.send(server.encode_frame())
            await server.send({"type": "tts", "state": "stop"})
            response_id, pcm = await play_reply(toy, sub)
            assert pcm and plugin.bad_frames >= 1
            # the link stayed up through it all, and the next turn is an ordinary one
            assert plugin.link.connects == 1
            await speak_turn(toy, sub, speech())
            await play_reply(toy, sub)


async def test_a_hello_with_a_wrong_sample_rate_is_refused_clearly(tmp_path, caplog):
    from xiaozhi_server import XiaozhiServer

    original = XiaozhiServer._serve

    async def bad_hello(self, conn):  # type: ignore[no-untyped-def]
        await conn.recv()
        await conn.send(
            json.dumps(
                {
                    "type": "hello",
                    "transport": "websocket",
                    "audio_params": {"format": "opus", "sample_rate": 44100},
                }
            )
        )
        await conn.wait_closed()

    XiaozhiServer._serve = bad_hello  # type: ignore[method-assign]
    try:
        async with xiaozhi_server() as server:
            config = {
                "role": "device",
                "device_id": "toy-1",
                "plugins": ["xiaozhi"],
                "xiaozhi": {"url": f"ws://127.0.0.1:{server.port}", "token": "xz-token"},
            }
            async with running_daemon(config, state_dir=tmp_path / "toy") as toy:
                sub = toy.bus.subscribe("test")
                offline = await next_event(sub, ev.CloudOffline, timeout=5)
                assert "sample_rate 44100 is not an Opus rate" in offline.reason
                await wait_for(
                    lambda: any("xiaozhi hello failed" in r.getMessage() for r in caplog.records)
                )
    finally:
        XiaozhiServer._serve = original  # type: ignore[method-assign]
