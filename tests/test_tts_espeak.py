"""tts_espeak: real espeak-ng, streamed, resampled to 16 kHz; read back by real Whisper in e2e tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from toyd.errors import BackendError
from toyd.testing import running_daemon
from toyd.testing.standin import collect
from toyd.turn import Turn

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1")


async def test_hook_toyd_synthesize(state_dir: Path) -> None:
    """A sentence comes back as audible 16 kHz PCM, in several chunks."""
    async with running_daemon(
        {"role": "cloud", "plugins": ["tts_espeak"]}, state_dir=state_dir
    ) as app:
        stream = await app.host.call_first(
            "toyd_synthesize", turn=TURN, text="Once upon a time, there was a little dragon."
        )
        chunks = await asyncio.wait_for(collect(stream), 20)
        assert len(chunks) > 1, "audio must stream in chunks"
        pcm = b"".join(chunks)
        seconds = len(pcm) / 32000
        assert 1.5 < seconds < 6, seconds
        samples = np.frombuffer(pcm, dtype=np.int16)
        assert np.abs(samples).max() > 3000, "audible speech"


async def test_persona_and_language_pick_the_voice(state_dir: Path) -> None:
    cfg = {
        "role": "cloud",
        "plugins": ["tts_espeak"],
        "tts_espeak": {"personas": {"rex": {"voice": "en-gb", "rate": 120, "pitch": 20}}},
    }
    async with running_daemon(cfg, state_dir=state_dir) as app:
        plugin = app.host.plugins["tts_espeak"]
        assert plugin.voice_for(Turn("d", "s", "t", persona="rex")) == ("en-gb", 120, 20)
        assert plugin.voice_for(Turn("d", "s", "t", language="ko")) == ("ko", 165, 60)
        assert plugin.voice_for(TURN) == ("en-us+f3", 165, 60)
        slow = b"".join(
            await collect(
                await app.host.call_first(
                    "toyd_synthesize",
                    turn=Turn("d", "s", "t", persona="rex"),
                    text="Hello there friend.",
                )
            )
        )
        fast = b"".join(
            await collect(
                await app.host.call_first("toyd_synthesize", turn=TURN, text="Hello there friend.")
            )
        )
        assert len(slow) > len(fast), "rate 120 speaks slower than 165"


async def test_closing_the_stream_kills_espeak(state_dir: Path) -> None:
    async with running_daemon(
        {"role": "cloud", "plugins": ["tts_espeak"]}, state_dir=state_dir
    ) as app:
        stream = await app.host.call_first("toyd_synthesize", turn=TURN, text="word " * 400)
        first = await asyncio.wait_for(anext(stream), 10)
        plugin = app.host.plugins["tts_espeak"]
        assert first and plugin.running == 1
        await asyncio.wait_for(
            stream.aclose(), 5
        )  # barge-in: returns at once, the subprocess is gone
        assert plugin.running == 0


async def test_bad_voice_and_empty_text(state_dir: Path) -> None:
    cfg = {"role": "cloud", "plugins": ["tts_espeak"], "tts_espeak": {"voice": "xx-nonexistent"}}
    async with running_daemon(cfg, state_dir=state_dir) as app:
        assert (
            await collect(await app.host.call_first("toyd_synthesize", turn=TURN, text="  ")) == []
        )
        with pytest.raises(BackendError, match="espeak-ng"):
            await asyncio.wait_for(
                collect(await app.host.call_first("toyd_synthesize", turn=TURN, text="hi")), 10
            )


async def test_a_hanging_synthesizer_is_stopped_at_the_timeout(
    state_dir: Path, tmp_path: Path
) -> None:
    # the process boundary: a program that starts a WAV stream like espeak-ng, then hangs
    fake = tmp_path / "hanging-espeak"
    fake.write_text("#!/bin/sh\nprintf 'RIFF\\044\\000\\000\\000WAVEfmt '\nexec sleep 30\n")
    fake.chmod(0o755)
    cfg = {
        "role": "cloud",
        "plugins": ["tts_espeak"],
        "tts_espeak": {"binary": str(fake), "timeout": 0.5},
    }
    async with running_daemon(cfg, state_dir=state_dir) as app:
        plugin = app.host.plugins["tts_espeak"]
        with pytest.raises(BackendError, match="longer than 0.5 s"):
            await asyncio.wait_for(
                collect(await app.host.call_first("toyd_synthesize", turn=TURN, text="hi")), 10
            )
        assert plugin.running == 0, "the hung process was killed"
