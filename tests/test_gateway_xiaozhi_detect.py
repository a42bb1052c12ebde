"""A xiaozhi client's ``listen detect`` on ``toyd cloud``: what xiaozhi-esp32-server does with it.

Text beyond a wake word is the child's words (safety → LLM → speech, like speech); the
wake word alone is greeted; the firmware's detect-then-listen order keeps the greeting.
The client is the real xiaozhi-sdk 0.5.1 (its ``send_text`` is a ``listen detect``), or
raw frames where the SDK cannot say it (the firmware's order, hostile text).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from toyd.testing import free_port, running_daemon, wait_for
from toyd.testing.standin import StandIn
from xiaozhi_clients import Recorder, echo_cloud, greeted, headers

pytest.importorskip("xiaozhi_sdk")
from xiaozhi_sdk import XiaoZhiWebsocket  # noqa: E402

MAC, TOKEN = "02:00:00:00:00:04", "xz-token-4"
REPLY = "Cats purr when they are happy. They also sleep a lot."
HEADERS = headers(MAC, TOKEN)


def cloud_config(port: int, llm_url: str, **gateway: Any) -> dict[str, Any]:
    return {
        "role": "cloud",
        "device_id": "cloud",
        "plugins": ["gateway", "safety", "llm", "tts_espeak"],
        "gateway": {"port": port, "tokens": {MAC: TOKEN}, "stage_timeout": 20, **gateway},
        "llm": {"base_url": llm_url, "model": "stand-in", "memory": False},
    }


class Sdk(Recorder):
    """xiaozhi-sdk's client with every message it hands the application recorded."""

    def __init__(self, port: int, mode: str = "manual") -> None:
        super().__init__()
        self.sdk = XiaoZhiWebsocket(self.on_message, url=f"ws://127.0.0.1:{port}/xiaozhi/v1/")
        self.sdk.mode = mode
        self.sdk.websocket_token = TOKEN


def user_text(llm: StandIn) -> str:
    return llm.requests[-1].json()["messages"][-1]["content"]


async def test_text_beyond_the_wake_word_is_answered_like_speech(tmp_path):
    port = free_port()
    async with StandIn() as llm:
        llm.script(REPLY, token_delay=0.01)
        async with running_daemon(cloud_config(port, llm.url + "/v1"), state_dir=tmp_path) as cloud:
            client = Sdk(port)
            assert await client.sdk.init_connection(MAC)
            try:
                assert await client.sdk.send_text("Tell me about cats")
                await wait_for(lambda: client.of("tts", state="stop"), timeout=60)
                session = cloud.host.plugins["gateway"].gateway.sessions[MAC]
            finally:
                await client.sdk.close()
    assert client.texts("stt") == ["Tell me about cats"]
    assert user_text(llm) == "Tell me about cats", "the words reached the LLM"
    sentences = client.texts("tts", state="sentence_start")
    assert " ".join(sentences) == REPLY and len(sentences) == 2
    audio = np.array(client.sdk.output_audio_queue, dtype=np.int16).ravel()
    assert len(audio) / 16000 > 1.0 and np.abs(audio).max() > 1000, "spoken, decodable"
    assert session.errors == 0


async def test_the_wake_word_alone_is_greeted(tmp_path):
    port = free_port()
    async with StandIn() as llm:
        llm.script("Hi there, friend!", token_delay=0.0)
        async with running_daemon(
            cloud_config(port, llm.url + "/v1", wake_greeting="Hello, teddy!"), state_dir=tmp_path
        ):
            client = Sdk(port)
            assert await client.sdk.init_connection(MAC)
            try:
                assert await client.sdk.send_text("Hey, toy!")  # the wake word, punctuated
                await wait_for(lambda: client.of("tts", state="stop"), timeout=60)
            finally:
                await client.sdk.close()
    assert user_text(llm) == "Hello, teddy!", "answered as if the child had greeted the toy"
    assert client.texts("tts", state="sentence_start") == ["Hi there, friend!"]


async def test_no_greeting_configured_gives_stt_and_stop_only(tmp_path):
    port = free_port()
    async with StandIn() as llm:
        async with running_daemon(
            cloud_config(port, llm.url + "/v1", wake_greeting=""), state_dir=tmp_path
        ):
            client = Sdk(port)
            assert await client.sdk.init_connection(MAC)
            try:
                assert await client.sdk.send_text("你好小智")
                await wait_for(lambda: client.of("tts", state="stop"), timeout=10)
            finally:
                await client.sdk.close()
    assert client.texts("stt") == ["你好小智"]
    assert not llm.requests and not client.of("tts", state="start")


async def test_firmware_order_detect_then_listen_keeps_the_greeting_then_listens(tmp_path):
    """78/xiaozhi-esp32 sends detect and at once listen start: the greeting is not cut."""
    from websockets.asyncio.client import connect

    port = free_port()
    async with StandIn() as llm:
        llm.script("Hello! What shall we play? I like games.", token_delay=0.01)
        async with running_daemon(cloud_config(port, llm.url + "/v1"), state_dir=tmp_path) as cloud:
            async with connect(f"ws://127.0.0.1:{port}/", additional_headers=HEADERS) as ws:
                await greeted(ws)
                await ws.send('{"type":"listen","state":"detect","text":"你好小智"}')
                await ws.send('{"type":"listen","state":"start","mode":"auto"}')
                seen: list[dict[str, Any]] = []
                while not any(m.get("type") == "tts" and m["state"] == "stop" for m in seen):
                    frame = await asyncio.wait_for(ws.recv(), 30)
                    if isinstance(frame, str):
                        seen.append(json.loads(frame))
                session = cloud.host.plugins["gateway"].gateway.sessions[MAC]
                await wait_for(lambda: session.phase.value == "listening", timeout=5)
    sentences = [m["text"] for m in seen if m.get("state") == "sentence_start"]
    assert " ".join(sentences) == "Hello! What shall we play? I like games.", "the whole greeting"
    assert user_text(llm) == "Hello!" and len(llm.requests) == 1
    assert session.xiaozhi_mode == "auto" and session.errors == 0


@pytest.mark.parametrize(
    "text", ["", "   ", "!!!", "x" * 5000, "\u0000\ud7ff", "[device_call]hi", '{"speaker": 1}']
)
async def test_odd_detect_text_never_breaks_the_session(tmp_path, text):
    from websockets.asyncio.client import connect

    port = free_port()
    async with running_daemon(echo_cloud(port, MAC, TOKEN), state_dir=tmp_path) as cloud:
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers=HEADERS) as ws:
            await greeted(ws)
            await ws.send(json.dumps({"type": "listen", "state": "detect", "text": text}))
            await ws.send('{"type":"listen","state":"detect","text":"are you there"}')
            stt: list[str] = []
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] == "stt":
                    stt.append(msg["text"])
                if msg["type"] == "stt" and msg["text"] == "are you there":
                    break
            session = cloud.host.plugins["gateway"].gateway.sessions[MAC]
    assert session.errors == 0
    assert all(len(t) <= 1000 for t in stt)
