"""A full turn toy ↔ cloud over a real loopback WebSocket, with the echo stand-in chain."""

from __future__ import annotations

from linkkit import cloud_and_toy, play_reply, speak_turn, speech
from toyd import State
from toyd import events as ev
from toyd.audio import FRAME_BYTES
from toyd.testing import next_event


async def test_full_turn_echoes_the_child(tmp_path):
    pcm = speech()
    async with cloud_and_toy(tmp_path) as (cloud, toy, sub):
        cloud_sub = cloud.bus.subscribe("test", (ev.TurnLatency,))
        await speak_turn(toy, sub, pcm)
        transcript = await next_event(sub, ev.Transcript)
        assert (transcript.text, transcript.final, transcript.source) == ("echo", True, "cloud")
        text = await next_event(sub, ev.ResponseText)
        assert text.delta.strip() == "Echo."
        response_id, frames = await play_reply(toy, sub)
        assert all(len(f) == FRAME_BYTES for f in frames)
        # the echo is the child's audio: as many frames came back as went up
        assert abs(len(frames) - -(-len(pcm) // FRAME_BYTES)) <= 1
        latency = await next_event(sub, ev.TurnLatency)  # published with the end of the reply
        await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.IDLE)
        assert latency.end_of_speech_to_first_audio_ms > 0
        assert latency.overhead_ms <= latency.end_of_speech_to_first_audio_ms
        assert (await next_event(cloud_sub, ev.TurnLatency)).response_id == latency.response_id


async def test_the_token_never_reaches_the_logs_even_at_debug(tmp_path, caplog):
    import logging

    from linkkit import TOKEN

    caplog.set_level(logging.DEBUG)
    async with cloud_and_toy(tmp_path) as (cloud, toy, sub):
        await speak_turn(toy, sub, speech())
        await play_reply(toy, sub)
    assert caplog.records  # debug logging was on
    assert not [r for r in caplog.records if TOKEN in r.getMessage()]


async def test_the_daemons_log_level_holds_for_the_websocket_logs(tmp_path, caplog):
    import logging

    caplog.set_level(logging.WARNING)
    async with cloud_and_toy(tmp_path):
        pass
    assert not [r for r in caplog.records if r.levelno < logging.WARNING]
