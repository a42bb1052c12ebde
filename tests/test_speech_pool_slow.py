"""Speech-to-text as a pool: two real wyoming-faster-whisper servers behind HAProxy's TCP mode
(the example config/haproxy/speech.cfg); the cloud keeps transcribing when one of them dies."""

from __future__ import annotations

import asyncio

import pytest

from toyd.testing import espeak_pcm, free_port, running_daemon
from toyd.testing.cluster import SPEECH_EXAMPLE, haproxy_binary, render_speech_pool, start_haproxy
from toyd.turn import Turn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        haproxy_binary() is None, reason="haproxy is not installed (apt-get install haproxy)"
    ),
]
wyoming_servers = pytest.importorskip(
    "toyd.testing.wyoming_servers", reason="the stt_wyoming plugin is not here"
)


async def transcribe(app, text: str) -> str:  # type: ignore[no-untyped-def]
    pcm = await asyncio.to_thread(espeak_pcm, text)
    turn = Turn(device_id="toy-1", turn_id=text[:8], session_id="s", language="en")
    result = await app.host.call_first("toyd_transcribe", turn=turn, pcm=pcm, sample_rate=16000)
    return result.text.lower()


async def test_a_whisper_pool_behind_haproxy_survives_a_dead_server(tmp_path) -> None:
    front = free_port()
    with (
        wyoming_servers.wyoming_whisper(tmp_path / "w1") as (first, port1),
        wyoming_servers.wyoming_whisper(tmp_path / "w2") as (_, port2),
    ):
        proxy = start_haproxy(
            render_speech_pool(SPEECH_EXAMPLE.read_text(), {"stt": (front, [port1, port2])}),
            tmp_path,
            front,
        )
        try:
            config = {
                "role": "cloud",
                "device_id": "cloud",
                "plugins": ["stt_wyoming"],
                "stt_wyoming": {"uri": f"tcp://127.0.0.1:{front}", "connect_timeout": 5},
            }
            async with running_daemon(config, state_dir=tmp_path / "cloud") as app:
                question = "tell me a story about a dragon"
                heard = await asyncio.gather(*(transcribe(app, question) for _ in range(2)))
                assert all("dragon" in text for text in heard), heard
                first.kill()  # one speech server dies: the pool answers from the other
                first.wait()
                for _ in range(3):
                    assert "dragon" in await transcribe(app, question)
        finally:
            proxy.terminate()
            proxy.wait(10)
