"""A LedLook (a cloud's emotion, an AI tool call) shows over the state's look, then the state's look returns."""

from __future__ import annotations

from test_led import B, shows
from toyd.events import LedLook
from toyd.testing import running_daemon


async def test_a_look_shows_for_its_seconds_then_the_state_returns(state_dir) -> None:
    async with running_daemon(
        {"role": "device", "plugins": ["led"], "led": {}}, state_dir=state_dir
    ) as app:
        await shows((16 / 255 * B,) * 3)  # idle
        app.bus.publish(LedLook(rgb=(0, 0, 255), seconds=0.3, source="test"))
        await shows((0.0, 0.0, B))
        await shows((16 / 255 * B,) * 3)  # back to idle by itself


async def test_out_of_range_colours_are_clamped(state_dir) -> None:
    async with running_daemon(
        {"role": "device", "plugins": ["led"], "led": {}}, state_dir=state_dir
    ) as app:
        app.bus.publish(LedLook(rgb=(999, -5, 0), seconds=5, source="test"))
        await shows((B, 0.0, 0.0))
