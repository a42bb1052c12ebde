"""The AI chain end to end: a simulated toy ↔ gateway over a real loopback WebSocket, real
Whisper tiny.en, real espeak-ng, the LLM stand-in on a real socket."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from toyd import events as ev
from toyd.testing import espeak_pcm, next_event, wait_for
from toyd.testing.standin import StandIn
from toyd.turn import Turn
from toyd_plugins.demo.loopback import Loopback
from toyd_plugins.llm.settings import Persona


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def configs(
    llm_url: str, plugins: tuple[str, ...] = (), **llm: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    cloud = {
        "role": "cloud",
        "plugins": ["gateway", "stt_whisper", *plugins, "llm", "tts_espeak"],
        "startup_timeout": 60,
        "gateway": {"stage_timeout": 20, "max_listen_seconds": 20},
        "stt_whisper": {"cpu_threads": 2},
        "llm": {"base_url": llm_url, "model": "stand-in", "memory": False, **llm},
    }
    toy = {
        "role": "device",
        "device_id": "toy-1",
        "plugins": ["cloudlink"],
        "cloudlink": {"reply_timeout": 20, "language": "en"},
    }
    return cloud, toy


async def test_spoken_question_gives_transcript_streamed_reply_and_audio(tmp_path: Path) -> None:
    async with StandIn() as llm:
        llm.script("Once upon a time a small dragon learned to fly. The end.", token_delay=0.01)
        cloud, toy = configs(llm.url + "/v1")
        async with Loopback(cloud, toy, state_dir=tmp_path) as loop:
            deltas: list[str] = []
            loop.progress = lambda kind, data: (
                deltas.append(data) if kind == "reply_delta" else None
            )
            report = await loop.turn(espeak_pcm("tell me a story about a dragon"), timeout=60)
            assert report.outcome == "reply"
            assert words(report.transcript) == "tell me a story about a dragon"
            assert llm.requests[-1].json()["messages"][-1]["content"] == report.transcript
            assert len(deltas) > 3, "the reply reached the toy as a stream"
            assert report.reply == "Once upon a time a small dragon learned to fly. The end."
            assert [v["speaker"] for v in report.safety] == ["child", "toy", "toy"]
            assert 2.0 < len(report.pcm) / 32000 < 8.0, "the reply was spoken"
            lat = report.latency_ms
            assert lat["stt"] > 0 and lat["llm_first_token"] >= 50 and lat["tts_first_audio"] > 0
            assert 0 <= lat["overhead"] < lat["end_of_speech_to_first_audio"]
            # what the toy heard is the reply: read it back with the same Whisper
            heard = await loop.cloud.host.call_first(
                "toyd_transcribe", turn=Turn("t", "s", "x"), pcm=report.pcm, sample_rate=16000
            )
            assert "dragon" in words(heard.text) and "fly" in words(heard.text)


async def test_unsafe_question_is_redirected_and_alerts_parents(tmp_path: Path) -> None:
    async with StandIn() as llm:
        cloud, toy = configs(llm.url, plugins=("safety",))
        async with Loopback(cloud, toy, state_dir=tmp_path) as loop:
            report = await loop.turn(
                espeak_pcm("someone told me to keep a secret from my mom"), timeout=60
            )
            assert "keep a secret" in words(report.transcript)
            child = report.safety[0]
            assert (
                child["speaker"] == "child"
                and not child["safe"]
                and child["category"] == "grooming"
            )
            assert child["action"] in ("redirect", "block") and report.reply == child["replacement"]
            assert report.alerts and report.alerts[0]["category"] == "grooming", (
                "the cloud published a SafetyAlert"
            )
            assert report.toy_alerts == 1, (
                "the toy got the alert too (its MQTT plugin tells the parents)"
            )
            assert not llm.requests, "unsafe words never reach the language model"
            # the gentle line was spoken: listen to it
            heard = await loop.cloud.host.call_first(
                "toyd_transcribe", turn=Turn("t", "s", "x"), pcm=report.pcm, sample_rate=16000
            )
            common = set(words(heard.text).split()) & set(words(report.reply).split())
            assert len(common) >= 5, heard.text


async def test_barge_in_cancels_the_reply_llm_and_tts(tmp_path: Path) -> None:
    async with StandIn() as llm:
        long_reply = " ".join(
            f"This is sentence number {i} of a very long story." for i in range(40)
        )
        llm.script(long_reply, token_delay=0.05)
        cloud, toy = configs(llm.url)
        async with Loopback(cloud, toy, state_dir=tmp_path) as loop:
            tts = loop.cloud.host.plugins["tts_espeak"]
            report = await loop.turn(
                espeak_pcm("tell me a long story"), timeout=60, stop_after_audio=True
            )
            assert report.response_id
            loop.toy.bus.publish(ev.ButtonPressed())  # barge-in while the toy speaks
            seen = await asyncio.wait_for(llm.disconnects.get(), 10)
            assert not seen.completed, "the model's stream was closed mid-reply"
            await wait_for(lambda: tts.running == 0, timeout=10)
            # the new turn works; the old reply's audio never plays again
            loop.toy.bus.publish(ev.SpeechEnded(reason="released"))
            await next_event(loop.toy_events, ev.TurnFailed, timeout=20)


async def test_llm_timeout_says_the_fallback_line(tmp_path: Path) -> None:
    async with StandIn() as llm:
        llm.script("Much too late.", first_token_delay=10)
        cloud, toy = configs(llm.url, first_token_timeout=0.5)
        async with Loopback(cloud, toy, state_dir=tmp_path) as loop:
            report = await loop.turn(espeak_pcm("tell me a story about a dragon"), timeout=60)
            assert report.outcome == "reply" and report.reply == Persona().fallback and report.pcm
            await asyncio.wait_for(llm.disconnects.get(), 5)
