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


def cloud_config(port: int, tokens: dict[str, str] | None = None, plugins: tuple[str, ...] = ("gateway", "echochain"),
                 **gateway: Any) -> dict[str, Any]:
    return {"role": "cloud", "device_id": "cloud", "plugins": list(plugins),
            "gateway": {"port": port, "tokens": tokens or {"toy-1": TOKEN}, **gateway}}


def device_config(port: int, device_id: str = "toy-1", token: str = TOKEN, **link: Any) -> dict[str, Any]:
    return {"role": "device", "device_id": device_id, "plugins": ["cloudlink"],
            "cloudlink": {"url": f"ws://127.0.0.1:{port}", "token": token, "backoff_initial": 0.05,
                          "backoff_max": 0.5, **link}}


@contextlib.asynccontextmanager
async def cloud_and_toy(tmp: Path, *, extra_plugins: dict[str, Any] | None = None, plugins: tuple[str, ...] = ("gateway", "echochain"),
                        gateway: dict[str, Any] | None = None, link: dict[str, Any] | None = None
                        ) -> AsyncIterator[tuple[App, App, Any]]:
    """A cloud daemon and a toy daemon connected to it; yields (cloud, toy, toy-subscription)."""
    port = free_port()
    async with running_daemon(cloud_config(port, plugins=plugins, **(gateway or {})), state_dir=tmp / "cloud",
                              extra_plugins=extra_plugins) as cloud:
        async with running_daemon(device_config(port, **(link or {})), state_dir=tmp / "toy") as toy:
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
