"""Shared pieces for the cloud link tests: configs, a toy's microphone and speaker at the hardware edge."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from toyd import App, State
from toyd import events as ev
from toyd.audio import frames
from toyd.testing import espeak_pcm, free_port, next_event, running_daemon

TOKEN = "token-of-toy-1"


@functools.cache
def speech(text: str = "hello bear") -> bytes:
    """Real speech (espeak-ng), 16 kHz mono int16."""
    return espeak_pcm(text)


def cloud_config(
    port: int,
    tokens: dict[str, str] | None = None,
    plugins: tuple[str, ...] = ("gateway", "echochain"),
    sections: dict[str, Any] | None = None,
    **gateway: Any,
) -> dict[str, Any]:
    return {
        "role": "cloud",
        "device_id": "cloud",
        "plugins": list(plugins),
        "gateway": {"port": port, "tokens": tokens or {"toy-1": TOKEN}, **gateway},
        **(sections or {}),
    }


def device_config(
    port: int, device_id: str = "toy-1", token: str = TOKEN, **link: Any
) -> dict[str, Any]:
    return {
        "role": "device",
        "device_id": device_id,
        "plugins": ["cloudlink"],
        "cloudlink": {
            "url": f"ws://127.0.0.1:{port}",
            "token": token,
            "backoff_initial": 0.05,
            "backoff_max": 0.5,
            **link,
        },
    }


@contextlib.asynccontextmanager
async def cloud_and_toy(
    tmp: Path,
    *,
    extra_plugins: dict[str, Any] | None = None,
    plugins: tuple[str, ...] = ("gateway", "echochain"),
    gateway: dict[str, Any] | None = None,
    link: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[App, App, Any]]:
    """A cloud daemon and a toy daemon connected to it; yields (cloud, toy, toy-subscription)."""
    port = free_port()
    async with running_daemon(
        cloud_config(port, plugins=plugins, sections=sections, **(gateway or {})),
        state_dir=tmp / "cloud",
        extra_plugins=extra_plugins,
    ) as cloud:
        async with running_daemon(
            device_config(port, **(link or {})), state_dir=tmp / "toy"
        ) as toy:
            sub = toy.bus.subscribe("test", maxsize=100000)
            await next_event(sub, ev.CloudOnline, timeout=10)
            yield cloud, toy, sub


async def speak_turn(toy: App, sub: Any, pcm: bytes, *, pace: float = 0.01) -> None:
    """Press the button, say ``pcm`` into the microphone, stop talking (THINKING)."""
    toy.bus.publish(ev.ButtonPressed())
    await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
    for seq, frame in enumerate(frames(pcm)):
        toy.bus.publish(ev.AudioFrame(pcm=frame, seq=seq))
        await asyncio.sleep(pace)
    toy.bus.publish(ev.SpeechEnded(reason="silence"))
    await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.THINKING)


async def play_reply(toy: App, sub: Any, timeout: float = 10.0) -> tuple[str, list[bytes]]:
    """Be the speaker: play one response to its end; returns (response id, frames)."""
    first = await next_event(sub, ev.ReplyAudio, timeout=timeout)
    toy.bus.publish(ev.PlaybackStarted(response_id=first.response_id))
    pcm = [first.pcm]
    while True:
        event = await next_event(sub, (ev.ReplyAudio, ev.ReplyAudioEnd), timeout=timeout)  # type: ignore[arg-type]
        if isinstance(event, ev.ReplyAudioEnd):
            assert event.response_id == first.response_id
            break
        assert event.response_id == first.response_id
        pcm.append(event.pcm)
    toy.bus.publish(ev.PlaybackFinished(response_id=first.response_id))
    return first.response_id, pcm


class RawToy:
    """A protocol-level toy: raw frames over a real WebSocket, for gateway tests."""

    def __init__(self, port: int, device_id: str = "toy-1", token: str = TOKEN) -> None:
        self.port, self.device_id, self.token = port, device_id, token
        self.conn: Any = None
        self.hello: dict[str, Any] = {}

    async def connect(self, *, hello: bool = True, **hello_fields: Any) -> RawToy:
        from websockets.asyncio.client import connect

        headers = {
            "Authorization": f"Bearer {self.token}",
            "Device-Id": self.device_id,
            "Protocol-Version": "1",
        }
        self.conn = await connect(
            f"ws://127.0.0.1:{self.port}",
            additional_headers=headers,
            proxy=None,
            compression=None,
            open_timeout=5,
        )
        if hello:
            await self.send(
                {
                    "type": "hello",
                    "version": 1,
                    "device_id": self.device_id,
                    "audio_params": {
                        "format": "opus",
                        "sample_rate": 16000,
                        "channels": 1,
                        "frame_duration": 20,
                    },
                    **hello_fields,
                }
            )
            self.hello = await self.expect("hello")
        return self

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        import json

        await self.conn.send(json.dumps(msg) if isinstance(msg, dict) else msg)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any] | bytes:
        """The next frame: a parsed message, or a binary frame as bytes."""
        import json

        frame = await asyncio.wait_for(self.conn.recv(), timeout)
        return frame if isinstance(frame, bytes) else json.loads(frame)

    async def expect(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """Skip frames until a message of ``kind`` (with ``fields``) arrives."""

        async def find() -> dict[str, Any]:
            while True:
                frame = await self.recv(timeout)
                if (
                    isinstance(frame, dict)
                    and frame.get("type") == kind
                    and all(frame.get(k) == v for k, v in fields.items())
                ):
                    return frame

        return await asyncio.wait_for(find(), timeout)

    async def talk(self, pcm: bytes, turn_id: str = "t1", **listen: Any) -> None:
        """listen start, the audio as Opus frames, listen stop."""
        from toyd.audio.opus import OpusEncoder

        encoder = OpusEncoder()
        await self.send(
            {
                "type": "listen",
                "state": "start",
                "mode": "push_to_talk",
                "turn_id": turn_id,
                **listen,
            }
        )
        for i, frame in enumerate(frames(pcm)):
            await self.send(encoder.encode(frame))
            if i % 20 == 19:
                await asyncio.sleep(0.2)  # stay under the uplink rate limit
        await self.send({"type": "listen", "state": "stop", "turn_id": turn_id})

    async def response(self, timeout: float = 10.0) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Everything up to and including ``tts stop``: (messages, binary frames)."""
        messages: list[dict[str, Any]] = []
        audio: list[bytes] = []

        async def collect() -> None:
            while True:
                frame = await self.recv(timeout)
                if isinstance(frame, bytes):
                    audio.append(frame)
                    continue
                messages.append(frame)
                if frame.get("type") == "tts" and frame.get("state") == "stop":
                    return

        await asyncio.wait_for(collect(), timeout)
        return messages, audio

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


@contextlib.asynccontextmanager
async def cloud(
    tmp: Path,
    *,
    extra_plugins: dict[str, Any] | None = None,
    plugins: tuple[str, ...] = ("gateway", "echochain"),
    **gateway: Any,
) -> AsyncIterator[tuple[App, int]]:
    """A cloud daemon on a free port; yields (app, port)."""
    port = free_port()
    async with running_daemon(
        cloud_config(port, plugins=plugins, **gateway),
        state_dir=tmp / "cloud",
        extra_plugins=extra_plugins,
    ) as app:
        yield app, port
