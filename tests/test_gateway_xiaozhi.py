"""A real xiaozhi client (xiaozhi-sdk 0.5.1, with its own test WAVs) against ``toyd cloud``.

The whole chain is real: Whisper speech-to-text, the llm plugin against the local chat
stand-in, espeak-ng speech; the client hears raw Opus at the rate it asked for.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import wave
from pathlib import Path
from typing import Any

import numpy as np
import opuslib
import pytest

from toyd.testing import free_port, running_daemon, wait_for
from toyd.testing.standin import StandIn
from xiaozhi_clients import Recorder

pytest.importorskip("xiaozhi_sdk")
from xiaozhi_sdk import XiaoZhiWebsocket  # noqa: E402

MAC, TOKEN = "02:00:00:00:00:01", "xz-token-1"
REPLY = "Hello little one. I am a friendly bear. Shall we sing?"


def sdk_wav(name: str) -> bytes:
    path = importlib.resources.files("xiaozhi_sdk") / "file" / "audio" / name
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        return wav.readframes(wav.getnframes())


def cloud_config(port: int, llm_url: str) -> dict[str, Any]:
    return {
        "role": "cloud",
        "device_id": "cloud",
        "startup_timeout": 60,
        "plugins": ["gateway", "stt_whisper", "safety", "llm", "tts_espeak"],
        "gateway": {"port": port, "tokens": {MAC: TOKEN}, "stage_timeout": 20},
        "stt_whisper": {"cpu_threads": 2},
        "llm": {"base_url": llm_url, "model": "stand-in", "memory": False},
    }


class Client(Recorder):
    """xiaozhi-sdk's client, with everything it hands the application recorded."""

    def __init__(self, port: int, frame_ms: int, mode: str) -> None:
        super().__init__()
        self.sdk = XiaoZhiWebsocket(
            self.on_message,
            url=f"ws://127.0.0.1:{port}/xiaozhi/v1/",
            audio_sample_rate=16000,
            audio_frame_duration=frame_ms,
        )
        self.sdk.mode = mode
        self.sdk.websocket_token = TOKEN
        self.frame_ms = frame_ms

    async def speak(self, pcm: bytes, silence_s: float = 0.0) -> None:
        step = 16000 * self.frame_ms // 1000 * 2
        pcm = pcm + bytes(int(silence_s * 32000))
        for start in range(0, len(pcm) - step + 1, step):
            await self.sdk.send_audio(pcm[start : start + step])
            await asyncio.sleep(self.frame_ms / 4000)  # 4x real time


async def turn(tmp_path: Path, frame_ms: int, mode: str):  # type: ignore[no-untyped-def]
    port = free_port()
    async with StandIn() as llm:
        llm.script(REPLY, token_delay=0.01)
        async with running_daemon(cloud_config(port, llm.url + "/v1"), state_dir=tmp_path) as cloud:
            client = Client(port, frame_ms, mode)
            assert await client.sdk.init_connection(MAC)
            try:
                await client.speak(
                    sdk_wav("test_16k.wav"), silence_s=1.5 if mode != "manual" else 0.0
                )
                if mode == "manual":
                    await client.sdk.websocket.send('{"type": "listen", "state": "stop"}')
                await wait_for(lambda: client.of("tts", state="stop"), timeout=60)
                session = cloud.host.plugins["gateway"].gateway.sessions[MAC]
                return client, session, llm
            finally:
                await client.sdk.close()


@pytest.mark.parametrize("frame_ms, mode", [(60, "manual"), (20, "auto"), (60, "realtime")])
async def test_xiaozhi_sdk_completes_a_turn(tmp_path, frame_ms, mode):
    client, session, llm = await turn(tmp_path, frame_ms, mode)
    stt = client.of("stt")
    assert len(stt) == 1 and stt[0]["text"].strip(), "the client got the transcript"
    assert llm.requests[-1].json()["messages"][-1]["content"] == stt[0]["text"]
    assert client.of("llm")[0]["emotion"] == "happy"
    sentences = [m["text"] for m in client.of("tts", state="sentence_start")]
    assert " ".join(sentences) == REPLY and len(sentences) == 3, (
        "the reply came sentence by sentence"
    )
    kinds = [m.get("state") for m in client.of("tts")]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    # raw Opus at the client's own rate and frame length: the sdk decoded every frame
    audio = (
        np.array(client.sdk.output_audio_queue, dtype=np.int16)
        if client.sdk.output_audio_queue
        else None
    )
    assert audio is not None and 2.0 < len(audio.ravel()) / 16000 < 12.0
    assert np.abs(audio.ravel()).max() > 1000, "speech, not silence or noise"
    assert session.errors == 0
    if mode != "manual":
        assert session.xiaozhi_mode == mode  # the gateway heard the end of speech itself


