"""Microphone inputs of the file device (raw files, FIFOs, looping), muting, the jitter buffer, bad WAVs."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toyd import State, Trigger
from toyd.audio.pcm import FRAME_BYTES
from toyd.audio.wav import read_wav
from toyd.errors import AudioFileError
from toyd.events import (
    AudioFrame,
    MicInput,
    PlaybackStarted,
    ReplyAudio,
    StateChanged,
    StateRequest,
)
from toyd.testing import next_event, running_daemon, wait_for
from toyd_plugins.audio.player import apply_volume


def noise(n_frames: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(-20000, 20000, n_frames * FRAME_BYTES // 2, dtype=np.int16)
        .astype("<i2")
        .tobytes()
    )


def config(**file: object) -> dict[str, object]:
    return {"role": "device", "plugins": ["audio"], "audio": {"backend": "file", "file": file}}


async def heard(sub, want: bytes, timeout: float = 10.0) -> bytes:
    """Microphone audio until ``want`` appears in it (bounded)."""
    got = bytearray()

    async def listen() -> None:
        while want not in got:
            got.extend((await next_event(sub, AudioFrame, timeout)).pcm)

    await asyncio.wait_for(listen(), timeout)
    return bytes(got)


async def test_raw_file_input(tmp_path: Path, state_dir: Path) -> None:
    pcm = noise(10, 1)
    (tmp_path / "in.raw").write_bytes(pcm)
    async with running_daemon(config(realtime=False), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (AudioFrame,), maxsize=100000)
        app.bus.publish(MicInput(path=str(tmp_path / "in.raw")))
        await heard(sub, pcm)


async def test_fifo_input_streams_without_blocking(tmp_path: Path, state_dir: Path) -> None:
    fifo = tmp_path / "mic"
    os.mkfifo(fifo)
    first, second = noise(5, 2), noise(5, 3)
    async with running_daemon(config(input=str(fifo)), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (AudioFrame,), maxsize=100000)
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, first)
            await heard(sub, first)
            os.write(fd, second[:1000])  # a partial frame waits for the rest; silence meanwhile
            os.write(fd, second[1000:])
            await heard(sub, second)
        finally:
            os.close(fd)


async def test_fifo_audio_that_waits_is_caught_up_not_paced(
    tmp_path: Path, state_dir: Path
) -> None:
    """A pipe's writer is the clock: 5 s queued at once reach the bus at once, not 20 ms a frame."""
    fifo = tmp_path / "mic"
    os.mkfifo(fifo)
    backlog = noise(250, 5)
    async with running_daemon(config(input=str(fifo)), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (AudioFrame,), maxsize=100000)
        loop = asyncio.get_running_loop()

        def write_all() -> None:
            with open(fifo, "wb") as pipe:  # blocks until the microphone has read most of it
                pipe.write(backlog)

        started = loop.time()
        writer = asyncio.create_task(asyncio.to_thread(write_all))
        got = await heard(sub, backlog)
        await writer
        # paced, this would take the audio's own 5 s; caught up it takes a few loop turns
        assert loop.time() - started < 2.5
        assert backlog in got, "no silence in the middle of waiting audio"


async def test_loop_replays_the_input(tmp_path: Path, state_dir: Path) -> None:
    pcm = noise(3, 4)
    (tmp_path / "in.raw").write_bytes(pcm)
    async with running_daemon(
        config(input=str(tmp_path / "in.raw"), at_end="loop", realtime=False), state_dir=state_dir
    ) as app:
        sub = app.bus.subscribe("t", (AudioFrame,), maxsize=100000)
        await heard(sub, pcm * 3)
        app.bus.publish(MicInput(path=""))  # back to silence
        await next_event(sub, AudioFrame, where=lambda f: f.pcm == bytes(FRAME_BYTES))


async def test_muted_toy_publishes_no_audio(state_dir: Path) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        plugin = app.host.plugins["audio"]
        sub = app.bus.subscribe("t", (AudioFrame, StateChanged), maxsize=100000)
        await next_event(sub, AudioFrame)
        app.bus.publish(StateRequest(trigger=Trigger.MUTE))
        await next_event(sub, StateChanged, where=lambda e: e.new is State.MUTED)
        await wait_for(lambda: plugin._muted)
        last = None
        while (
            event := sub.get_nowait()
        ) is not None:  # captured before the mute reached the microphone
            last = event if isinstance(event, AudioFrame) else last
        with pytest.raises(TimeoutError):  # 10 frames of time pass: not one frame is published
            await next_event(sub, AudioFrame, timeout=0.2)
        app.bus.publish(StateRequest(trigger=Trigger.UNMUTE))
        after = await next_event(sub, AudioFrame)
        assert (
            last is None or after.seq - last.seq >= 10
        )  # the muted frames were withheld, time still counted


async def test_jitter_buffer_waits_for_the_prebuffer(state_dir: Path) -> None:
    cfg = config(output_realtime=False)
    cfg["audio"]["prebuffer_ms"] = 60  # type: ignore[index]
    async with running_daemon(cfg, state_dir=state_dir) as app:
        plugin = app.host.plugins["audio"]
        sub = app.bus.subscribe("t", (PlaybackStarted,))
        frames = [noise(1, i) for i in range(3)]
        for pcm in frames[:2]:
            app.bus.publish(ReplyAudio(response_id="r", pcm=pcm))
        await wait_for(
            lambda: (
                len(plugin.player._responses.get("r", ()).frames) == 2
                if "r" in plugin.player._responses
                else False
            )
        )
        await asyncio.sleep(0.05)  # give a wrongly eager player every chance to start
        assert plugin.speaker.frames_written == 0 and sub.get_nowait() is None
        app.bus.publish(ReplyAudio(response_id="r", pcm=frames[2]))
        assert (await next_event(sub, PlaybackStarted)).response_id == "r"


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=200),
    channels=st.integers(0, 3),
    width=st.integers(0, 5),
    rate=st.integers(0, 50000),
)
def test_any_bytes_give_pcm_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, channels: int, width: int, rate: int
) -> None:
    path = tmp_path_factory.mktemp("wav") / "x.wav"
    fmt = struct.pack(
        "<HHIIHH", 1, channels, rate, rate * channels * width, channels * width, width * 8
    )
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36 + len(body))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(body))
        + body
    )
    try:
        pcm = read_wav(path)
    except AudioFileError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert len(pcm) % 2 == 0


async def test_underrun_refills_the_jitter_buffer_before_going_on(state_dir: Path) -> None:
    cfg = config(output_realtime=False)
    cfg["audio"]["prebuffer_ms"] = 60  # type: ignore[index]
    async with running_daemon(cfg, state_dir=state_dir) as app:
        plugin = app.host.plugins["audio"]
        frames = [noise(1, 10 + i) for i in range(6)]
        for pcm in frames[:3]:
            app.bus.publish(ReplyAudio(response_id="r", pcm=pcm))
        await wait_for(
            lambda: plugin.speaker.frames_written == 3
        )  # played, then the stream ran dry
        await wait_for(lambda: plugin.player.stats.underruns == 1)
        app.bus.publish(ReplyAudio(response_id="r", pcm=frames[3]))
        await wait_for(lambda: len(plugin.player._responses["r"].frames) == 1)
        await asyncio.sleep(0.05)  # one frame is below the prebuffer: it must wait
        assert plugin.speaker.frames_written == 3
        for pcm in frames[4:]:
            app.bus.publish(ReplyAudio(response_id="r", pcm=pcm))
        await wait_for(lambda: plugin.speaker.frames_written == 6)
    assert read_wav(state_dir / "speaker.wav") == apply_volume(b"".join(frames), 70)
