"""The bus: publishing never blocks; drop-oldest for telemetry, never for control events."""

from __future__ import annotations

import asyncio

from toyd import events as ev
from toyd.bus import EventBus


async def test_each_subscriber_gets_its_types_in_order() -> None:
    bus = EventBus()
    buttons = bus.subscribe("buttons", (ev.ButtonPressed, ev.ButtonReleased))
    everything = bus.subscribe("all")
    bus.publish(ev.ButtonPressed())
    bus.publish(ev.WakeWordDetected(model="m", score=0.9))
    bus.publish(ev.ButtonReleased(held=0.5))
    assert [type(await buttons.get()) for _ in range(2)] == [ev.ButtonPressed, ev.ButtonReleased]
    assert len(everything) == 3 and len(buttons) == 0


async def test_slow_subscriber_drops_oldest_telemetry_and_keeps_control_events() -> None:
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=4)
    fast = bus.subscribe("fast", maxsize=1000)
    for i in range(10):
        bus.publish(ev.AudioFrame(pcm=b"", seq=i))
    bus.publish(ev.ButtonPressed())
    for i in range(10, 13):
        bus.publish(ev.AudioFrame(pcm=b"", seq=i))
    kept = [slow.get_nowait() for _ in range(len(slow))]
    assert ev.ButtonPressed() in kept  # control event never dropped
    frames = [e.seq for e in kept if isinstance(e, ev.AudioFrame)]
    assert frames == sorted(frames) and frames[-1] == 12  # newest telemetry kept, oldest dropped
    assert slow.dropped == 14 - len(kept)
    assert len(fast) == 14  # a slow subscriber never affects another one


async def test_control_events_beyond_the_bound_are_queued_and_logged(caplog) -> None:
    bus = EventBus()
    sub = bus.subscribe("stuck", maxsize=2)
    for _ in range(5):
        bus.publish(ev.ButtonPressed())
    assert len(sub) == 5 and sub.dropped == 0
    assert "subscriber stuck is slow" in caplog.text


async def test_publish_threadsafe_and_close_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe("t")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, bus.publish_threadsafe, ev.ButtonPressed())
    assert isinstance(await asyncio.wait_for(sub.get(), 2), ev.ButtonPressed)

    async def drain() -> int:
        return len([e async for e in sub])

    task = asyncio.create_task(drain())
    bus.publish(ev.ButtonReleased())
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(task, 2) == 1
    bus.publish(ev.ButtonPressed())  # after close: ignored, no error
