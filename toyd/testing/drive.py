"""Drive one spoken turn through a running device daemon by events (demo, tests, benchmark)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from toyd import App, Subscription
from toyd.audio import FRAME_MS, frames
from toyd.events import (
    AudioFrame,
    ButtonPressed,
    Event,
    OfflineAnswered,
    ReplyAudio,
    SpeechEnded,
    StateChanged,
)
from toyd.state import State

E = TypeVar("E", bound=Event)
SILENCE_PAD = bytes(16000)  # 0.5 s: the recogniser adapts on leading silence, and children pause


async def speak_turn(
    app: App, pcm: bytes, *, timeout: float = 30.0, realtime: bool = False
) -> tuple[OfflineAnswered, float]:
    """Press the button, say ``pcm``, end the utterance; returns the answer and the seconds
    from end of speech to the first reply audio frame."""
    sub = app.bus.subscribe("drive", (StateChanged, OfflineAnswered, ReplyAudio), maxsize=100_000)
    try:
        app.bus.publish(ButtonPressed())
        await next_matching(sub, StateChanged, timeout, lambda e: e.new is State.LISTENING)
        for seq, frame in enumerate(frames(SILENCE_PAD + pcm + SILENCE_PAD)):
            app.bus.publish(AudioFrame(pcm=frame, seq=seq))
            await asyncio.sleep(FRAME_MS / 1000 if realtime else 0)
        ended = time.monotonic()
        app.bus.publish(SpeechEnded(reason="silence"))
        first = await next_matching(sub, ReplyAudio, timeout)
        latency = first.at - ended
        answer = await next_matching(sub, OfflineAnswered, timeout)
        return answer, latency
    finally:
        sub.close()


async def next_matching(
    sub: Subscription,
    kind: type[E] | tuple[type[Event], ...],
    timeout: float,
    where: Callable[[Any], bool] = lambda e: True,
) -> E:
    """The next event of ``kind`` matching ``where``, bounded by ``timeout``."""

    async def find() -> E:
        while True:
            event = await sub.get()
            if isinstance(event, kind) and where(event):
                return event  # type: ignore[return-value]

    return await asyncio.wait_for(find(), timeout)
