"""End-of-speech detection with the real webrtcvad on espeak-ng speech, alone and in a daemon."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from toyd import State
from toyd.audio.pcm import FRAME_BYTES, frames
from toyd.audio.wav import write_wav
from toyd.events import (
    AudioFrame,
    ButtonPressed,
    ButtonReleased,
    MicInput,
    SpeechEnded,
    SpeechStarted,
    StateChanged,
    WakeWordDetected,
)
from toyd.testing import espeak_pcm, next_event, running_daemon
from toyd_plugins.vad.detector import Decision, EndpointDetector, Mode, new_vad
from toyd_plugins.vad.settings import VadSettings

FRAME_S = 0.02
SENTENCE = "Hello, can you tell me a story about a dragon?"


@functools.cache
def speech(text: str = SENTENCE) -> bytes:
    return espeak_pcm(text)


def bounds(pcm: bytes, threshold: int = 200) -> tuple[float, float]:
    """First and last loud sample of ``pcm``, in seconds."""
    loud = np.nonzero(np.abs(np.frombuffer(pcm, "<i2")) > threshold)[0]
    return loud[0] / 16000, loud[-1] / 16000


def pad(pcm: bytes, before: float, after: float, noise: float = 0.0) -> bytes:
    out = np.frombuffer(bytes(int(before * 16000) * 2) + pcm + bytes(int(after * 16000) * 2), "<i2")
    if noise:
        out = np.clip(out + np.random.default_rng(0).normal(0, noise, len(out)), -32768, 32767)
    return out.astype("<i2").tobytes()


def run(detector: EndpointDetector, pcm: bytes) -> list[Decision]:
    out: list[Decision] = []
    for i, frame in enumerate(frames(pcm)):
        out += detector.feed(frame, i + 1)
    return out


def warmed(settings: VadSettings, room: bytes, mode: Mode = Mode.AUTO) -> EndpointDetector:
    """A detector whose classifier has heard the room before listening began, as in the plugin."""
    vad = new_vad(settings.aggressiveness)
    for frame in frames(room, pad=False):
        vad.is_speech(frame, 16000)
    return EndpointDetector(settings, mode, vad)


@pytest.mark.parametrize("noise", [0.0, 30.0])
def test_silence_ends_the_utterance_on_time(noise: float) -> None:
    settings = VadSettings(silence_timeout=0.8)
    first, last = bounds(speech())
    audio = pad(speech(), 0.5, 3.0, noise)
    decisions = run(warmed(settings, audio[:16000]), audio)
    assert [(d.kind, d.reason) for d in decisions] == [("started", ""), ("ended", "silence")]
    assert abs(decisions[0].at - (0.5 + first)) <= 2 * FRAME_S + 1e-6
    assert abs(decisions[1].at - (0.5 + last + 0.8)) <= 2 * FRAME_S + 1e-6


def test_silence_timeout_is_configurable() -> None:
    _, last = bounds(speech())
    decisions = run(EndpointDetector(VadSettings(silence_timeout=1.5)), pad(speech(), 0.2, 3.0))
    assert (
        decisions[-1].reason == "silence"
        and abs(decisions[-1].at - (0.2 + last + 1.5)) <= 2 * FRAME_S + 1e-6
    )


def test_max_length_cuts_a_long_utterance() -> None:
    long = speech(
        "Once upon a time there was a little dragon who lived in a cave by the sea and loved to sing."
    )
    decisions = run(EndpointDetector(VadSettings(max_length=2.0)), pad(long, 0.1, 0.5))
    assert decisions[-1] == Decision("ended", "max_length", decisions[-1].at)
    assert abs(decisions[-1].at - 2.0) < 1e-6


def test_no_speech_times_out_as_too_short() -> None:
    decisions = run(EndpointDetector(VadSettings(no_speech_timeout=2.0)), bytes(16000 * 2 * 4))
    assert (
        decisions == [Decision("ended", "too_short", decisions[0].at)]
        and abs(decisions[0].at - 2.0) < 1e-6
    )


def test_a_short_blurt_is_too_short() -> None:
    decisions = run(EndpointDetector(VadSettings(min_speech=1.0)), pad(speech("hi"), 0.3, 2.0))
    assert decisions[-1].reason == "too_short"


def test_push_to_talk_ignores_silence_and_ends_on_release() -> None:
    detector = EndpointDetector(VadSettings(silence_timeout=0.5), Mode.PUSH_TO_TALK)
    decisions = run(detector, pad(speech(), 0.2, 2.0))
    assert [d.kind for d in decisions] == ["started"]  # 2 s of silence did not end it
    assert detector.release()[0].reason == "released"
    assert detector.release() == []  # one end per session


def test_dropped_frames_still_count_as_time() -> None:
    detector = EndpointDetector(VadSettings(no_speech_timeout=1.0))
    silence = bytes(FRAME_BYTES)
    assert detector.feed(silence, 100) == []
    assert detector.feed(silence, 148) == []  # 0.98 s
    assert (
        detector.feed(silence, 150)[0].reason == "too_short"
    )  # 49 frames lost, still 1.0 s of audio


# --- the real plugins in a real daemon ---------------------------------------------------------


def wav(path: Path, pcm: bytes) -> str:
    return str(write_wav(path, pcm))


def config(**vad: object) -> dict[str, object]:
    return {
        "role": "device",
        "plugins": ["audio", "vad"],
        "audio": {"backend": "file", "file": {"realtime": False}},
        "vad": {"silence_timeout": 0.5, **vad},
    }


async def test_wake_word_turn_ends_on_silence_on_time(tmp_path: Path, state_dir: Path) -> None:
    utterance = speech()
    _, last = bounds(utterance)
    async with running_daemon(config(), state_dir=state_dir) as app:
        sub = app.bus.subscribe(
            "t", (StateChanged, SpeechStarted, SpeechEnded, AudioFrame), maxsize=100000
        )
        app.bus.publish(WakeWordDetected(model="hey_toy", score=0.9))
        await next_event(sub, StateChanged, where=lambda e: e.new is State.LISTENING)
        app.bus.publish(MicInput(path=wav(tmp_path / "u.wav", utterance)))
        first = await next_event(sub, AudioFrame, where=lambda f: f.pcm != bytes(FRAME_BYTES))
        await next_event(sub, SpeechStarted)
        last_frame = first
        ended = None
        while (
            ended is None
        ):  # the bus keeps publish order: the frame just before SpeechEnded ended it
            event = await next_event(sub, (AudioFrame, SpeechEnded), timeout=10)
            last_frame, ended = (
                (event, None) if isinstance(event, AudioFrame) else (last_frame, event)
            )
        assert ended.reason == "silence"
        lead = next(
            i for i, f in enumerate(frames(utterance)) if f != bytes(FRAME_BYTES)
        )  # silent frames before `first`
        heard_for = (last_frame.seq - first.seq + 1 + lead) * FRAME_S
        assert (
            abs(heard_for - (last + 0.5)) <= 2 * FRAME_S + 1e-6
        )  # 0.5 s silence_timeout after the last word
        thinking = await next_event(sub, StateChanged)
        assert (thinking.old, thinking.new) == (State.LISTENING, State.THINKING)


async def test_push_to_talk_ends_on_release_not_silence(tmp_path: Path, state_dir: Path) -> None:
    utterance = pad(speech(), 0.2, 0.0)
    async with running_daemon(config(), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (StateChanged, SpeechStarted, SpeechEnded), maxsize=10000)
        mic = app.bus.subscribe("mic", (AudioFrame,), maxsize=100000)
        app.bus.publish(ButtonPressed())
        await next_event(sub, StateChanged, where=lambda e: e.new is State.LISTENING)
        app.bus.publish(MicInput(path=wav(tmp_path / "u.wav", utterance)))
        await next_event(sub, SpeechStarted, timeout=10)
        # let the whole utterance and then twice the silence timeout of audio go by
        need = len(utterance) // FRAME_BYTES + int(2 * 0.5 / FRAME_S)
        for _ in range(need):
            await next_event(mic, AudioFrame, timeout=5)
        assert not any(isinstance(e, SpeechEnded) for e in drain(sub))
        app.bus.publish(ButtonReleased(held=4.0))
        assert (await next_event(sub, SpeechEnded)).reason == "released"
        assert (await next_event(sub, StateChanged)).new is State.THINKING


async def test_quick_tap_is_too_short_and_cancels(state_dir: Path) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (StateChanged, SpeechEnded), maxsize=10000)
        app.bus.publish(ButtonPressed())
        app.bus.publish(ButtonReleased(held=0.05))  # released before the state machine even moved
        assert (await next_event(sub, SpeechEnded)).reason == "too_short"
        await next_event(
            sub, StateChanged, where=lambda e: e.new is State.IDLE and e.old is State.LISTENING
        )


def drain(sub) -> list:
    out = []
    while (event := sub.get_nowait()) is not None:
        out.append(event)
    return out
