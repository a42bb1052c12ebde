"""The whole toy in simulation: file microphone → wake word → state → LED mock pins; button presses.

One test runs the real ``toyd device --simulate`` command in a subprocess.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from example_configs import private_toy_config
from toyd import State, gpio
from toyd.events import (
    AudioFrame,
    ButtonReleased,
    SpeechEnded,
    SpeechStarted,
    StateChanged,
    WakeWordDetected,
)
from toyd.testing import espeak_pcm, next_event, running_daemon, wait_for
from wakeword_audio import SILENCE, hey_jarvis, write_wav

BLUE = (0.0, 0.0, 0.6)  # the example config's listening look at brightness 0.6
SENTENCE = "can you tell me a story about a dragon"


def device_config(mic_input: str) -> dict[str, Any]:
    return {
        "role": "device",
        "plugins": ["statusfile", "audio", "vad", "button", "led", "wakeword"],
        "audio": {"file": {"input": mic_input, "realtime": True}},
        "button": {"bounce_time": None},
    }


def led() -> tuple[float, ...]:
    factory = gpio.current()
    return tuple(round(float(factory.pin(p).state), 3) for p in (22, 23, 24))


@pytest.fixture(scope="module")
def wake_wav(tmp_path_factory) -> Path:
    pcm = hey_jarvis(sentence=SENTENCE) + SILENCE * 4
    return write_wav(tmp_path_factory.mktemp("sim") / "hey_jarvis.wav", pcm)


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory) -> Path:
    pcm = SILENCE + espeak_pcm(SENTENCE) + SILENCE * 4
    return write_wav(tmp_path_factory.mktemp("sim") / "sentence.wav", pcm)


def is_violet(rgb: tuple[float, ...]) -> bool:
    """The thinking look (violet #8000ff, pulsing): green off, red about half of blue."""
    red, green, blue = rgb
    return green == 0 and abs(red - blue * 128 / 255) < 0.01


async def test_wake_word_from_the_file_microphone(state_dir, wake_wav: Path) -> None:
    async with running_daemon(device_config(str(wake_wav)), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", (StateChanged, WakeWordDetected))
        hit = await next_event(sub, WakeWordDetected, timeout=20)
        assert hit.model == "hey_jarvis"
        change = await next_event(sub, StateChanged, timeout=5)
        assert (change.old, change.new) == (State.IDLE, State.LISTENING)
        await wait_for(lambda: led() == BLUE, timeout=5)
        # the sentence after the wake word, then silence: the VAD ends the turn
        change = await next_event(sub, StateChanged, timeout=15)
        assert (change.old, change.new) == (State.LISTENING, State.THINKING)
        await wait_for(lambda: is_violet(led()) and led()[2] > 0, timeout=5)


async def test_button_push_to_talk_from_a_mock_pin(state_dir, sentence_wav: Path) -> None:
    async with running_daemon(device_config(str(sentence_wav)), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", (StateChanged, SpeechStarted, SpeechEnded, ButtonReleased))
        frames = app.bus.subscribe("frames", (AudioFrame,), maxsize=1000)
        gpio.current().pin(17).drive_low()
        change = await next_event(sub, StateChanged, timeout=5)
        assert (change.old, change.new) == (State.IDLE, State.LISTENING)
        await wait_for(lambda: led() == BLUE, timeout=5)
        await next_event(sub, SpeechStarted, timeout=10)
        for _ in range(50):  # hold on while the child talks for another second of audio
            await next_event(frames, AudioFrame, timeout=5)
        gpio.current().pin(17).drive_high()
        assert (await next_event(sub, SpeechEnded, timeout=5)).reason == "released"
        change = await next_event(sub, StateChanged, timeout=5)
        assert (change.old, change.new) == (State.LISTENING, State.THINKING)
        await wait_for(lambda: is_violet(led()) and led()[2] > 0, timeout=5)


def poll_log(log: Path, want: str, deadline: float, proc: subprocess.Popen[str]) -> bool:
    """Whether the daemon's log shows ``want`` before the deadline (states can pass faster than a poll)."""
    while time.monotonic() < deadline and proc.poll() is None:
        if want in log.read_text():
            return True
        time.sleep(0.05)
    return want in log.read_text()


def test_toyd_device_simulate_command(tmp_path: Path, wake_wav: Path, mosquitto: int) -> None:
    """The real CLI with the example config, the WAV fed to its file microphone.

    Its own broker and device id: whatever the machine's broker holds (a retained config
    with quiet hours for demo-toy) cannot put this toy to sleep, at any time of day.
    """
    config = private_toy_config(
        tmp_path / "toyd.yaml", mqtt_port=mosquitto, mic_input=str(wake_wav)
    )
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "toyd.log"  # a file, not a pipe: debug logging must never block the daemon
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "toyd",
                "device",
                "--simulate",
                "-c",
                str(config),
                "--state-dir",
                str(state),
                "--log-level",
                "debug",
                # no cloud runs: the offline answer would load the Korean Vosk model,
                # a minute on a busy machine, and the process waits for it at exit
                "--disable",
                "offline",
                "--disable",
                "vosk_stt",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    try:
        deadline = time.monotonic() + 40
        assert poll_log(log, "state idle -> listening", deadline, proc)
        assert poll_log(log, "state listening -> thinking", deadline, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = log.read_text()
    assert proc.returncode == 0, (proc.returncode, err[-2000:])
    assert "state idle -> listening (wake_word:hey_jarvis)" in err
    # blue at the 0.6 brightness cap; "(offline)" when no cloud runs for the example config's cloud link
    assert re.search(r"led listening( \(offline\))?: solid #000099", err), err[-2000:]
    assert "state listening -> thinking" in err
    assert re.search(r"led thinking( \(offline\))?: pulse", err), err[-2000:]


async def test_button_press_while_speaking_stops_playback(state_dir) -> None:
    """Barge-in through the real chain: mock pin → button → conversation → audio player."""
    from toyd.events import ButtonPressed, PlaybackFinished, PlaybackStarted, ReplyAudio

    async with running_daemon(device_config(""), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", (StateChanged, PlaybackStarted, PlaybackFinished))
        app.bus.publish(ButtonPressed())
        app.bus.publish(SpeechEnded())
        await next_event(sub, StateChanged, where=lambda e: e.new is State.THINKING)
        reply = espeak_pcm("once upon a time there was a very long story that never seemed to end")
        for i in range(0, len(reply) - 640, 640):
            app.bus.publish(ReplyAudio(response_id="story", pcm=reply[i : i + 640]))
        await next_event(sub, PlaybackStarted, timeout=5)
        await next_event(sub, StateChanged, where=lambda e: e.new is State.SPEAKING)
        gpio.current().pin(17).drive_low()
        change = await next_event(sub, StateChanged, timeout=5)
        assert (change.old, change.new, change.cause) == (
            State.SPEAKING,
            State.LISTENING,
            "ButtonPressed",
        )
        finished = await next_event(sub, PlaybackFinished, timeout=5)
        assert finished.response_id == "story" and finished.interrupted
        await wait_for(lambda: led() == BLUE, timeout=5)
        gpio.current().pin(17).drive_high()
