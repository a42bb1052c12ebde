"""The real PyAudio path without a sound card: ALSA's user-space file and null PCM plugins.

Each scenario runs a real daemon in a child process whose HOME holds an .asoundrc
defining `toydmic` (reads a raw file) and `toydspk` (writes a raw file). Reading
such a device returns the file bit-exact, without real-time pacing. The devices must
not be called `null`: PortAudio hides that name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toyd.audio.pcm import FRAME_BYTES

HERE = Path(__file__).parent


def asoundrc(home: Path, infile: Path, outfile: Path) -> None:
    (home / ".asoundrc").write_text(
        f'pcm.toydmic {{ type file slave.pcm "toydsink" file "/dev/null" infile "{infile}" format "raw" }}\n'
        f'pcm.toydspk {{ type file slave.pcm "toydsink" file "{outfile}" format "raw" }}\n'
        "pcm.toydsink { type null }\n"
    )


def run_child(
    tmp_path: Path, pyaudio: dict, *, mic: bytes, frames: int, reply: bytes = b"", volume: int = 100
) -> tuple[dict, bytes]:
    """Run the scenario in a fresh interpreter; returns its report and the speaker's raw output."""
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    state.mkdir()
    infile, outfile, reply_file = (
        tmp_path / "mic.raw",
        tmp_path / "speaker.raw",
        tmp_path / "reply.raw",
    )
    infile.write_bytes(mic)
    reply_file.write_bytes(reply)
    asoundrc(home, infile, outfile)
    spec = {
        "state_dir": str(state),
        "frames": frames,
        "reply": str(reply_file) if reply else "",
        "config": {
            "role": "device",
            "plugins": ["audio"],
            "audio": {"backend": "pyaudio", "volume": volume, "pyaudio": pyaudio},
        },
    }
    report = tmp_path / "report.json"
    env = {**os.environ, "HOME": str(home), "JACK_NO_START_SERVER": "1"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "alsa_child.py"), json.dumps(spec), str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = outfile.read_bytes() if outfile.exists() else b""
    return json.loads(report.read_text()), out


def noise(n_bytes: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, n_bytes // 2, dtype=np.int16).astype("<i2").tobytes()


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


def test_pyaudio_capture_and_playback_bit_exact(tmp_path: Path) -> None:
    mic, reply = noise(FRAME_BYTES * 100, 1), noise(FRAME_BYTES * 40, 2)
    report, played = run_child(
        tmp_path,
        {"input_device": "toydmic", "output_device": "spk"},
        mic=mic,
        frames=60,
        reply=reply,
    )
    assert "error" not in report, report["error"]
    assert (
        report["mic"] == "pyaudio:toydmic@16000Hz/1ch"
        and report["speaker"] == "pyaudio:toydspk@16000Hz/1ch"
    )
    for seq, pcm in report["frames"]:  # every frame is the file's frame number seq, bit-exact
        assert bytes.fromhex(pcm) == mic[(seq - 1) * FRAME_BYTES : seq * FRAME_BYTES]
    assert report["finished"] == ["r", False] and report["frames_written"] == 40
    assert report["finished2"] == [
        "r2",
        False,
    ]  # the stream was aborted (barge-in path) and restarted
    assert played == reply + reply


def test_pyaudio_resamples_and_picks_a_channel(tmp_path: Path) -> None:
    left, right = tone(1000, 2.0, 48000), tone(440, 2.0, 48000)
    mic = np.stack([left, right], axis=1).astype("<i2").tobytes()
    reply = tone(300, 1.0, 16000).astype("<i2").tobytes()
    report, played = run_child(
        tmp_path,
        {
            "input_device": "toydmic",
            "output_device": "toydspk",
            "input_rate": 48000,
            "input_channels": 2,
            "input_channel": 1,
            "output_rate": 48000,
        },
        mic=mic,
        frames=60,
        reply=reply,
    )
    assert "error" not in report, report["error"]
    assert report["mic"].endswith("@48000Hz/2ch") and report["speaker"].endswith("@48000Hz/1ch")
    captured = np.frombuffer(b"".join(bytes.fromhex(p) for _, p in report["frames"]), "<i2")
    assert len(captured) == 60 * FRAME_BYTES // 2
    assert abs(peak_hz(captured[1600:], 16000) - 440) < 10  # the right channel, at 16 kHz
    out = np.frombuffer(played, "<i2")[: len(played) // 4]  # the first of the two replies
    assert abs(len(out) - 48000) < 48000 * 0.05  # 1 s at 48 kHz
    assert abs(peak_hz(out, 48000) - 300) < 5


@pytest.mark.parametrize(
    ("pyaudio", "expected"),
    [
        (
            {"input_device": "no-such-card"},
            "no input device whose name contains 'no-such-card'; available: ",
        ),
        (
            {"input_device": "toydmic", "output_device": 99},
            "no output device with index 99; available: ",
        ),
    ],
)
def test_pyaudio_unknown_device_names_the_choices(
    tmp_path: Path, pyaudio: dict, expected: str
) -> None:
    report, _ = run_child(tmp_path, pyaudio, mic=b"", frames=0)
    assert expected in report["error"] and "toydspk" in report["error"]


def test_audio_devices_command_lists_names_and_rates(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "in.raw").write_bytes(
        bytes(64000)
    )  # ALSA cannot open a file device whose infile is missing
    asoundrc(home, tmp_path / "in.raw", tmp_path / "out.raw")
    env = {**os.environ, "HOME": str(home), "JACK_NO_START_SERVER": "1"}
    toyd = [sys.executable, "-m", "toyd", "audio-devices"]
    proc = subprocess.run([*toyd, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    devices = {d["name"]: d for d in json.loads(proc.stdout)}
    assert {"toydmic", "toydspk"} <= set(devices)
    assert (
        16000 in devices["toydmic"]["input_rates"] and 48000 in devices["toydspk"]["output_rates"]
    )
    table = subprocess.run(toyd, env=env, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "toydspk" in table.stdout and "INDEX" in table.stdout
