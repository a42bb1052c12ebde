"""The gateway over real loopback sockets: handshake, auth, bad frames, limits, barge-in, say, health."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from linkkit import TOKEN, RawToy, cloud, speech
from toyd.protocol import HEADER_SIZE, codes, limits, unpack_audio
from toyd.testing import wait_for


async def test_full_turn_at_protocol_level(tmp_path):
    async with cloud(tmp_path) as (app, port):
        toy = await RawToy(port).connect()
        assert toy.hello["session_id"] and toy.hello["version"] == 1
        assert toy.hello["audio_params"] == {
            "format": "opus",
            "sample_rate": 16000,
            "channels": 1,
            "frame_duration": 20,
        }
        await toy.talk(speech())
        messages, audio = await toy.response()
        kinds = [(m["type"], m.get("state")) for m in messages]
        assert (
            kinds[0] == ("stt", None)
            and messages[0]["text"] == "echo"
            and messages[0]["turn_id"] == "t1"
        )
        assert (
            ("tts", "start") in kinds
            and ("tts", "sentence_start") in kinds
            and kinds[-1] == ("tts", "stop")
        )
        start = next(m for m in messages if m["type"] == "tts" and m["state"] == "start")
        assert all(unpack_audio(f).response_id == start["response_id"] for f in audio)
        assert [unpack_audio(f).seq for f in audio] == list(range(len(audio)))
        stop = messages[-1]
        assert stop["reason"] == "done" and stop["latency"]["end_of_speech_to_first_audio_ms"] > 0
        await toy.send({"type": "playback", "state": "done", "response_id": start["response_id"]})
        await toy.send({"type": "ping", "id": 7})
        assert (await toy.expect("pong"))["id"] == 7
        await toy.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-token", "Device-Id": "toy-1"},
        {"Authorization": f"Bearer {TOKEN}", "Device-Id": "toy-unknown"},
        {"Device-Id": "toy-1"},
        {"Authorization": TOKEN, "Device-Id": "toy-1"},
    ],
)
async def test_bad_credentials_are_refused_without_detail(tmp_path, headers):
    async with cloud(tmp_path) as (app, port):
        with pytest.raises(InvalidStatus) as info:
            await connect(
                f"ws://127.0.0.1:{port}", additional_headers=headers, proxy=None, open_timeout=5
            )
        assert info.value.response.status_code == 401
        assert info.value.response.body == b"Unauthorized\n"  # nothing about which part was wrong


async def test_health_endpoint_reports_sessions(tmp_path):
    async with cloud(tmp_path) as (app, port):
        toy = await RawToy(port).connect()

        def get() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:  # noqa: S310
                assert resp.headers["Content-Type"] == "application/json"
                return json.loads(resp.read())

        health = await asyncio.to_thread(get)
        assert health["status"] == "ok" and health["sessions"] == 1 and health["uptime_s"] >= 0
        assert set(health["frame_ms"]) == {"p50", "p95", "max"} and "loop_lag_ms" in health
        await toy.close()


async def test_bad_frames_get_errors_and_other_toys_are_served(tmp_path):
    tokens = {"toy-1": TOKEN, "toy-2": "token-of-toy-2"}
    async with cloud(tmp_path, tokens=tokens) as (app, port):
        bad = await RawToy(port).connect()
        good = await RawToy(port, "toy-2", "token-of-toy-2").connect()
        await bad.send("{not json")
        assert (await bad.expect("error"))["code"] == codes.BAD_JSON
        await bad.send({"type": "dance"})
        assert (await bad.expect("error"))["code"] == codes.UNKNOWN_TYPE
        await bad.send({"type": "listen", "state": "sideways"})
        error = await bad.expect("error")
        assert error["code"] == codes.BAD_MESSAGE and "state" in error["message"]
        await bad.send(json.dumps({"type": "say", "text": "x" * (limits.MAX_TEXT_FRAME + 10)}))
        assert (await bad.expect("error"))["code"] == codes.TOO_LARGE
        await bad.send(b"\x01\x02\x03")  # audio while not listening
        error = await bad.expect("error")
        assert (error["code"], error["ref"]) == (codes.UNEXPECTED_AUDIO, "audio")
        await bad.send({"type": "listen", "state": "start", "turn_id": "b"})
        await bad.send(b"\xff" * (limits.MAX_AUDIO_FRAME + 1))
        assert (await bad.expect("error"))["code"] == codes.TOO_LARGE
        await bad.send(b"\xff\xff\xff")  # not an Opus packet
        assert (await bad.expect("error"))["code"] == codes.BAD_AUDIO
        await bad.send({"type": "hello", "version": 1})
        error = await bad.expect("error")
        assert (error["code"], error["ref"]) == (codes.BAD_MESSAGE, "hello")
        # the misbehaving toy is still connected, and the other toy gets a full answer meanwhile
        await good.talk(speech())
        messages, audio = await good.response()
        assert messages[-1]["reason"] == "done" and audio
        await bad.send({"type": "ping"})
        await bad.expect("pong")
        # a frame over the hard WebSocket limit closes that one connection (1009), cleanly
        await bad.send(b"\x00" * (limits.MAX_WS_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await bad.expect("never")
        assert closed.value.rcvd.code == codes.CLOSE_TOO_BIG
        await good.send({"type": "ping"})
        await good.expect("pong")
        await good.close()


async def test_messages_before_hello_and_hello_timeout(tmp_path):
    async with cloud(tmp_path, hello_timeout=0.5) as (app, port):
        toy = await RawToy(port).connect(hello=False)
        await toy.send({"type": "listen", "state": "start"})
        assert (await toy.expect("error"))["code"] == codes.NOT_READY
        await toy.send({"type": "hello", "version": 2})
        assert (await toy.expect("error"))["code"] == codes.UNSUPPORTED_VERSION
        await toy.send({"type": "hello", "version": 1, "audio_params": {"sample_rate": 8000}})
        assert (await toy.expect("error"))["code"] == codes.UNSUPPORTED_AUDIO
        with pytest.raises(ConnectionClosed) as closed:
            await toy.expect("never", timeout=5)
        assert closed.value.rcvd.code == codes.CLOSE_POLICY


async def test_too_many_errors_close_the_connection(tmp_path):
    async with cloud(tmp_path) as (app, port):
        toy = await RawToy(port).connect()
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(limits.MAX_ERRORS + 5):
                await toy.send(b"\x00")
                await toy.expect("error")
        assert closed.value.rcvd.code == codes.CLOSE_POLICY


async def test_uplink_rate_limit(tmp_path):
    async with cloud(tmp_path) as (app, port):
        toy = await RawToy(port).connect()
        from toyd.audio.opus import OpusEncoder

        packet = OpusEncoder().encode(bytes(640))
        await toy.send({"type": "listen", "state": "start"})
        for _ in range(limits.UPLINK_BURST * 3):
            await toy.send(packet)
        assert (await toy.expect("error"))["code"] == codes.RATE_LIMITED
        await toy.close()


async def test_new_connection_replaces_the_old_session(tmp_path):
    async with cloud(tmp_path) as (app, port):
        first = await RawToy(port).connect()
        second = await RawToy(port).connect()
        with pytest.raises(ConnectionClosed) as closed:
            await first.expect("never")
        assert closed.value.rcvd.code == codes.CLOSE_REPLACED
        assert second.hello["session_id"] != first.hello["session_id"]
        await second.send({"type": "ping"})
        await second.expect("pong")
        await second.close()


async def test_abort_mid_reply_stops_the_response(tmp_path):
    long_speech = speech("once upon a time there was a little bear who loved honey very much")
    async with cloud(tmp_path, downlink_lead_ms=0) as (app, port):
        toy = await RawToy(port).connect()
        await toy.talk(long_speech)
        start = await toy.expect("tts", state="start")
        got = 0
        while got < 5:
            frame = await toy.recv()
            got += isinstance(frame, bytes)
        await toy.send({"type": "abort", "reason": "barge_in", "response_id": start["response_id"]})
        # frames already in flight may still arrive; then the aborted stop, then nothing of it
        while True:
            frame = await toy.recv()
            if (
                isinstance(frame, dict)
                and frame.get("type") == "tts"
                and frame.get("state") == "stop"
            ):
                assert frame["reason"] == "aborted"
                break
        total_frames = -(-len(long_speech) // 640)
        with pytest.raises(TimeoutError):
            extra = await toy.recv(timeout=0.3)
            pytest.fail(f"got a frame after the aborted stop: {extra!r}")
        assert got < total_frames
        # the session is idle again and answers a new turn with a new response id
        await toy.talk(speech(), turn_id="t2")
        messages, audio = await toy.response()
        new = next(m for m in messages if m["type"] == "tts" and m["state"] == "start")
        assert new["response_id"] > start["response_id"] and audio
        await toy.close()


async def test_say_speaks_a_parents_text(tmp_path):
    async with cloud(tmp_path, plugins=("gateway", "echochain")) as (app, port):
        toy = await RawToy(port).connect()
        await toy.send({"type": "say", "text": "Time for bed!", "request_id": "r1"})
        start = await toy.expect("tts", state="start")
        assert start["kind"] == "say" and start["cache_key"]
        sentence = await toy.expect("tts", state="sentence_start")
        assert sentence["text"] == "Time for bed!"
        await toy.close()


async def test_binary_header_is_twelve_bytes():
    assert HEADER_SIZE == 12


async def test_a_disconnect_mid_turn_cancels_the_work_and_leaks_nothing(tmp_path):
    async with cloud(tmp_path) as (app, port):
        gateway = app.host.plugins["gateway"].gateway
        baseline = asyncio.all_tasks()
        toy = await RawToy(port).connect()
        await toy.talk(speech())
        await toy.expect("tts", state="start")
        await toy.close()
        await wait_for(lambda: not gateway.sessions)
        # (the predicate runs in wait_for's own polling task)
        await wait_for(
            lambda: not asyncio.all_tasks() - baseline - {asyncio.current_task()}, timeout=5
        )


async def test_an_utterance_over_the_limit_is_cut_and_answered(tmp_path):
    async with cloud(tmp_path, max_listen_seconds=1.0) as (app, port):
        toy = await RawToy(port).connect()
        assert (
            toy.hello["limits"]["max_listen_seconds"] == 1.0
        )  # the configured limit, not the protocol default
        pcm = speech("once upon a time there was a little bear who loved honey")  # > 2 s
        await toy.talk(pcm)
        messages, audio = await toy.response()
        # the toy is told to stop listening first, then (for older toys) the error, once
        assert messages[0] == {
            "type": "listen",
            "state": "stop",
            "mode": "auto",
            "turn_id": "t1",
            "reason": "max_length",
        }
        assert _codes(messages) == [
            codes.AUDIO_TOO_LONG
        ]  # once; the frames after the cut are dropped quietly
        assert (
            messages[-1]["reason"] == "done" and 45 <= len(audio) <= 55
        )  # 1 s was heard and echoed
        session = app.host.plugins["gateway"].gateway.sessions["toy-1"]
        assert session.errors == 0, (
            "neither the cut nor the audio in flight after it counts against the toy"
        )
        assert session.uplink.frames_after_cut > 0
        await toy.close()


async def test_audio_after_the_toy_acknowledged_a_cut_is_unexpected_again(tmp_path):
    """The grace for audio in flight ends with the toy's own listen stop (nothing of the turn can follow it)."""
    from toyd.audio import frames
    from toyd.audio.opus import OpusEncoder

    async with cloud(tmp_path, max_listen_seconds=1.0) as (app, port):
        toy = await RawToy(port).connect()
        encoder = OpusEncoder()
        packets = [
            encoder.encode(f) for f in frames(speech("once upon a time there was a little bear"))
        ]
        await toy.send({"type": "listen", "state": "start", "mode": "auto", "turn_id": "t1"})
        for i, packet in enumerate(packets[:60]):  # 1.2 s: the cut happens at frame 50
            await toy.send(packet)
            if i % 20 == 19:
                await asyncio.sleep(0.2)  # stay under the uplink rate limit
        assert (await toy.expect("listen"))["reason"] == "max_length"
        await toy.send(packets[60])  # in flight when the stop arrived: dropped quietly
        await toy.send(
            {"type": "listen", "state": "stop", "turn_id": "t1"}
        )  # the toy's acknowledgement
        await toy.send(packets[61])
        error = await toy.expect("error", code=codes.UNEXPECTED_AUDIO)
        assert error["ref"] == "audio"
        session = app.host.plugins["gateway"].gateway.sessions["toy-1"]
        assert session.uplink.frames_after_cut == 11 and session.errors == 1
        await toy.close()


