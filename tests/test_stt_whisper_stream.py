"""stt_whisper decoding while the child talks: real tiny.en on espeak-ng speech, fed in pieces."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np

from toyd.testing import espeak_pcm, running_daemon, wait_for
from toyd.turn import Transcription, Turn
from toyd_plugins.stt_whisper.streaming import GrowingUtterance

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1", language="en")
SILENCE = bytes(int(0.8 * 16000) * 2)  # the VAD's hangover


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def config(**extra: object) -> dict[str, object]:
    return {
        "role": "cloud",
        "plugins": ["stt_whisper"],
        "startup_timeout": 60,
        "stt_whisper": {"cpu_threads": 2, "window_seconds": 0, **extra},
    }


async def test_hook_toyd_transcribe_stream(state_dir: Path) -> None:
    """Speech then silence: the decode made while the child talked is the final answer, same as the plain decode."""
    speech = espeak_pcm("tell me a story about a dragon")
    async with running_daemon(config(), state_dir=state_dir) as app:
        plain = await app.host.call_first(
            "toyd_transcribe", turn=TURN, pcm=speech, sample_rate=16000
        )
        stream = await app.host.call_first("toyd_transcribe_stream", turn=TURN, sample_rate=16000)
        stream.feed(speech)
        await wait_for(lambda: stream.growing.decodes >= 1, timeout=60)
        for at in range(0, len(SILENCE), 640):
            stream.feed(SILENCE[at : at + 640])
        result = await asyncio.wait_for(stream.result(), 60)
        assert stream.growing.from_background
        assert words(result.text) == words(plain.text) == "tell me a story about a dragon"


async def test_speech_after_the_last_decode_is_decoded_again(state_dir: Path) -> None:
    """Words after the last background decode are never lost: the whole utterance is decoded at the end."""
    first, rest = espeak_pcm("tell me a story"), espeak_pcm("about a dragon")
    async with running_daemon(config(stream_step=10, stream_pause=0), state_dir=state_dir) as app:
        stream = await app.host.call_first("toyd_transcribe_stream", turn=TURN, sample_rate=16000)
        stream.feed(first)
        await wait_for(lambda: stream.growing.decodes >= 1, timeout=60)
        stream.feed(rest)  # less than stream_step: no new background decode
        result = await asyncio.wait_for(stream.result(), 60)
        assert not stream.growing.from_background
        assert words(result.text) == "tell me a story about a dragon"


async def test_a_pause_after_the_last_words_is_decoded_before_the_release(
    state_dir: Path,
) -> None:
    """The child stops talking and releases the button 0.3 s later: the transcript is ready by then.

    Fed as the toy sends it, 20 ms at a time in real time; steps are off, so after the
    first decode (at 0.5 s) only the pause starts one.
    """
    speech = espeak_pcm("tell me a story about a dragon")
    async with running_daemon(config(stream_step=10), state_dir=state_dir) as app:
        plain = await app.host.call_first(
            "toyd_transcribe", turn=TURN, pcm=speech, sample_rate=16000
        )
        stream = await app.host.call_first("toyd_transcribe_stream", turn=TURN, sample_rate=16000)
        audio = speech + bytes(int(0.3 * 16000) * 2)
        for at in range(0, len(audio), 640):
            stream.feed(audio[at : at + 640])
            await asyncio.sleep(0.02)
        result = await asyncio.wait_for(stream.result(), 60)
        assert stream.growing.from_background and stream.growing.decodes == 2
        assert words(result.text) == words(plain.text) == "tell me a story about a dragon"


async def test_pauses_start_one_decode_each_and_silence_no_more() -> None:
    """A decode starts when new words are followed by ``pause_seconds`` of quiet; quiet alone starts none."""
    decoded: list[float] = []

    async def decode(audio: np.ndarray) -> Transcription:
        decoded.append(len(audio) / 16000)
        return Transcription(text="words")

    growing = GrowingUtterance(
        decode, step_seconds=10, min_seconds=0.5, tail_db=20, pause_seconds=0.2
    )
    tone = (0.3 * np.sin(np.arange(320) / 3)).astype(np.float32)
    quiet = np.zeros(320, np.float32)

    async def say(frames: np.ndarray, count: int) -> None:
        for _ in range(count):
            growing.feed(frames)
            await asyncio.sleep(0)  # a started decode finishes before the next frame

    await say(tone, 40)  # 0.8 s of words: the first decode at 0.5 s, then only pauses
    await say(quiet, 9)  # 0.18 s: not a pause yet
    assert decoded == [0.5]
    await say(quiet, 1)  # 0.2 s
    assert decoded == [0.5, 1.0]
    await say(quiet, 50)  # a long silence: nothing new to decode
    assert decoded == [0.5, 1.0]
    await say(tone, 20)
    await say(quiet, 10)
    assert decoded == [0.5, 1.0, 2.0 + 0.6]
    await growing.aclose()


async def test_abort_cancels_the_background_decode(state_dir: Path) -> None:
    async with running_daemon(config(), state_dir=state_dir) as app:
        stream = await app.host.call_first("toyd_transcribe_stream", turn=TURN, sample_rate=16000)
        stream.feed(espeak_pcm("what colours are in a rainbow"))
        assert stream.growing._task is not None
        await asyncio.wait_for(stream.aclose(), 10)
        assert stream.growing._task is None


async def test_streaming_can_be_turned_off(state_dir: Path) -> None:
    async with running_daemon(config(stream=False), state_dir=state_dir) as app:
        assert (
            await app.host.call_first("toyd_transcribe_stream", turn=TURN, sample_rate=16000)
            is None
        )


def test_stable_words_are_what_two_decodes_agree_on() -> None:
    growing = GrowingUtterance(lambda audio: None, step_seconds=0.5, min_seconds=0.5, tail_db=20)  # type: ignore
    growing._commit("Tell me a")
    assert growing.stable == ""
    growing._commit("Tell me a story.")
    assert growing.stable == "Tell me a"
    growing._commit("Tell me about")  # a later decode that disagrees never takes words back
    assert growing.stable == "Tell me a"
    growing._commit("Tell me about a dragon.")
    assert growing.stable == "Tell me a"
    growing._commit("Tell me a story about")
    growing._commit("Tell me a story about a dragon.")
    assert growing.stable == "Tell me a story about"
