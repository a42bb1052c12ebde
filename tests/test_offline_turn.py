"""Local turns in a real daemon: vosk_stt + cache + offline, driven by events (file-audio boundary)."""

from __future__ import annotations

import logging

import pytest

from toyd.audio import frames
from toyd.events import (
    AudioFrame,
    ButtonPressed,
    CloudOffline,
    CloudOnline,
    OfflineAnswered,
    ReplyAudio,
    ReplyAudioEnd,
    ReplyTimeout,
    SpeechEnded,
    StateChanged,
    Transcript,
)
from toyd.state import State
from toyd.testing import espeak_pcm, next_event, running_daemon, wait_for
from toyd.testing.drive import SILENCE_PAD, speak_turn
from toyd.turn import Turn

RESPONSES = {
    "엄마 어디 있어": "엄마는 곧 오실 거야!",
    "이름이 뭐야": "나는 토이야!",
    "재미있어": "나도 재미있어!",
}


def config(**vosk):
    return {
        "startup_timeout": 60,
        "plugins": ["tts_espeak", "cache", "vosk_stt", "offline"],
        "cache": {"responses": RESPONSES, "language": "ko"},
        "vosk_stt": {"load": "eager", **vosk},
        "offline": {"language": "ko"},
    }


async def ready(app):
    """Wait until the cache filled and the recogniser has its grammar (the fill runs as a service)."""
    vosk = app.host.plugins["vosk_stt"]
    settled = lambda: vosk.engine.loaded or vosk.error or vosk.settings.load != "eager"  # noqa: E731
    await wait_for(lambda: set(vosk.engine.phrases) == set(RESPONSES) and settled(), 60)


def say(text):
    return espeak_pcm(text, voice="ko", rate=135)


async def go_offline(app):
    sub = app.bus.subscribe("overlay", (StateChanged,), maxsize=10)
    app.bus.publish(CloudOffline(reason="test: link down"))
    await next_event(sub, StateChanged, 5, lambda e: e.offline)
    sub.close()


