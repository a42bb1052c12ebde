"""The gateway's cacheable-reply policy at protocol level: which replies carry a cache key, and when
the key is confirmed on ``tts stop`` (the whole reply passed the safety filter)."""

from __future__ import annotations

import pytest

from linkkit import RawToy, cloud, speech
from test_gateway_hooks import Recorder
from toyd.turn import SafetyVerdict, Transcription
from toyd_plugins.gateway.pipeline import reply_cache_key

PHRASES = ["What's your name?", "이름이 뭐야"]


async def _turn(tmp_path, recorder: Recorder, phrases=PHRASES, **hello) -> tuple[dict, dict]:
    """One turn; returns (tts start, tts stop)."""
    async with cloud(
        tmp_path,
        plugins=("gateway", "recorder"),
        extra_plugins={"recorder": lambda: recorder},
        cacheable_phrases=phrases,
    ) as (app, port):
        toy = await RawToy(port).connect(**hello)
        await toy.talk(speech(), turn_id="t1")
        messages, _ = await toy.response()
        await toy.close()
    start = next(m for m in messages if m["type"] == "tts" and m["state"] == "start")
    return start, messages[-1]


def heard(text: str, language: str = "en"):
    return lambda turn, pcm, sample_rate: Transcription(text=text, language=language)


async def test_a_listed_question_gets_a_key_on_start_and_stop(tmp_path):
    # "what is your name" is not "what's your name": only case, punctuation and spaces are ignored
    start, stop = await _turn(
        tmp_path, Recorder(transcribe=heard("what's YOUR name")), persona="dragon", language="en"
    )
    key = reply_cache_key("What's your name?", "dragon", "en")
    assert start["kind"] == "reply" and start["cache_key"] == key
    assert stop["reason"] == "done" and stop["cache_key"] == key


async def test_the_key_names_phrase_persona_and_language(tmp_path):
    spaced = await _turn(tmp_path, Recorder(transcribe=heard("이름이 뭐 야?", "ko")))
    assert spaced[1]["cache_key"] == reply_cache_key(
        "이름이뭐야", None, "ko"
    )  # detected language when the toy sent none
    keys = {
        reply_cache_key("이름이 뭐야", p, lang) for p in (None, "dragon") for lang in ("ko", "en")
    }
    keys |= {reply_cache_key("What's your name?", None, "ko")}
    assert len(keys) == 5


@pytest.mark.parametrize(
    "phrases, text", [([], "what's your name"), (PHRASES, "what is your name")]
)
async def test_other_questions_or_no_policy_get_no_key(tmp_path, phrases, text):
    start, stop = await _turn(tmp_path, Recorder(transcribe=heard(text)), phrases=phrases)
    assert "cache_key" not in start and "cache_key" not in stop


async def test_a_reply_with_a_blocked_sentence_is_not_confirmed(tmp_path):
    def judge(turn, text, speaker):
        if "honey" in text:
            return SafetyVerdict(
                safe=False, action="block", category="food", replacement="Let's sing!"
            )
        return SafetyVerdict(safe=True, text=text)

    start, stop = await _turn(tmp_path, Recorder(transcribe=heard("What's your name"), check=judge))
    assert start["cache_key"], "the first sentence was fine: the reply started as cacheable"
    assert stop["reason"] == "done" and "cache_key" not in stop, (
        "the key is withdrawn: the toy keeps nothing"
    )


async def test_a_redirected_question_is_never_cached_as_a_reply(tmp_path):
    def judge(turn, text, speaker):
        if speaker == "child":
            return SafetyVerdict(
                safe=False, action="redirect", category="x", replacement="Let's play!"
            )
        return SafetyVerdict(safe=True, text=text)

    start, stop = await _turn(tmp_path, Recorder(transcribe=heard("What's your name"), check=judge))
    assert start["kind"] == "redirect" and "cache_key" not in stop


def test_a_phrase_without_words_is_refused_naming_it():
    from toyd.config import validate
    from toyd.errors import ConfigError
    from toyd.registry import Registry

    registry = Registry()
    with pytest.raises(ConfigError, match="cacheable phrase '\\?!' has no words"):
        validate(
            {
                "role": "cloud",
                "plugins": ["gateway"],
                "gateway": {"cacheable_phrases": ["hello", "?!"]},
            },
            registry.schema,
            known_plugins=registry.names,
        )