def _codes(messages: list[dict]) -> list[str]:
    return [m["code"] for m in messages if m["type"] == "error"]


async def test_reconfigure_applies_tokens_live_and_asks_a_restart_for_the_port(tmp_path):
    from linkkit import cloud_config
    from toyd.config import validate
    from toyd.registry import Registry

    async with cloud(tmp_path) as (app, port):
        with pytest.raises(InvalidStatus):
            await RawToy(port, "toy-2", "token-of-toy-2").connect()
        registry = Registry()
        changed = cloud_config(port, tokens={"toy-1": TOKEN, "toy-2": "token-of-toy-2"})
        new = validate(
            {**changed, "state_dir": str(tmp_path / "cloud")},
            registry.schema,
            known_plugins=registry.names,
        )
        assert await app.apply_config(new) == []
        toy = await RawToy(port, "toy-2", "token-of-toy-2").connect()
        await toy.close()
        moved = validate(
            {**cloud_config(port + 1), "state_dir": str(tmp_path / "cloud")},
            registry.schema,
            known_plugins=registry.names,
        )
        assert await app.apply_config(moved) == ["gateway"]


async def test_downlink_is_paced_to_real_time_plus_the_lead(tmp_path):
    import time

    async with cloud(tmp_path, downlink_lead_ms=100) as (app, port):
        toy = await RawToy(port).connect()
        pcm = speech()
        await toy.talk(pcm)
        # the reply cannot start before "listen stop" (the end of talk()), so the span from here
        # is never shorter than the gateway's: a loaded machine can only lengthen it
        started = time.monotonic()
        await toy.expect("tts", state="start")
        arrivals = []
        while True:
            frame = await toy.recv()
            if isinstance(frame, bytes):
                arrivals.append(time.monotonic())
            elif frame.get("type") == "tts" and frame.get("state") == "stop":
                break
        audio_s = len(arrivals) * 0.02
        # not flooded: the last frame cannot arrive before its play time minus the lead
        assert arrivals[-1] - started >= audio_s - 0.02 - 0.1 - 0.01
        await toy.close()


