"""A reply the cloud marks cacheable (cache key on its ``tts start``, confirmed on ``tts stop``) lands
in the toy's response cache, and answers the same question later with the cloud gone. First against a
stand-in speaking protocol v1 over a real loopback WebSocket (exact frames), then against the real
gateway's ``cacheable_phrases`` policy."""

from __future__ import annotations

import contextlib
import json

import pytest
from websockets.asyncio.server import serve

from linkkit import play_reply, speak_turn
from toyd import State
from toyd import events as ev
from toyd.audio import frames
from toyd.audio.opus import OpusEncoder
from toyd.protocol import encode, parse
from toyd.protocol.frames import pack_audio
from toyd.protocol.messages import Llm, ServerHello, Stt, Tts
from toyd.testing import espeak_pcm, free_port, next_event, running_daemon, wait_for
from toyd.testing.drive import SILENCE_PAD

pytestmark = pytest.mark.slow

QUESTION, ANSWER = "이름이 뭐야", "나는 토이야!"


@contextlib.asynccontextmanager
async def standin_cloud(port: int, *, cacheable: bool):
    """Answers every turn with QUESTION / ANSWER and real Opus audio; marks it cacheable if asked."""
    answer_pcm = espeak_pcm(ANSWER, voice="ko")

    async def session(conn):  # type: ignore[no-untyped-def]
        parse(await conn.recv(), "up")  # hello
        await conn.send(encode(ServerHello(session_id="standin")))
        async for frame in conn:
            if isinstance(frame, bytes):
                continue
            msg = json.loads(frame)
            if msg["type"] == "listen" and msg["state"] == "stop":
                turn = msg["turn_id"]
                await conn.send(encode(Stt(text=QUESTION, turn_id=turn)))
                await conn.send(encode(Llm(text=ANSWER, final=True, turn_id=turn, response_id=1)))
                await conn.send(
                    encode(
                        Tts(
                            state="start",
                            response_id=1,
                            turn_id=turn,
                            kind="reply",
                            cache_key="standin-1" if cacheable else None,
                        )
                    )
                )
                enc = OpusEncoder()
                for seq, f in enumerate(frames(answer_pcm)):
                    await conn.send(pack_audio(1, seq, enc.encode(f)))
                await conn.send(
                    encode(
                        Tts(
                            state="stop",
                            response_id=1,
                            turn_id=turn,
                            reason="done",
                            cache_key="standin-1" if cacheable else None,
                        )
                    )
                )

    async with serve(session, "127.0.0.1", port):
        yield


def toy_config(port: int) -> dict:
    return {
        "role": "device",
        "device_id": "toy-1",
        "startup_timeout": 60,
        "plugins": ["cloudlink", "tts_espeak", "cache", "vosk_stt", "offline"],
        "cloudlink": {
            "url": f"ws://127.0.0.1:{port}",
            "token": "t",
            "backoff_initial": 0.05,
            "backoff_max": 0.5,
        },
        "cache": {"responses": {"엄마 어디 있어": "곧 오실 거야."}},
        "vosk_stt": {"load": "eager"},
        "offline": {"language": "ko"},
    }


@pytest.mark.parametrize("cacheable", [True, False])
async def test_cacheable_cloud_reply_answers_later_offline(tmp_path, cacheable):
    port = free_port()
    question = SILENCE_PAD + espeak_pcm(QUESTION, voice="ko", rate=135) + SILENCE_PAD
    async with running_daemon(toy_config(port), state_dir=tmp_path / "toy") as toy:
        sub = toy.bus.subscribe("test", maxsize=100_000)
        async with standin_cloud(port, cacheable=cacheable):
            await next_event(sub, ev.CloudOnline, 30)
            await speak_turn(toy, sub, question, pace=0)
            response_id, _ = await play_reply(toy, sub)
            assert not response_id.startswith("local-")
            await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)
            vosk = toy.host.plugins["vosk_stt"]
            if (
                cacheable
            ):  # the cache announced the new phrase: it is in the recogniser's grammar now
                await wait_for(lambda: QUESTION in vosk.engine.phrases, 30)
        await next_event(sub, ev.StateChanged, 10, lambda e: e.offline)
        await wait_for(lambda: vosk.engine.loaded, 60)
        await speak_turn(toy, sub, question, pace=0)
        answer = await next_event(sub, ev.OfflineAnswered, 30)
        if cacheable:
            assert (answer.source, answer.reply) == ("cache", ANSWER)
        else:  # not marked cacheable: nothing was kept, the question is not known offline
            assert answer.source == "fallback"
            assert QUESTION not in vosk.engine.phrases


async def test_real_gateway_marks_a_listed_question_and_the_toy_answers_it_offline(tmp_path):
    """The real gateway's policy (``cacheable_phrases``) end to end: the reply is stored on the toy
    with the gateway's key, then the same question is answered from the cache with the cloud gone."""
    from linkkit import TOKEN, cloud_config
    from toyd_plugins.gateway.pipeline import reply_cache_key

    port = free_port()
    cloud = cloud_config(
        port,
        cacheable_phrases=["이름이 뭐야?"],
        sections={"echochain": {"transcript": QUESTION, "reply": ANSWER}},
    )
    toy_cfg = toy_config(port)
    toy_cfg["cloudlink"].update(token=TOKEN, language="ko")
    question = SILENCE_PAD + espeak_pcm(QUESTION, voice="ko", rate=135) + SILENCE_PAD
    async with running_daemon(toy_cfg, state_dir=tmp_path / "toy") as toy:
        sub = toy.bus.subscribe("test", maxsize=100_000)
        async with running_daemon(cloud, state_dir=tmp_path / "cloud"):
            await next_event(sub, ev.CloudOnline, 30)
            await speak_turn(
                toy, sub, question, pace=0.02
            )  # real time: the gateway rate-limits the uplink
            response_id, played = await play_reply(toy, sub)
            stored = await next_event(sub, ev.CacheStore, 10)
            assert (stored.phrase, stored.reply) == (QUESTION, ANSWER)
            assert stored.cache_key == reply_cache_key(QUESTION, None, "ko")
            assert stored.pcm == b"".join(played), (
                "the cache keeps exactly the audio the child heard"
            )
            await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)
            vosk = toy.host.plugins["vosk_stt"]
            await wait_for(lambda: QUESTION in vosk.engine.phrases, 30)
        await next_event(sub, ev.StateChanged, 10, lambda e: e.offline)
        await wait_for(lambda: vosk.engine.loaded, 60)
        await speak_turn(toy, sub, question, pace=0)
        answer = await next_event(sub, ev.OfflineAnswered, 30)
        assert (answer.source, answer.reply) == ("cache", ANSWER)
