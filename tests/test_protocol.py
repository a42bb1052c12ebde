"""Protocol v1 messages and frames: round trips, strict fields, error codes, limits."""

from __future__ import annotations

import json

import pytest

from toyd.errors import ProtocolError
from toyd.protocol import (
    DOWNLINK,
    UPLINK,
    Abort,
    Alert,
    AudioParams,
    Error,
    Hello,
    Listen,
    Llm,
    Ping,
    Playback,
    Pong,
    Say,
    ServerHello,
    Stt,
    Tts,
    check_uplink,
    codes,
    encode,
    limits,
    pack_audio,
    parse,
    to_dict,
    unpack_audio,
)

UP = [
    Hello(
        device_id="toy-1",
        firmware="toyd 0.1.0",
        features={"say": True},
        persona="dragon",
        language="en",
    ),
    Listen(state="start", mode="push_to_talk", turn_id="t1", persona="dragon"),
    Listen(state="stop", turn_id="t1"),
    Listen(state="detect", mode="wake_word", text="hey bear"),
    Abort(reason="barge_in", turn_id="t1", response_id=3),
    Playback(response_id=3, interrupted=True),
    Say(text="Bed time!", request_id="r1"),
    Ping(id=1),
]
DOWN = [
    ServerHello(session_id="s1", config_version=4, limits=limits.as_dict()),
    Listen(state="stop", turn_id="t1", reason="max_length"),
    Stt(text="hello", turn_id="t1"),
    Llm(text="Hi ", turn_id="t1", response_id=3),
    Llm(final=True, turn_id="t1", response_id=3),
    Tts(state="start", response_id=3, turn_id="t1", cache_key="abc"),
    Tts(state="sentence_start", response_id=3, text="Hi there."),
    Tts(state="stop", response_id=3, reason="done", latency={"stt_ms": 12.5}),
    Tts(state="stop", response_id=3, reason="done", cache_key="abc"),
    Alert(category="violence", severity="high", message="[redacted]", action="redirect"),
    Error(code=codes.BAD_JSON, message="not JSON", ref="listen"),
    Pong(id=1),
    Ping(),
]


@pytest.mark.parametrize("msg", UP, ids=lambda m: f"up-{m.type}")
def test_uplink_messages_round_trip(msg):
    assert parse(encode(msg), "up") == msg


@pytest.mark.parametrize("msg", DOWN, ids=lambda m: f"down-{m.type}")
def test_downlink_messages_round_trip(msg):
    assert parse(encode(msg), "down") == msg


def test_every_type_is_covered_and_named_like_xiaozhi():
    assert set(UPLINK) == {m.type for m in UP}
    assert set(DOWNLINK) == {m.type for m in DOWN}
    assert {"hello", "listen", "abort"} <= set(UPLINK) and {
        "hello",
        "stt",
        "llm",
        "tts",
        "alert",
    } <= set(DOWNLINK)


def test_none_fields_are_left_out_and_unknown_fields_ignored():
    assert to_dict(Listen(state="stop")) == {
        "type": "listen",
        "state": "stop",
        "mode": "auto",
        "turn_id": "",
    }
    xiaozhi_style = {
        "type": "listen",
        "state": "start",
        "mode": "auto",
        "session_id": "abc",
        "transport": "websocket",
    }
    assert parse(json.dumps(xiaozhi_style), "up") == Listen(state="start", mode="auto")


def test_hello_defaults_to_the_v1_audio_params():
    hello = parse('{"type": "hello", "version": 1}', "up")
    assert hello.audio_params == AudioParams("opus", 16000, 1, 20)


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{", codes.BAD_JSON),
        ("[1, 2]", codes.BAD_JSON),
        ('"hello"', codes.BAD_JSON),
        ('{"no": "type"}', codes.UNKNOWN_TYPE),
        ('{"type": 5}', codes.UNKNOWN_TYPE),
        ('{"type": "stt", "text": "x"}', codes.UNKNOWN_TYPE),  # a downlink type sent up
        ('{"type": "listen"}', codes.BAD_MESSAGE),
        ('{"type": "listen", "state": "start", "mode": "manual"}', codes.BAD_MESSAGE),
        ('{"type": "abort", "response_id": "three"}', codes.BAD_MESSAGE),
        ('{"type": "hello", "audio_params": {"format": "pcm"}}', codes.BAD_MESSAGE),
        ('{"type": "say", "text": "' + "a" * (limits.MAX_TEXT_CHARS + 1) + '"}', codes.TOO_LARGE),
        ('{"type": "say", "text": "' + "a" * limits.MAX_TEXT_FRAME + '"}', codes.TOO_LARGE),
        ("[" * 100000, codes.TOO_LARGE),
    ],
)
def test_bad_frames_raise_with_a_code(frame, code):
    with pytest.raises(ProtocolError) as info:
        parse(frame, "up")
    assert info.value.code == code and str(info.value)


def test_bad_message_names_the_field():
    with pytest.raises(
        ProtocolError, match=r"listen message: mode: not an allowed value .*'manual'"
    ):
        parse('{"type": "listen", "state": "start", "mode": "manual"}', "up")


def test_downlink_audio_header_round_trip():
    frame = pack_audio(7, 42, b"\x01\x02\x03")
    assert len(frame) == 12 + 3 and frame[:2] == b"\x01\x01"
    packet = unpack_audio(frame)
    assert (packet.response_id, packet.seq, packet.payload) == (7, 42, b"\x01\x02\x03")


@pytest.mark.parametrize(
    "frame, code",
    [
        (b"", codes.BAD_AUDIO),
        (pack_audio(1, 0, b"")[:12], codes.BAD_AUDIO),
        (b"\x02\x01" + bytes(10) + b"x", codes.BAD_AUDIO),
        (b"\x01\x07" + bytes(10) + b"x", codes.BAD_AUDIO),
        (pack_audio(1, 0, bytes(limits.MAX_AUDIO_FRAME + 1)), codes.TOO_LARGE),
    ],
)
def test_bad_downlink_frames(frame, code):
    with pytest.raises(ProtocolError) as info:
        unpack_audio(frame)
    assert info.value.code == code


def test_uplink_frames_are_bounded():
    assert check_uplink(b"\x01" * 60) == b"\x01" * 60
    for frame in (b"", bytes(limits.MAX_AUDIO_FRAME + 1)):
        with pytest.raises(ProtocolError):
            check_uplink(frame)
