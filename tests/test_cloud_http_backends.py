"""stt_openai and tts_http against the local stand-in for the paid HTTP APIs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from toyd.errors import BackendError
from toyd.testing import espeak_pcm, free_port, running_daemon
from toyd.testing.standin import StandIn, collect
from toyd.turn import Turn

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1", language="en", persona="rex")


async def test_stt_openai_uploads_wav_and_parses_confidence(state_dir: Path) -> None:
    async with StandIn() as server:
        server.transcript = " Tell me a story. "
        cfg = {
            "role": "cloud",
            "plugins": ["stt_openai"],
            "stt_openai": {
                "base_url": server.url + "/v1",
                "api_key": "k123",
                "model": "whisper-large",
            },
        }
        async with running_daemon(cfg, state_dir=state_dir) as app:
            pcm = espeak_pcm("tell me a story")
            result = await asyncio.wait_for(
                app.host.call_first("toyd_transcribe", turn=TURN, pcm=pcm, sample_rate=16000), 10
            )
            assert result.text == "Tell me a story." and result.language == "en"
            assert 0.8 < result.confidence < 0.83 and result.no_speech == 0.05
            seen = server.requests[-1]
            assert (
                seen.path == "/v1/audio/transcriptions"
                and seen.headers["authorization"] == "Bearer k123"
            )
            assert (
                b'name="model"\r\n\r\nwhisper-large' in seen.body
                and b"RIFF" in seen.body
                and b'name="language"\r\n\r\nen' in seen.body
            )
            empty = await app.host.call_first(
                "toyd_transcribe", turn=TURN, pcm=b"", sample_rate=16000
            )
            assert empty.text == "" and len(server.requests) == 1, "empty audio needs no request"


async def test_stt_openai_server_errors_are_clear(state_dir: Path) -> None:
    cfg = {
        "role": "cloud",
        "plugins": ["stt_openai"],
        "stt_openai": {"base_url": f"http://127.0.0.1:{free_port()}/v1"},
    }
    async with running_daemon(cfg, state_dir=state_dir) as app:
        with pytest.raises(BackendError, match="cannot connect"):
            await app.host.call_first(
                "toyd_transcribe", turn=TURN, pcm=bytes(16000), sample_rate=16000
            )
    async with StandIn() as server:
        server.audio_status = 503
        cfg["stt_openai"] = {"base_url": server.url + "/v1"}  # type: ignore[index]
        async with running_daemon(cfg, state_dir=state_dir) as app:
            with pytest.raises(BackendError, match="refused: HTTP 503: .*scripted failure"):
                await app.host.call_first(
                    "toyd_transcribe", turn=TURN, pcm=bytes(16000), sample_rate=16000
                )


@pytest.mark.parametrize("api", ["openai", "elevenlabs"])
async def test_tts_http_streams_and_resamples(state_dir: Path, api: str) -> None:
    async with StandIn() as server:
        rate = 24000 if api == "openai" else 16000
        tone = (np.sin(np.arange(rate // 2) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
        server.speech_pcm = (
            tone.tobytes() + b"\x01"
        )  # odd byte: chunk boundaries never split a sample wrongly
        cfg = {
            "role": "cloud",
            "plugins": ["tts_http"],
            "tts_http": {
                "base_url": server.url + "/v1",
                "api": api,
                "api_key": "sk",
                "voice": "alloy",
                "personas": {"rex": "onyx"},
            },
        }
        async with running_daemon(cfg, state_dir=state_dir) as app:
            stream = await app.host.call_first("toyd_synthesize", turn=TURN, text="Hello  there.")
            chunks = await asyncio.wait_for(collect(stream), 10)
        assert len(chunks) > 1
        pcm = np.frombuffer(b"".join(chunks), dtype=np.int16)
        assert abs(len(pcm) - 8000) < 200, "0.5 s at 16 kHz"
        seen = server.requests[-1]
        if api == "openai":
            assert (
                seen.path == "/v1/audio/speech"
                and seen.json()["voice"] == "onyx"
                and seen.json()["input"] == "Hello there."
            )
            assert seen.headers["authorization"] == "Bearer sk"
        else:
            assert (
                seen.path == "/v1/text-to-speech/onyx/stream?output_format=pcm_16000"
                and seen.headers["xi-api-key"] == "sk"
            )


async def test_tts_http_error_is_clear(state_dir: Path) -> None:
    async with StandIn() as server:
        server.audio_status = 429
        cfg = {
            "role": "cloud",
            "plugins": ["tts_http"],
            "tts_http": {"base_url": server.url + "/v1"},
        }
        async with running_daemon(cfg, state_dir=state_dir) as app:
            with pytest.raises(BackendError, match="speech synthesis at .* refused: HTTP 429"):
                await collect(await app.host.call_first("toyd_synthesize", turn=TURN, text="hi"))
