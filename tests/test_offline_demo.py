"""``toyd demo --offline``: the real CLI, the real model, a cloud that is not there."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from toyd.audio.wav import write_wav
from toyd.testing import espeak_pcm

TOYD = [sys.executable, "-m", "toyd"]


def demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOYD, "demo", "--offline", *args], capture_output=True, text=True, timeout=180, cwd=cwd
    )


@pytest.mark.slow
def test_cached_phrase_from_a_wav_file(tmp_path):
    responses = tmp_path / "phrases.yaml"
    responses.write_text(
        "이름이 뭐야: 나는 토이야!\n엄마 어디 있어: 곧 오실 거야.\n", encoding="utf-8"
    )
    question = tmp_path / "q.wav"
    write_wav(question, espeak_pcm("이름이 뭐야", voice="ko", rate=135))
    run = demo(
        "--wav",
        str(question),
        "--responses",
        str(responses),
        "--json",
        "--out",
        "r.wav",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["source"] == "cache" and result["reply"] == "나는 토이야!"
    assert result["transcript"] == "이름이 뭐야"
    with wave.open(str(tmp_path / "r.wav")) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 8000


@pytest.mark.slow
def test_unknown_question_gets_the_fallback(tmp_path):
    run = demo("--say", "자동차 타고 싶어", "--json", "--out", "r.wav", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["source"] == "fallback"
    assert set(result) >= {"transcript", "source", "reply"}


def test_bad_responses_file_names_file_and_line(tmp_path):
    bad = tmp_path / "phrases.yaml"
    bad.write_text("이름이 뭐야: 나는 토이야!\n  broken: [\n", encoding="utf-8")
    run = demo("--responses", str(bad), "--json", cwd=tmp_path)
    assert run.returncode == 1
    assert f"{bad}:" in run.stderr and "not valid YAML" in run.stderr
    assert "Traceback" not in run.stderr


def test_responses_file_must_map_phrases_to_text(tmp_path):
    bad = tmp_path / "phrases.yaml"
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    run = demo("--responses", str(bad), cwd=tmp_path)
    assert run.returncode == 1 and "expected a mapping of phrase: reply text" in run.stderr


def test_help_teaches_the_offline_options():
    run = subprocess.run([*TOYD, "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    for option in ("--offline", "--vosk-model", "--responses", "--free-form"):
        assert option in run.stdout
