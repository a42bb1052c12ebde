"""The whole toy in simulation: file microphone → wake word → state → LED mock pins; button presses.

One test runs the real ``toyd device --simulate`` command in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from toyd import State
from toyd.events import ButtonPressed, ButtonReleased, StateChanged, WakeWordDetected
from toyd.testing import next_event, running_daemon, wait_for
from toyd_plugins import gpio_support
from wakeword_audio import SILENCE, hey_jarvis, write_wav

BLUE = (0.0, 0.0, 0.6)  # the example config's listening look at brightness 0.6


def device_config(mic_input: str) -> dict[str, Any]:
    return {
        "role": "device",
        "plugins": ["statusfile", "audio", "button", "led", "wakeword"],
        "audio": {"file": {"input": mic_input, "realtime": True}},
        "button": {"bounce_time": None},
    }


def led() -> tuple[float, ...]:
    factory = gpio_support.current()
    return tuple(round(float(factory.pin(p).state), 3) for p in (22, 23, 24))


@pytest.fixture(scope="module")
def wake_wav(tmp_path_factory) -> Path:
    pcm = hey_jarvis(sentence="can you tell me a story about a dragon") + SILENCE * 4
    return write_wav(tmp_path_factory.mktemp("sim") / "hey_jarvis.wav", pcm)


async def test_wake_word_from_the_file_microphone(state_dir, wake_wav: Path) -> None:
    async with running_daemon(device_config(str(wake_wav)), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", (StateChanged, WakeWordDetected))
        hit = await next_event(sub, WakeWordDetected, timeout=20)
        assert hit.model == "hey_jarvis"
        change = await next_event(sub, StateChanged, timeout=5)
        assert (change.old, change.new) == (State.IDLE, State.LISTENING)
        await wait_for(lambda: led() == BLUE, timeout=5)


async def test_button_press_from_a_mock_pin(state_dir) -> None:
    async with running_daemon(device_config(""), state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", (StateChanged, ButtonPressed, ButtonReleased))
        gpio_support.current().pin(17).drive_low()
        change = await next_event(sub, StateChanged, timeout=5)
        assert (change.old, change.new) == (State.IDLE, State.LISTENING)
        await wait_for(lambda: led() == BLUE, timeout=5)
        gpio_support.current().pin(17).drive_high()
        await next_event(sub, ButtonReleased, timeout=5)


def test_toyd_device_simulate_command(tmp_path: Path, wake_wav: Path) -> None:
    """The real CLI with the example config, the WAV fed to its file microphone."""
    example = (Path(__file__).parent.parent / "config" / "toyd.yaml").read_text()
    config = tmp_path / "toyd.yaml"
    config.write_text(example.replace('input: ""', f"input: {json.dumps(str(wake_wav))}"))
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "toyd", "device", "--simulate", "-c", str(config),
                             "--state-dir", str(state), "--log-level", "debug"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        status = state / "status.json"
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                seen = json.loads(status.read_text()).get("state")
            except (OSError, ValueError):
                seen = None
            if seen == "listening":
                break
            time.sleep(0.05)
        assert seen == "listening", f"state {seen!r}, exit {proc.poll()}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "state idle -> listening (wake_word:hey_jarvis)" in err
    assert "led listening: solid #000099" in err  # blue at the 0.6 brightness cap
