"""stt_whisper with the real tiny.en model on speech made with espeak-ng."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from toyd.errors import BackendBusy
from toyd.testing import espeak_pcm, running_daemon
from toyd.turn import Transcription, Turn

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1")


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def config(**extra: object) -> dict[str, object]:
    return {"role": "cloud", "plugins": ["stt_whisper"], "stt_whisper": {"cpu_threads": 2, **extra}}


async def transcribe(app, pcm: bytes, rate: int = 16000) -> Transcription:  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(
        app.host.call_first("toyd_transcribe", turn=TURN, pcm=pcm, sample_rate=rate), 60
    )


@pytest.mark.parametrize("window", [15.0, 0.0], ids=["short-window", "whisper-30s-window"])
async def test_hook_toyd_transcribe(state_dir: Path, window: float) -> None:
    """A spoken question is transcribed correctly, on both encoder paths and at any input rate."""
    speech = espeak_pcm("tell me a story about a dragon")
    async with running_daemon(config(window_seconds=window), state_dir=state_dir) as app:
        result = await transcribe(app, speech)
        assert words(result.text) == "tell me a story about a dragon"
        assert result.language == "en" and 0.5 < result.confidence <= 1.0 and result.no_speech < 0.5
        # any input rate is resampled; an odd trailing byte is ignored
        pcm24k = espeak_pcm("what is your name", sample_rate=24000) + b"\x01"
        assert words((await transcribe(app, pcm24k, 24000)).text) == "what is your name"
        # a regional or unknown language code from the toy never breaks a turn
        for code in ("en-US", "xx"):
            turn = Turn(device_id="toy-1", session_id="s1", turn_id="t2", language=code)
            result = await app.host.call_first(
                "toyd_transcribe", turn=turn, pcm=speech, sample_rate=16000
            )
            assert words(result.text) == "tell me a story about a dragon"


async def test_empty_short_and_silent_audio_give_empty_transcripts(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    async with running_daemon(config(), state_dir=state_dir) as app:
        for pcm in (b"", b"\x00", bytes(3200), bytes(16000 * 2 * 3)):
            result = await transcribe(app, pcm)
            assert result.text == "" and result.no_speech == 1.0
        assert "too short" in caplog.text and "silent" in caplog.text
        quiet_noise = (np.random.default_rng(1).normal(0, 30, 16000 * 2)).astype(np.int16).tobytes()
        assert (await transcribe(app, quiet_noise)).text == ""


async def test_five_minutes_of_audio_is_truncated_not_hung(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    speech = espeak_pcm("tell me a story about a dragon")
    five_minutes = (speech + bytes(16000 * 2 * 2)) * (300 * 16000 * 2 // (len(speech) + 64000) + 1)
    async with running_daemon(config(max_seconds=10), state_dir=state_dir) as app:
        result = await transcribe(app, five_minutes[: 300 * 32000])
        assert words(result.text).startswith("tell me a story about a dragon")
        assert words(result.text).count("dragon") <= 3, "no runaway repetition"
        assert "cut to the first 10 s" in caplog.text


async def test_queue_limit_refuses_clearly_and_cancel_frees_the_worker(state_dir: Path) -> None:
    speech = espeak_pcm("one two three four five six seven eight nine ten") * 3
    async with running_daemon(config(workers=1, queue_limit=0), state_dir=state_dir) as app:
        engine = app.host.plugins["stt_whisper"].engine
        first = asyncio.ensure_future(transcribe(app, speech))
        await asyncio.sleep(0)  # let it take the only worker
        with pytest.raises(BackendBusy, match="speech recognition is busy"):
            await transcribe(app, speech)
        first.cancel()  # barge-in: the awaiting task goes away, the worker stops at the next segment
        with pytest.raises(asyncio.CancelledError):
            await first
        from toyd.testing import wait_for

        await wait_for(lambda: engine.busy == 0, timeout=30)
        assert (
            words((await transcribe(app, espeak_pcm("what is your name"))).text)
            == "what is your name"
        )


def test_missing_model_path_is_a_clear_error(state_dir: Path) -> None:
    from toyd.errors import BackendError
    from toyd_plugins.stt_whisper.engine import WhisperEngine

    engine = WhisperEngine(
        str(state_dir / "nope"), compute_type="int8", workers=1, cpu_threads=1, queue_limit=1
    )
    with pytest.raises(BackendError, match="cannot load Whisper model"):
        engine.load()
    engine.close()


async def test_one_model_serves_concurrent_sessions_in_turn(state_dir: Path) -> None:
    speech = espeak_pcm("tell me a story about a dragon")
    async with running_daemon(config(workers=1, queue_limit=4), state_dir=state_dir) as app:
        turns = [Turn(device_id=f"toy-{i}", session_id=f"s{i}", turn_id="1") for i in range(3)]
        results = await asyncio.wait_for(
            asyncio.gather(
                *(
                    app.host.call_first("toyd_transcribe", turn=t, pcm=speech, sample_rate=16000)
                    for t in turns
                )
            ),
            60,
        )
        assert [words(r.text) for r in results] == ["tell me a story about a dragon"] * 3
        assert app.host.plugins["stt_whisper"].engine.busy == 0
