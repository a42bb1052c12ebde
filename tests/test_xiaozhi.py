"""The ``xiaozhi`` device plugin against a xiaozhi server on loopback (the stand-in from the protocol doc)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from linkkit import play_reply, speak_turn, speech
from toyd import State
from toyd import events as ev
from toyd.audio import FRAME_BYTES, frames
from toyd.testing import next_event, running_daemon, wait_for
from xiaozhi_server import DOWN_MS, DOWN_RATE, Script, xiaozhi_server


def toy_config(port: int, **section):  # type: ignore[no-untyped-def]
    return {
        "role": "device",
        "device_id": "toy-1",
        "plugins": ["xiaozhi"],
        "xiaozhi": {
            "url": f"ws://127.0.0.1:{port}/xiaozhi/v1/",
            "token": "xz-token",
            "backoff_initial": 0.05,
            "backoff_max": 0.5,
            **section,
        },
    }


async def toy_on(server, tmp_path, **section):  # type: ignore[no-untyped-def]
    ctx = running_daemon(toy_config(server.port, **section), state_dir=tmp_path / "toy")
    toy = await ctx.__aenter__()
    sub = toy.bus.subscribe("test", maxsize=100000)
    await next_event(sub, ev.CloudOnline, timeout=10)
    return ctx, toy, sub


async def test_a_manual_turn_end_to_end(tmp_path):
    async with xiaozhi_server() as server:
        ctx, toy, sub = await toy_on(server, tmp_path)
        try:
            pcm = speech()
            await speak_turn(toy, sub, pcm)
            heard = await next_event(sub, ev.Transcript)
            assert (heard.text, heard.source) == ("tell me a story", "cloud")
            look = await next_event(sub, ev.LedLook)
            assert look.rgb == (255, 200, 0) and look.source == "xiaozhi:happy"
            response_id, reply = await play_reply(toy, sub)
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.IDLE)
        finally:
            await ctx.__aexit__(None, None, None)
        seen = server.seen
        h = seen.headers
        assert h["Authorization"] == "Bearer xz-token" and h["Protocol-Version"] == "1"
        assert h["Device-Id"].startswith("02:") and uuid.UUID(h["Client-Id"])
        assert seen.hellos[0]["audio_params"] == {
            "format": "opus",
            "sample_rate": 16000,
            "channels": 1,
            "frame_duration": 60,
        }
        assert seen.hellos[0]["features"]["mcp"] is True
        assert [m["state"] for m in seen.of("listen")] == ["start", "stop"]
        assert seen.of("listen")[0]["mode"] == "manual" and seen.of("listen")[0]["session_id"]
        # the uplink is 60 ms Opus frames of the child's speech
        assert abs(seen.uplink_frames - len(pcm) // (FRAME_BYTES * 3)) <= 1
        # the downlink: raw 24 kHz / 60 ms Opus, decoded to 20 ms frames at 16 kHz, all of it
        assert all(len(f) == FRAME_BYTES for f in reply)
        assert len(reply) == seen.sent_audio * DOWN_MS // 20
        assert response_id.startswith("xiaozhi:")


async def test_reply_sentences_and_latency_reach_the_bus(tmp_path):
    async with xiaozhi_server(Script(sentences=("Hello there.", "Bye now."))) as server:
        ctx, toy, sub = await toy_on(server, tmp_path)
        try:
            await speak_turn(toy, sub, speech())
            first = await next_event(sub, ev.ResponseText)
            second = await next_event(sub, ev.ResponseText, where=lambda e: e.delta != "")
            assert (first.delta.strip(), second.delta.strip()) == ("Hello there.", "Bye now.")
            await play_reply(toy, sub)
            latency = await next_event(sub, ev.TurnLatency)
            assert latency.end_of_speech_to_first_audio_ms > 0
        finally:
            await ctx.__aexit__(None, None, None)


async def test_auto_mode_the_server_ends_the_utterance(tmp_path):
    async with xiaozhi_server(Script(quiet_frames=5)) as server:
        ctx, toy, sub = await toy_on(server, tmp_path, listen_mode="auto", frame_duration=20)
        try:
            toy.bus.publish(ev.ButtonPressed())
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
            quiet = bytes(FRAME_BYTES * 30)
            for seq, frame in enumerate(frames(speech() + quiet)):
                toy.bus.publish(ev.AudioFrame(pcm=frame, seq=seq))
                await asyncio.sleep(0.005)
            ended = await next_event(sub, ev.SpeechEnded, timeout=10)
            assert ended.reason == "server_vad"  # nobody on the toy said the child stopped
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.THINKING)
            await play_reply(toy, sub)
        finally:
            await ctx.__aexit__(None, None, None)
        assert server.seen.of("listen")[0]["mode"] == "auto"
        assert (
            server.seen.of("listen", state="stop") == []
        )  # the server ended it: no stop from the toy


async def test_barge_in_aborts_and_late_audio_is_dropped(tmp_path):
    async with xiaozhi_server(
        Script(sentences=("A long story begins here and goes on.",) * 4, pace=0.03)
    ) as server:
        ctx, toy, sub = await toy_on(server, tmp_path)
        plugin = toy.host.plugins["xiaozhi"]
        try:
            await speak_turn(toy, sub, speech())
            first = await next_event(sub, ev.ReplyAudio, timeout=10)
            toy.bus.publish(ev.PlaybackStarted(response_id=first.response_id))
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.SPEAKING)
            toy.bus.publish(ev.ButtonPressed())  # the child talks over the toy
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
            await wait_for(lambda: server.seen.aborted, timeout=5)
            stale = plugin.stale_frames
            await server.send(server.encode_frame())  # a frame still in flight after the abort
            await wait_for(lambda: plugin.stale_frames > stale, timeout=5)
            after = _pending(sub)
        finally:
            await ctx.__aexit__(None, None, None)
        abort = server.seen.of("abort")[0]
        assert abort["reason"] == "wake_word_detected" and abort["session_id"]
        assert server.seen.sent_audio < 4 * 20  # the server stopped early
        assert not [e for e in after if isinstance(e, ev.ReplyAudio)]


def _pending(sub):  # type: ignore[no-untyped-def]
    out = []
    while (event := sub.get_nowait()) is not None:
        out.append(event)
    return out


async def test_reply_timeout_hands_the_turn_to_a_local_backend(tmp_path):
    async with xiaozhi_server(Script(silent=True)) as server:
        ctx, toy, sub = await toy_on(server, tmp_path, reply_timeout=0.5)
        try:
            await speak_turn(toy, sub, speech())
            timeout = await next_event(sub, ev.ReplyTimeout, timeout=5)
            assert timeout.reason == "reply_timeout"
            await wait_for(lambda: server.seen.of("abort", reason="reply_timeout"), timeout=5)
        finally:
            await ctx.__aexit__(None, None, None)


async def test_the_servers_idle_close_reconnects_quietly(tmp_path):
    async with xiaozhi_server() as server:
        ctx, toy, sub = await toy_on(server, tmp_path)
        try:
            await server.close_client(1000)
            await next_event(sub, ev.CloudOnline, timeout=5)
            assert not [e for e in _pending(sub) if isinstance(e, ev.CloudOffline)]
            await speak_turn(toy, sub, speech())  # and the next turn works
            await play_reply(toy, sub)
        finally:
            await ctx.__aexit__(None, None, None)
        assert len(server.seen.hellos) == 2


async def test_a_refused_token_is_reported_offline(tmp_path):
    async with xiaozhi_server(Script(token="other")) as server:
        async with running_daemon(toy_config(server.port), state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test")
            offline = await next_event(sub, ev.CloudOffline, timeout=5)
            assert offline.reason == "refused: HTTP 401" and offline.backend == "xiaozhi"


async def test_mcp_tools_volume_and_led(tmp_path):
    calls = (
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "self.audio_speaker.set_volume", "arguments": {"volume": 30}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "self.led.set_color", "arguments": {"r": 0, "g": 0, "b": 255}},
        },
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "self.get_device_status"},
        },
        {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "self.reboot"}},
        {"jsonrpc": "2.0", "id": 7, "method": "resources/list"},
    )
    async with xiaozhi_server(Script(mcp_calls=calls)) as server:
        async with running_daemon(toy_config(server.port), state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test")
            assert (await next_event(sub, ev.VolumeSet, timeout=5)).level == 30
            assert (await next_event(sub, ev.LedLook)).rgb == (0, 0, 255)
            replies = await wait_for(
                lambda: len(server.seen.mcp_replies) >= 7 and server.seen.mcp_replies
            )
    by_id = {r["id"]: r for r in replies}
    assert by_id[1]["result"]["serverInfo"]["name"] == "toyd"
    names = [t["name"] for t in by_id[2]["result"]["tools"]]
    assert {"self.audio_speaker.set_volume", "self.led.set_color", "self.get_device_status"} <= set(
        names
    )
    assert by_id[3]["result"]["isError"] is False
    assert '"volume": 30' in by_id[5]["result"]["content"][0]["text"]
    assert by_id[6]["error"]["code"] == -32602  # no reboot for the AI
    assert by_id[7]["error"]["code"] == -32601
    assert sorted(by_id) == [1, 2, 3, 4, 5, 6, 7]  # the notification got no answer


@pytest.mark.parametrize("rate", [DOWN_RATE])
def test_the_stand_in_sends_what_the_real_server_sends(rate):
    assert (rate, DOWN_MS) == (24000, 60)
