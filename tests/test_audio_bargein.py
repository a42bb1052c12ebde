"""Barge-in in a real daemon: playback stops within a frame and no stale frame ever plays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toyd import State, Trigger
from toyd.audio.pcm import FRAME_BYTES
from toyd.audio.wav import read_wav
from toyd.events import (
    ButtonPressed,
    PlaybackFinished,
    PlaybackStarted,
    ReplyAudio,
    ReplyAudioEnd,
    SpeechEnded,
    StateChanged,
    StateRequest,
)
from toyd.testing import next_event, running_daemon, wait_for


def frames_of(seed: int, n: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(-20000, 20000, FRAME_BYTES // 2, dtype=np.int16).astype("<i2").tobytes()
        for _ in range(n)
    ]


def config(**audio: object) -> dict[str, object]:
    return {
        "role": "device",
        "plugins": ["audio"],
        "audio": {"backend": "file", "volume": 100, "file": {"output_realtime": True}, **audio},
    }


def send(app, rid: str, frames: list[bytes], *, end: bool = False) -> None:
    for pcm in frames:
        app.bus.publish(ReplyAudio(response_id=rid, pcm=pcm))
    if end:
        app.bus.publish(ReplyAudioEnd(response_id=rid))


async def to_state(app, sub, event, state: State) -> StateChanged:
    app.bus.publish(event)
    return await next_event(sub, StateChanged, where=lambda e: e.new is state)


def count_prefix(played: bytes, frames: list[bytes]) -> int:
    """How many leading frames of ``frames`` ``played`` starts with (checking they are in order)."""
    n = 0
    while n < len(frames) and played[n * FRAME_BYTES : (n + 1) * FRAME_BYTES] == frames[n]:
        n += 1
    return n


async def test_barge_in_while_speaking_stops_within_a_frame_and_drops_stale_frames(
    state_dir: Path,
) -> None:
    a, b = frames_of(1, 150), frames_of(2, 10)
    async with running_daemon(config(), state_dir=state_dir) as app:
        speaker = app.host.plugins["audio"].speaker
        sub = app.bus.subscribe(
            "t", (StateChanged, PlaybackStarted, PlaybackFinished), maxsize=10000
        )
        await to_state(app, sub, ButtonPressed(), State.LISTENING)
        await to_state(app, sub, SpeechEnded(reason="silence"), State.THINKING)
        send(app, "A", a[:100])
        assert (await next_event(sub, PlaybackStarted)).response_id == "A"
        await next_event(sub, StateChanged, where=lambda e: e.new is State.SPEAKING)
        await wait_for(lambda: speaker.frames_written >= 5)
        changed = await to_state(app, sub, ButtonPressed(), State.LISTENING)  # barge-in
        written_when_seen = speaker.frames_written
        finished = await next_event(sub, PlaybackFinished)
        assert finished.response_id == "A" and finished.interrupted
        assert speaker.stopped_at >= changed.at
        send(app, "A", a[100:], end=True)  # stale audio still in flight from the cloud
        await to_state(app, sub, SpeechEnded(reason="silence"), State.THINKING)
        send(app, "A", a[100:110])  # even later, during the next turn
        send(app, "B", b, end=True)
        assert (await next_event(sub, PlaybackStarted)).response_id == "B"
        done = await next_event(sub, PlaybackFinished)
        assert done.response_id == "B" and not done.interrupted
        assert app.state is State.IDLE or (await next_event(sub, StateChanged)).new is State.IDLE
    played = read_wav(state_dir / "speaker.wav")
    k = count_prefix(played, a)
    assert 5 <= k <= written_when_seen + 1  # stopped within one frame of the state change
    assert played[k * FRAME_BYTES :] == b"".join(b)  # then only B: not one stale frame of A


async def test_barge_in_while_thinking_drops_the_buffered_reply(state_dir: Path) -> None:
    a, b = frames_of(3, 20), frames_of(4, 5)
    async with running_daemon(config(prebuffer_ms=1000), state_dir=state_dir) as app:
        sub = app.bus.subscribe(
            "t", (StateChanged, PlaybackStarted, PlaybackFinished), maxsize=10000
        )
        await to_state(app, sub, ButtonPressed(), State.LISTENING)
        await to_state(app, sub, SpeechEnded(), State.THINKING)
        send(app, "A", a[:10])  # still filling the jitter buffer
        await to_state(app, sub, ButtonPressed(), State.LISTENING)
        send(app, "A", a[10:], end=True)
        await to_state(app, sub, SpeechEnded(), State.THINKING)
        send(app, "B", b, end=True)
        started = await next_event(sub, PlaybackStarted)
        assert started.response_id == "B"
        await next_event(sub, PlaybackFinished, where=lambda e: e.response_id == "B")
    assert read_wav(state_dir / "speaker.wav") == b"".join(b)


async def test_sleep_and_mute_stop_playback_and_refuse_replies(state_dir: Path) -> None:
    a, late = frames_of(5, 100), frames_of(6, 5)
    async with running_daemon(config(), state_dir=state_dir) as app:
        speaker = app.host.plugins["audio"].speaker
        sub = app.bus.subscribe(
            "t", (StateChanged, PlaybackStarted, PlaybackFinished), maxsize=10000
        )
        send(app, "announce", a)  # IDLE: an announcement
        await next_event(sub, StateChanged, where=lambda e: e.new is State.SPEAKING)
        await wait_for(lambda: speaker.frames_written >= 3)
        await to_state(app, sub, StateRequest(trigger=Trigger.SLEEP), State.SLEEPING)
        finished = await next_event(sub, PlaybackFinished)
        assert finished.interrupted and finished.response_id == "announce"
        played_before = speaker.frames_written
        send(app, "late", late, end=True)  # nothing plays while sleeping
        await to_state(app, sub, StateRequest(trigger=Trigger.MUTE), State.MUTED)
        send(app, "late2", late, end=True)
        await to_state(app, sub, StateRequest(trigger=Trigger.UNMUTE), State.IDLE)
        assert speaker.frames_written <= played_before + 1
        send(app, "awake", late[:2], end=True)  # awake again: new replies play
        assert (
            await next_event(sub, PlaybackStarted)
        ).response_id == "awake"  # never 'late' or 'late2'
        await next_event(sub, PlaybackFinished, where=lambda e: e.response_id == "awake")
    played = read_wav(state_dir / "speaker.wav")
    k = count_prefix(played, a)
    assert 3 <= k < len(a) and played[k * FRAME_BYTES :] == b"".join(late[:2])
