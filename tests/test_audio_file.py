"""The audio plugin's file backend in a real daemon: WAV in → frames out, replies → WAV out."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from toyd.audio.pcm import FRAME_BYTES
from toyd.audio.wav import read_wav
from toyd.events import (
    AudioFrame,
    MicInput,
    PlaybackFinished,
    PlaybackStarted,
    ReplyAudio,
    ReplyAudioEnd,
    VolumeSet,
)
from toyd.testing import next_event, running_daemon, wait_for


def write_wav(
    path: Path, pcm: bytes, *, rate: int = 16000, channels: int = 1, width: int = 2
) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def ramp(n_frames: int, seed: int = 1) -> bytes:
    """Distinct, non-silent PCM so a single wrong sample is visible."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(-20000, 20000, n_frames * FRAME_BYTES // 2, dtype=np.int16)
        .astype("<i2")
        .tobytes()
    )


def config(**file: object) -> dict[str, object]:
    return {"role": "device", "plugins": ["audio"], "audio": {"backend": "file", "file": file}}


async def collect_frames(sub, count: int, timeout: float = 10.0) -> list[AudioFrame]:
    frames: list[AudioFrame] = []
    while len(frames) < count:
        frames.append(await next_event(sub, AudioFrame, timeout))
    return frames


async def test_wav_in_frames_out_bit_exact(tmp_path: Path, state_dir: Path) -> None:
    pcm = ramp(25)
    wav = write_wav(tmp_path / "in.wav", pcm)
    async with running_daemon(config(input=str(wav), realtime=False), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (AudioFrame,), maxsize=100000)
        app.bus.publish(MicInput(path=str(wav)))  # restart from the top, now that we listen
        frames = await collect_frames(sub, 400)
    data = b"".join(f.pcm for f in frames)
    assert all(len(f.pcm) == FRAME_BYTES for f in frames)
    assert pcm in data  # the whole file, bit-exact, in order
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_any_wav_shape_is_converted(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    stereo = np.stack([tone, tone], axis=1).astype("<i2").tobytes()
    out = read_wav(write_wav(tmp_path / "s.wav", stereo, rate=44100, channels=2))
    assert abs(len(out) - 32000) <= 4
    got = np.frombuffer(out, "<i2")
    assert 6000 < np.abs(got).max() <= 10001
    eight = read_wav(write_wav(tmp_path / "8.wav", bytes([128, 255, 0]) * 100, rate=16000, width=1))
    assert np.frombuffer(eight, "<i2")[:3].tolist() == [0, 127 << 8, -128 << 8]


async def test_realtime_mic_is_paced(tmp_path: Path, state_dir: Path) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (AudioFrame,), maxsize=1000)
        first = await next_event(sub, AudioFrame)
        frames = await collect_frames(sub, 25)
    elapsed = frames[-1].at - first.at
    assert 0.4 < elapsed < 3.0, elapsed  # 25 frames of 20 ms, paced (not instant)
    assert all(f.pcm == bytes(FRAME_BYTES) for f in frames)  # no input: silence


async def test_corrupt_wav_gives_clear_error_and_keeps_running(
    tmp_path: Path, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    good = write_wav(tmp_path / "good.wav", ramp(5, seed=3))
    async with running_daemon(config(input=str(bad), realtime=False), state_dir=state_dir) as app:
        assert "bad.wav: not a readable PCM WAV file" in caplog.text
        sub = app.bus.subscribe("t", (AudioFrame,), maxsize=100000)
        await collect_frames(sub, 3)  # silence instead, daemon alive
        app.bus.publish(MicInput(path=str(tmp_path / "missing.wav")))
        await wait_for(lambda: "missing.wav: no such file" in caplog.text)
        app.bus.publish(MicInput(path=str(good)))
        await until_heard(sub, read_wav(good))


async def until_heard(sub, pcm: bytes, timeout: float = 10.0) -> None:
    """Collect microphone frames until ``pcm`` appears in them, bounded."""
    heard = bytearray()

    async def listen() -> None:
        while pcm not in heard:
            heard.extend((await next_event(sub, AudioFrame, timeout)).pcm)

    await asyncio.wait_for(listen(), timeout)


async def play(app, rid: str, pcm: bytes, *, end: bool = True) -> None:
    for chunk in (pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)):
        app.bus.publish(ReplyAudio(response_id=rid, pcm=chunk))
    if end:
        app.bus.publish(ReplyAudioEnd(response_id=rid))


async def test_reply_audio_to_wav_bit_exact_at_volume_100(state_dir: Path) -> None:
    pcm = ramp(30, seed=7)
    cfg = config(output_realtime=False)
    cfg["audio"]["volume"] = 100  # type: ignore[index]
    async with running_daemon(cfg, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (PlaybackStarted, PlaybackFinished))
        await play(app, "r1", pcm)
        started = await next_event(sub, PlaybackStarted)
        finished = await next_event(sub, PlaybackFinished)
    assert started.response_id == finished.response_id == "r1" and not finished.interrupted
    assert read_wav(state_dir / "speaker.wav") == pcm


async def test_volume_scales_and_changes_live(state_dir: Path) -> None:
    pcm = np.full(FRAME_BYTES // 2 * 3, 10000, "<i2").tobytes()
    cfg = config(output_realtime=False)
    cfg["audio"]["volume"] = 50  # type: ignore[index]
    async with running_daemon(cfg, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (PlaybackFinished,))
        await play(app, "a", pcm)
        await next_event(sub, PlaybackFinished)
        app.bus.publish(VolumeSet(level=0))
        await play(app, "b", pcm)
        await next_event(sub, PlaybackFinished)
        app.bus.publish(VolumeSet(level=100))
        await play(app, "c", pcm)
        await next_event(sub, PlaybackFinished)
    out = np.frombuffer(read_wav(state_dir / "speaker.wav"), "<i2")
    n = len(pcm) // 2
    assert set(out[:n].tolist()) == {2500}  # 50 % → gain 0.25 (perceptual curve)
    assert set(out[n : 2 * n].tolist()) == {0}
    assert set(out[2 * n :].tolist()) == {10000}


async def test_stalled_reply_finishes(state_dir: Path) -> None:
    cfg = config(output_realtime=False)
    cfg["audio"]["stall_timeout"] = 0.3  # type: ignore[index]
    async with running_daemon(cfg, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (PlaybackStarted, PlaybackFinished))
        await play(
            app, "s", ramp(1), end=False
        )  # one frame, below the prebuffer, and no end marker
        await next_event(sub, PlaybackStarted)
        finished = await next_event(sub, PlaybackFinished, timeout=3)
        assert finished.response_id == "s" and not finished.interrupted
        await asyncio.sleep(0)
    assert len(read_wav(state_dir / "speaker.wav")) == FRAME_BYTES
