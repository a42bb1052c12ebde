"""`toyd wakeword --wav`: JSON and table output, config handling and one-line errors, via the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toyd.cli import main
from wakeword_audio import hey_jarvis, other_speech, white_noise, write_wav


def toyd(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a subprocess, bounded."""
    return subprocess.run(
        [sys.executable, "-m", "toyd", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def jarvis_wav(tmp_path_factory) -> Path:
    return write_wav(
        tmp_path_factory.mktemp("wav") / "jarvis.wav", hey_jarvis(sentence="tell me a joke")
    )


def test_json_reports_max_score_and_trigger_times(jarvis_wav: Path) -> None:
    proc = toyd("wakeword", "--wav", str(jarvis_wav), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert list(result) == ["hey_jarvis"]  # the example config's models
    assert set(result["hey_jarvis"]) == {"max_score", "triggers"}
    assert result["hey_jarvis"]["max_score"] >= 0.9
    [when] = result["hey_jarvis"]["triggers"]
    assert 0.5 < when < 2.5  # the word is spoken after 0.5 s of silence


def test_negative_files_do_not_trigger(tmp_path: Path, capsys) -> None:
    for name, pcm in (
        ("speech", other_speech()),
        ("noise", white_noise()),
        ("silence", bytes(64000)),
    ):
        wav = write_wav(tmp_path / f"{name}.wav", pcm)
        assert main(["wakeword", "--wav", str(wav), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["hey_jarvis"]["triggers"] == [], name
        assert result["hey_jarvis"]["max_score"] < 0.5, name


def test_table_and_config_with_several_models(jarvis_wav: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(
        "role: device\nwakeword:\n  models:\n    - name: alexa\n    - name: hey_jarvis\n      threshold: 0.999\n"
    )
    assert main(["wakeword", "--wav", str(jarvis_wav), "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["MODEL", "MAX", "SCORE"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert list(rows) == ["alexa", "hey_jarvis"]
    assert rows["alexa"][-1] == "none" and rows["hey_jarvis"][1] == "1.00"
    # --threshold overrides every model's threshold
    assert (
        main(
            [
                "wakeword",
                "--wav",
                str(jarvis_wav),
                "-c",
                str(config),
                "--threshold",
                "0.5",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["hey_jarvis"]["triggers"]


def test_hook_toyd_cli_commands(jarvis_wav: Path) -> None:
    proc = toyd("wakeword", "--help")
    assert proc.returncode == 0
    assert "What a score is" in proc.stdout and "Tuning the threshold" in proc.stdout
    assert "wakeword" in toyd("--help").stdout


def write_raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.wav", "missing.wav: no such file"),
        (
            lambda d: write_raw(d / "corrupt.wav", b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"),
            "corrupt.wav: not a readable PCM WAV file",
        ),
        (
            lambda d: write_raw(d / "text.wav", b"hello, I am not audio\n" * 20),
            "text.wav: not a readable PCM WAV file",
        ),
        (lambda d: write_wav(d / "empty.wav", b""), "empty.wav: contains no audio"),
        (
            lambda d: write_wav(d / "cd.wav", bytes(44100 * 2), rate=44100),
            "cd.wav: 44100 Hz; the wake word needs 16000 Hz mono 16-bit",
        ),
        (
            lambda d: write_wav(d / "stereo.wav", bytes(64000), channels=2),
            "stereo.wav: 2 channels;",
        ),
        (lambda d: write_wav(d / "8bit.wav", bytes(16000), width=1), "8bit.wav: 8-bit samples;"),
        (lambda d: d, "is a folder"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, make, message: str) -> None:
    proc = toyd("wakeword", "--wav", str(make(tmp_path)))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("toyd: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_bad_config_and_threshold_are_clear(jarvis_wav: Path, tmp_path: Path) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text("wakeword:\n  models:\n    - name: hey_teddy\n")
    proc = toyd("wakeword", "--wav", str(jarvis_wav), "-c", str(config))
    assert proc.returncode == 1
    assert f"{config}:3: wakeword.models[0]: no built-in model named 'hey_teddy'" in proc.stderr
    proc = toyd("wakeword", "--wav", str(jarvis_wav), "--threshold", "7")
    assert proc.returncode == 1 and "--threshold must be between 0 and 1" in proc.stderr


def test_resample_converts_other_formats(tmp_path: Path, capsys) -> None:
    import soxr

    mono = np.frombuffer(hey_jarvis(), dtype="<i2").astype(np.float32) / 32768
    cd = (soxr.resample(mono, 16000, 44100) * 32767).astype("<i2")
    stereo = np.repeat(cd, 2).tobytes()  # L R L R ...
    wav = write_wav(tmp_path / "stereo44.wav", stereo, rate=44100, channels=2)
    assert main(["wakeword", "--wav", str(wav), "--json", "--resample"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hey_jarvis"]["triggers"], result
