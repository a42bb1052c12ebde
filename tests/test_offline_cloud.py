"""The cloud goes away mid-conversation: the toy answers from its cache through real Vosk, then
comes back online by itself. Real gateway and cloud link on a loopback WebSocket."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from linkkit import cloud_config, device_config, play_reply, speak_turn
from toyd import PluginDeclaration, State, hookimpl
from toyd import events as ev
from toyd.testing import espeak_pcm, free_port, next_event, running_daemon, wait_for
from toyd.testing.drive import SILENCE_PAD
from toyd.turn import Transcription

pytestmark = pytest.mark.slow

RESPONSES = {"엄마 어디 있어": "엄마는 곧 오실 거야!", "이름이 뭐야": "나는 토이야!"}


def toy_config(port: int) -> dict:
    cfg = device_config(port, reply_timeout=3.0)
    cfg.update(
        startup_timeout=60,
        plugins=["cloudlink", "tts_espeak", "cache", "vosk_stt", "offline"],
        cache={"responses": RESPONSES},
        vosk_stt={"load": "eager"},
        offline={"language": "ko"},
    )
    return cfg


def korean(text: str) -> bytes:
    return SILENCE_PAD + espeak_pcm(text, voice="ko", rate=135) + SILENCE_PAD


async def grammar_ready(toy) -> None:
    """The cache has filled and the recogniser has its grammar (the fill runs as a service)."""
    vosk = toy.host.plugins["vosk_stt"]
    settled = lambda: vosk.engine.loaded or vosk.error or vosk.settings.load != "eager"  # noqa: E731
    await wait_for(lambda: set(vosk.engine.phrases) == set(RESPONSES) and settled(), 60)


async def finish_local_turn(toy, sub) -> ev.OfflineAnswered:
    response_id, _ = await play_reply(
        toy, sub, timeout=30
    )  # frames are published before OfflineAnswered
    answer = await next_event(sub, ev.OfflineAnswered, 5)
    assert response_id == answer.response_id
    await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)
    return answer


async def test_gateway_killed_mid_conversation_then_back(tmp_path):
    port = free_port()
    async with contextlib.AsyncExitStack() as cloud_stack:
        await cloud_stack.enter_async_context(
            running_daemon(cloud_config(port), state_dir=tmp_path / "cloud")
        )
        async with running_daemon(toy_config(port), state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test", maxsize=100_000)
            await next_event(sub, ev.CloudOnline, 30)
            await grammar_ready(toy)

            # 1. online: the cloud answers (the echo chain), nothing local
            await speak_turn(
                toy, sub, korean("이름이 뭐야"), pace=0.02
            )  # real time: the gateway rate-limits
            assert (await next_event(sub, ev.Transcript, 10)).source == "cloud"
            await play_reply(toy, sub)
            await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)

            # 2. the gateway dies: the overlay goes offline, the next turn is answered from the cache
            await cloud_stack.aclose()
            await next_event(sub, ev.StateChanged, 10, lambda e: e.offline)
            await speak_turn(toy, sub, korean("엄마 어디 있어"), pace=0)
            answer = await finish_local_turn(toy, sub)
            assert (answer.source, answer.reply) == ("cache", "엄마는 곧 오실 거야!")

            # 3. out-of-grammar speech gets the fallback clip, not a wrong cached answer
            await speak_turn(toy, sub, korean("자동차 타고 싶어"), pace=0)
            answer = await finish_local_turn(toy, sub)
            assert answer.source == "fallback" and answer.reply not in RESPONSES.values()

            # 4. the gateway returns on the same port: online again without a restart
            async with running_daemon(cloud_config(port), state_dir=tmp_path / "cloud"):
                await next_event(sub, ev.StateChanged, 30, lambda e: not e.offline)
                await speak_turn(toy, sub, korean("이름이 뭐야"), pace=0.02)
                transcript = await next_event(sub, (ev.Transcript, ev.OfflineAnswered), 10)  # type: ignore[arg-type]
                assert isinstance(transcript, ev.Transcript) and transcript.source == "cloud"
                await play_reply(toy, sub)


async def test_cloud_that_cannot_answer_hands_the_turn_to_vosk(tmp_path):
    """The link is up but the cloud has no AI chain: its error (a ReplyTimeout on the toy)
    hands the turn to Vosk, which decodes the audio buffered while the link was up."""
    port = free_port()
    cloud = cloud_config(port)
    cloud["plugins"] = ["gateway"]  # no AI chain: the gateway never starts a reply
    async with running_daemon(cloud, state_dir=tmp_path / "cloud"):
        async with running_daemon(toy_config(port), state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test", maxsize=100_000)
            await next_event(sub, ev.CloudOnline, 30)
            await grammar_ready(toy)
            await speak_turn(toy, sub, korean("이름이 뭐야"), pace=0.02)
            timeout = await next_event(sub, ev.ReplyTimeout, 15)
            answer = await next_event(sub, ev.OfflineAnswered, 30)
            assert answer.turn_id == timeout.turn_id and answer.source == "cache"
            assert answer.reply == "나는 토이야!"


class SlowSpeechToText:
    """Stand-in for a paid cloud STT API with a realistic 0.8 s delay (the echo chain answers at once)."""

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("cloud",))

    @hookimpl
    async def toyd_transcribe(self, turn, pcm, sample_rate):
        await asyncio.sleep(0.8)
        return Transcription(text="echo", language="ko")


async def test_hot_cache_answers_a_known_phrase_online_and_aborts_the_cloud_turn(tmp_path):
    port = free_port()
    toy = toy_config(port)
    toy["vosk_stt"] = {"load": "eager", "decode": "always"}
    toy["offline"] = {"language": "ko", "hot_cache": True}
    cloud_cfg = cloud_config(port, plugins=("gateway", "echochain", "slowstt"))
    async with running_daemon(
        cloud_cfg, state_dir=tmp_path / "cloud", extra_plugins={"slowstt": SlowSpeechToText}
    ) as cloud:
        cloud_sub = cloud.bus.subscribe("cloud", (ev.TurnLatency,), maxsize=100)
        async with running_daemon(toy, state_dir=tmp_path / "toy") as app:
            sub = app.bus.subscribe("test", maxsize=100_000)
            await next_event(sub, ev.CloudOnline, 30)
            await grammar_ready(app)

            # a cached phrase: answered on the toy, the cloud's reply never plays
            await speak_turn(app, sub, korean("엄마 어디 있어"), pace=0.02)
            response_id, _ = await play_reply(app, sub, timeout=10)
            assert response_id.startswith("local-")
            answer = await next_event(sub, ev.OfflineAnswered, 5)
            assert (answer.source, answer.reason) == ("cache", "hot_cache")
            await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)
            with pytest.raises(TimeoutError):  # the aborted cloud turn sends no audio
                await next_event(sub, ev.ReplyAudio, 2.0)

            # anything else: the cloud answers as usual (this stand-in chain replies with text only)
            await speak_turn(app, sub, korean("자동차 타고 싶어"), pace=0.02)
            got = await next_event(sub, (ev.ResponseText, ev.OfflineAnswered), 15)  # type: ignore[arg-type]
            assert isinstance(got, ev.ResponseText) and got.delta.strip() == "Echo."
            await next_event(cloud_sub, ev.TurnLatency, 10)
