"""The real Wyoming servers in the chain: wyoming-faster-whisper 3.8.1 and wyoming-piper 2.5.2.

A spoken question goes toy → gateway → Wyoming STT → LLM (stand-in) → Wyoming TTS (Piper,
en_US-joe-medium, 22.05 kHz resampled to 16 kHz) → toy, and Whisper transcribes what the
toy received back to the words the LLM sent. The servers run as their own processes from a
private venv (toyd.testing.wyoming_servers); Piper is restarted mid-test.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from test_ai_e2e import words
from toyd.errors import BackendError
from toyd.testing import espeak_pcm, free_port
from toyd.testing.standin import StandIn
from toyd.testing.wyoming_servers import piper_command, run_server, servers_venv, wyoming_whisper
from toyd.turn import Turn
from toyd_plugins.demo.loopback import Loopback
from toyd_plugins.stt_wyoming import WyomingSttPlugin, WyomingSttSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
STORY = "Once upon a time a small dragon learned to fly. The end."


@pytest.fixture(scope="module")
def whisper_port(tmp_path_factory):  # type: ignore[no-untyped-def]
    with wyoming_whisper(tmp_path_factory.mktemp("whisper")) as (_, port):
        yield port


def configs(llm_url: str, stt_port: int, tts_port: int) -> tuple[dict, dict]:
    cloud = {
        "role": "cloud",
        "plugins": ["gateway", "stt_wyoming", "llm", "tts_wyoming"],
        "gateway": {"stage_timeout": 30, "max_listen_seconds": 20},
        "stt_wyoming": {"uri": f"tcp://127.0.0.1:{stt_port}", "language": "en"},
        "llm": {"base_url": llm_url, "model": "stand-in", "memory": False},
        "tts_wyoming": {
            "uri": f"tcp://127.0.0.1:{tts_port}",
            "voice": "en_US-joe-medium",
            "connect_timeout": 1.0,
        },
    }
    toy = {
        "role": "device",
        "device_id": "toy-1",
        "plugins": ["cloudlink"],
        "cloudlink": {"reply_timeout": 30, "language": "en"},
    }
    return cloud, toy


async def heard_back(pcm: bytes, whisper_port: int) -> str:
    stt = WyomingSttPlugin()
    stt.settings = WyomingSttSettings(uri=f"tcp://127.0.0.1:{whisper_port}", language="en")
    result = await stt.toyd_transcribe(
        turn=Turn(device_id="t", session_id="s", turn_id="check"), pcm=pcm, sample_rate=16000
    )
    return result.text


def similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, words(a), words(b)).ratio()


async def test_a_spoken_question_through_wyoming_whisper_and_piper(
    tmp_path: Path, whisper_port: int
) -> None:
    tts_port = free_port()
    with run_server(piper_command(servers_venv(), tts_port), tts_port, "wyoming-piper"):
        async with StandIn() as llm:
            llm.script(STORY)
            cloud, toy = configs(llm.url + "/v1", whisper_port, tts_port)
            async with Loopback(cloud, toy, state_dir=tmp_path) as loop:
                report = await loop.turn(espeak_pcm("tell me a story about a dragon"), timeout=120)
    assert report.outcome == "reply", report
    assert words(report.transcript) == "tell me a story about a dragon"
    assert report.reply == STORY
    assert 2.0 < len(report.pcm) / 32000 < 10.0, "Piper's voice reached the toy at 16 kHz"
    heard = await heard_back(report.pcm, whisper_port)
    assert similar(heard, STORY) > 0.85, heard


async def test_piper_down_is_a_clear_error_and_a_restart_is_picked_up(whisper_port: int) -> None:
    from toyd_plugins.tts_wyoming import WyomingTtsPlugin, WyomingTtsSettings

    tts_port = free_port()
    tts = WyomingTtsPlugin()
    tts.settings = WyomingTtsSettings(
        uri=f"tcp://127.0.0.1:{tts_port}", voice="en_US-joe-medium", connect_timeout=1.0, timeout=60
    )
    with pytest.raises(BackendError, match=rf"tcp://127.0.0.1:{tts_port} is down"):
        await anext(tts.stream("Hello.", tts.settings))
    for _ in range(2):  # up, down again, up again on the same port: each start is picked up
        with run_server(piper_command(servers_venv(), tts_port), tts_port, "wyoming-piper"):
            pcm = b"".join([chunk async for chunk in tts.stream("Hello again.", tts.settings)])
        assert similar(await heard_back(pcm, whisper_port), "Hello again.") > 0.8
        with pytest.raises(BackendError, match="is down"):
            await anext(tts.stream("Hello.", tts.settings))