async def test_barge_in_abort_stops_the_audio(tmp_path):
    port = free_port()
    async with StandIn() as llm:
        llm.script("Once upon a time there was a very long story. " * 8, token_delay=0.01)
        async with running_daemon(cloud_config(port, llm.url + "/v1"), state_dir=tmp_path) as cloud:
            client = Client(port, 60, "manual")
            assert await client.sdk.init_connection(MAC)
            try:
                await client.speak(sdk_wav("16k_say_hello.wav"))
                await client.sdk.websocket.send('{"type": "listen", "state": "stop"}')
                await wait_for(lambda: len(client.sdk.output_audio_queue) > 0, timeout=60)
                await client.sdk.send_abort()
                await wait_for(lambda: client.of("tts", state="stop"), timeout=10)
                session = cloud.host.plugins["gateway"].gateway.sessions[MAC]
                await wait_for(lambda: session.phase.value == "idle", timeout=5)
                heard = len(client.sdk.output_audio_queue)
                await asyncio.sleep(0.5)  # bounded: nothing more may arrive after the stop
                assert len(client.sdk.output_audio_queue) == heard
                assert heard / (16000 * 0.06) < 20, "far less than the whole story was sent"
            finally:
                await client.sdk.close()


async def test_an_esp32_hello_with_60_ms_frames_is_served_and_bad_ones_refused(tmp_path):
    from websockets.asyncio.client import connect

    port = free_port()
    async with StandIn() as llm:
        async with running_daemon(cloud_config(port, llm.url + "/v1"), state_dir=tmp_path):
            headers = {
                "Authorization": f"Bearer {TOKEN}",
                "Protocol-Version": "1",
                "Device-Id": MAC,
                "Client-Id": "9e1f2f9e-6b2a-4c53-9a51-5c8d2b3c4d5e",
            }
            async with connect(
                f"ws://127.0.0.1:{port}/xiaozhi/v1/", additional_headers=headers
            ) as ws:
                await ws.send(
                    '{"type":"hello","version":1,"features":{"mcp":true},"transport":"websocket",'
                    '"audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}'
                )
                hello = __import__("json").loads(await asyncio.wait_for(ws.recv(), 5))
                assert hello["transport"] == "websocket" and hello["session_id"]
                assert hello["audio_params"]["frame_duration"] == 60
            for params, problem in (
                ('"sample_rate":44100', "sample_rate 44100"),
                ('"frame_duration":30', "30 ms"),
                ('"format":"pcm"', "only opus"),
            ):
                async with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers) as ws:
                    await ws.send(
                        '{"type":"hello","transport":"websocket","audio_params":{' + params + "}}"
                    )
                    error = __import__("json").loads(await asyncio.wait_for(ws.recv(), 5))
                    assert error["code"] == "unsupported_audio" and problem in error["message"]
                    await asyncio.wait_for(ws.wait_closed(), 5)


def test_opus_at_24k_decodes(tmp_path):
    """The downlink resampler and encoder at another rate give Opus that decodes at that rate."""
    from toyd_plugins.gateway.downlink import Downlink

    sent: list[bytes] = []

    async def send(frame):  # type: ignore[no-untyped-def]
        sent.append(frame)

    async def run() -> None:
        down = Downlink(send, 1, "t", lead=10.0, sample_rate=24000, frame_ms=60, raw=True)
        await down.pcm(bytes(32000))
        await down.flush()

    asyncio.run(run())
    decoder = opuslib.Decoder(24000, 1)
    assert all(len(decoder.decode(p, 1440)) == 2880 for p in sent) and len(sent) >= 16