async def test_offline_turn_answers_a_cached_phrase_through_vosk(state_dir):
    async with running_daemon(config(), state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        sub = app.bus.subscribe("t", (ReplyAudio, ReplyAudioEnd, Transcript), maxsize=10_000)
        answer, latency = await speak_turn(app, say("엄마 어디 있어"))
        assert answer.source == "cache" and answer.reply == "엄마는 곧 오실 거야!"
        assert answer.transcript.replace(" ", "") == "엄마어디있어"
        assert latency < 5
        heard = await next_event(sub, Transcript, 5)
        assert heard.source == "vosk" and heard.text == "엄마 어디 있어"
        first = await next_event(sub, ReplyAudio, 5)
        assert first.response_id == answer.response_id and len(first.pcm) == 640
        await next_event(sub, ReplyAudioEnd, 5, lambda e: e.response_id == answer.response_id)


async def test_out_of_grammar_speech_gets_the_fallback_not_a_cached_answer(state_dir):
    async with running_daemon(config(), state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        for text in ("오늘 날씨 어때", "자동차 타고 싶어"):
            answer, _ = await speak_turn(app, say(text))
            assert answer.source == "fallback", (text, answer)
            assert answer.reply not in RESPONSES.values()


async def test_reply_timeout_online_answers_from_the_buffered_utterance(state_dir):
    async with running_daemon(config(decode="offline"), state_dir=state_dir) as app:
        await ready(app)
        sub = app.bus.subscribe("t", (StateChanged, OfflineAnswered, Transcript), maxsize=10_000)
        app.bus.publish(ButtonPressed())
        await next_event(sub, StateChanged, 5, lambda e: e.new is State.LISTENING)
        for f in frames(SILENCE_PAD + say("이름이 뭐야") + SILENCE_PAD):
            app.bus.publish(AudioFrame(pcm=f))
        app.bus.publish(SpeechEnded(reason="silence"))
        await next_event(sub, StateChanged, 5, lambda e: e.new is State.THINKING)
        app.bus.publish(ReplyTimeout(turn_id="turn-7"))
        heard = await next_event(sub, Transcript, 30)
        assert heard.turn_id == "turn-7" and heard.source == "vosk" and heard.text == "이름이 뭐야"
        answer = await next_event(sub, OfflineAnswered, 10)
        assert (
            answer.turn_id == "turn-7"
            and answer.source == "cache"
            and answer.reply == "나는 토이야!"
        )
        assert answer.reason == "reply_timeout"


async def test_online_turns_stay_with_the_cloud_and_the_link_returns(state_dir):
    async with running_daemon(config(), state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        answer, _ = await speak_turn(app, say("재미있어"))
        assert answer.source == "cache"
        sub = app.bus.subscribe("t", (StateChanged, OfflineAnswered), maxsize=10_000)
        app.bus.publish(CloudOnline(backend="test"))
        await next_event(sub, StateChanged, 5, lambda e: not e.offline)
        app.bus.publish(ButtonPressed())  # barge-in from THINKING: a new turn, online now
        await next_event(sub, StateChanged, 5, lambda e: e.new is State.LISTENING)
        app.bus.publish(SpeechEnded(reason="silence"))
        await next_event(sub, StateChanged, 5, lambda e: e.new is State.THINKING and not e.offline)
        with pytest.raises(TimeoutError):  # nothing answers locally while the cloud is up
            await next_event(sub, OfflineAnswered, 1.0)


async def test_missing_model_plays_the_fallback_and_the_daemon_keeps_running(
    state_dir, tmp_path, caplog
):
    cfg = config(model=str(tmp_path / "no-such-model"), load="lazy")
    async with running_daemon(cfg, state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        answer, _ = await speak_turn(app, say("이름이 뭐야"))
        assert answer.source == "fallback"
        assert (
            "offline speech recognition disabled" in caplog.text and "no-such-model" in caplog.text
        )
        answer, _ = await speak_turn(app, say("이름이 뭐야"))  # still answering, still no crash
        assert answer.source == "fallback"


@pytest.mark.slow
async def test_corrupt_cache_file_is_set_aside_and_turns_still_work(state_dir):
    (state_dir / "responses.db").write_bytes(b"\x00garbage" * 512)
    async with running_daemon(config(), state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        answer, _ = await speak_turn(app, say("엄마 어디 있어"))
        assert answer.source == "cache"
    aside = list(state_dir.glob("responses.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"\x00garbage" * 512


@pytest.mark.slow
async def test_unreadable_fallback_wav_falls_back_to_the_spoken_line(state_dir, tmp_path, caplog):
    bad = tmp_path / "sorry.wav"
    bad.write_bytes(b"RIFF not really")
    cfg = config()
    cfg["offline"] = {
        "language": "ko",
        "fallback_wav": str(bad),
        "fallback_text": "다시 말해 줄래?",
    }
    async with running_daemon(cfg, state_dir=state_dir) as app:
        await ready(app)
        plugin = app.host.plugins["offline"]
        await wait_for(lambda: plugin.fallback_pcm, 30)
        await go_offline(app)
        answer, _ = await speak_turn(app, say("자동차 타고 싶어"))
        assert answer.source == "fallback" and answer.reply == "다시 말해 줄래?"
    assert "offline.fallback_wav" in caplog.text and "sorry.wav" in caplog.text


@pytest.mark.slow
async def test_speech_end_while_not_listening_starts_no_local_turn(state_dir):
    async with running_daemon(config(), state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        sub = app.bus.subscribe("t", (OfflineAnswered,), maxsize=100)
        app.bus.publish(SpeechEnded(reason="silence"))  # VAD noise while the toy is IDLE
        with pytest.raises(TimeoutError):
            await next_event(sub, OfflineAnswered, 1.0)
        answer, _ = await speak_turn(app, say("재미있어"))  # a real question still works
        assert answer.source == "cache"


@pytest.mark.slow
async def test_hook_reconfigure_vosk_mode_applies_live_and_a_new_model_needs_restart(
    state_dir, tmp_path
):
    from toyd.config import validate
    from toyd.registry import Registry

    registry = Registry()

    def push(**vosk):
        data = {"state_dir": str(state_dir), **config(**vosk)}
        return validate(data, registry.schema, source="<push>", known_plugins=registry.names)

    async with running_daemon(config(), state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        assert "vosk_stt" not in await app.apply_config(push(mode="free"))
        answer, _ = await speak_turn(app, say("엄마 어디 있어"))
        # asked again, the recogniser gives its result for the same (last) utterance
        heard = await app.host.call_first(
            "toyd_transcribe_local", turn=Turn("toy", "local", "again")
        )
        assert (
            not heard.grammar and heard.phrase == ""
        )  # free-form now; the cache matched fuzzily or not
        assert answer.source in ("cache", "fallback")
        assert "vosk_stt" in await app.apply_config(push(mode="free", model=str(tmp_path)))
        assert app.host.plugins["vosk_stt"].engine.loaded  # the running model stays in use


async def test_model_is_unloaded_online_and_loads_again_at_the_next_outage(state_dir):
    cfg = config()
    cfg["vosk_stt"] = {"load": "offline", "unload_after": 0.2}
    async with running_daemon(cfg, state_dir=state_dir) as app:
        vosk = app.host.plugins["vosk_stt"]
        await wait_for(lambda: set(vosk.engine.phrases) == set(RESPONSES), 60)
        assert not vosk.engine.loaded  # nothing loaded while the link was never down
        await go_offline(app)
        await wait_for(lambda: vosk.engine.loaded, 60)
        app.bus.publish(CloudOnline(backend="test"))
        await wait_for(lambda: not vosk.engine.loaded, 10)
        await go_offline(app)
        await wait_for(lambda: vosk.engine.loaded, 60)
        answer, _ = await speak_turn(app, say("엄마 어디 있어"))
        assert answer.source == "cache"


async def test_the_childs_words_and_replies_reach_the_log_only_at_debug(state_dir, caplog):
    caplog.set_level(logging.INFO)
    async with running_daemon(config(), state_dir=state_dir) as app:
        await ready(app)
        await go_offline(app)
        answer, _ = await speak_turn(app, say("엄마 어디 있어"))
        assert answer.source == "cache"
        caplog.set_level(logging.DEBUG, logger="toyd_plugins")
        answer, _ = await speak_turn(app, say("이름이 뭐야"))
        assert answer.source == "cache"
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    for words in (
        "엄마 어디 있어",
        RESPONSES["엄마 어디 있어"],
        "이름이 뭐야",
        RESPONSES["이름이 뭐야"],
    ):
        assert not any(words in r.getMessage() for r in info), f"{words!r} logged above DEBUG"
    assert any("이름이 뭐야" in r.getMessage() for r in debug), (
        "at DEBUG the transcript is there to debug with"
    )