async def test_audio_in_flight_after_a_cut_is_forgiven_only_for_the_grace_window(tmp_path):
    """A toy that never acknowledges the cut keeps sending: quiet for CUT_GRACE, then errors again."""
    import time

    from toyd.audio import frames
    from toyd.audio.opus import OpusEncoder

    async with cloud(tmp_path, max_listen_seconds=1.0) as (app, port):
        toy = await RawToy(port).connect()
        encoder = OpusEncoder()
        packets = [
            encoder.encode(f) for f in frames(speech("once upon a time there was a little bear"))
        ]
        await toy.send({"type": "listen", "state": "start", "mode": "auto", "turn_id": "t1"})
        for i, packet in enumerate(packets[:50]):
            await toy.send(packet)
            if i % 20 == 19:
                await asyncio.sleep(0.2)
        await toy.expect("listen")
        cut_at = time.monotonic()
        session = app.host.plugins["gateway"].gateway.sessions["toy-1"]

        async def keep_sending() -> float:
            while True:  # one frame every 100 ms, as a toy that ignores the stop would
                await toy.send(packets[50])
                try:
                    await toy.expect("error", timeout=0.1, code=codes.UNEXPECTED_AUDIO)
                    return time.monotonic() - cut_at
                except TimeoutError:
                    pass

        elapsed = await asyncio.wait_for(keep_sending(), limits.CUT_GRACE + 5)
        assert (
            elapsed >= limits.CUT_GRACE - 0.1 and session.uplink.frames_after_cut >= 10
        )  # (the stop took a moment to arrive)
        assert session.errors == 1
        await toy.close()
