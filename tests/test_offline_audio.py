"""The whole toy offline: file microphone → VAD → Vosk → cache → file speaker, cloud unreachable."""

from __future__ import annotations

import wave

import pytest

from toyd import State, Trigger
from toyd import events as ev
from toyd.audio.wav import write_wav
from toyd.testing import espeak_pcm, free_port, next_event, running_daemon, wait_for

pytestmark = pytest.mark.slow

RESPONSES = {"엄마 어디 있어": "엄마는 곧 오실 거야!", "이름이 뭐야": "나는 토이야!"}


async def test_offline_turn_through_microphone_vad_and_speaker(tmp_path, state_dir):
    mic = tmp_path / "child.wav"
    # 4 s of room silence (the daemon starts, the link fails), the question, then silence
    write_wav(mic, bytes(4 * 32000) + espeak_pcm("엄마 어디 있어", voice="ko", rate=135))
    config = {
        "startup_timeout": 60,
        "plugins": ["cloudlink", "audio", "vad", "tts_espeak", "cache", "vosk_stt", "offline"],
        "cloudlink": {"url": f"ws://127.0.0.1:{free_port()}", "token": "t", "connect_timeout": 1.0},
        "audio": {
            "backend": "file",
            "file": {"input": str(mic), "realtime": True, "output_realtime": False},
        },
        "cache": {"responses": RESPONSES},
        "vosk_stt": {"load": "eager"},
        "offline": {"language": "ko"},
    }
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe(
            "test",
            (
                ev.StateChanged,
                ev.OfflineAnswered,
                ev.PlaybackStarted,
                ev.PlaybackFinished,
                ev.SpeechEnded,
            ),
            maxsize=10_000,
        )
        await next_event(
            sub, ev.StateChanged, 10, lambda e: e.offline
        )  # nobody listens on that port
        vosk = app.host.plugins["vosk_stt"]
        await wait_for(lambda: set(vosk.engine.phrases) == set(RESPONSES), 10)
        app.bus.publish(
            ev.StateRequest(trigger=Trigger.LISTEN, cause="wake_word:test")
        )  # hands-free turn
        ended = await next_event(sub, ev.SpeechEnded, 30)
        assert ended.reason == "silence"
        answer = await next_event(sub, ev.OfflineAnswered, 30)
        assert (answer.source, answer.reply) == ("cache", "엄마는 곧 오실 거야!")
        started = await next_event(sub, ev.PlaybackStarted, 10)
        assert started.response_id == answer.response_id
        finished = await next_event(sub, ev.PlaybackFinished, 30)
        assert finished.response_id == answer.response_id and not finished.interrupted
        await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE and e.offline)
    with wave.open(str(state_dir / "speaker.wav")) as w:
        played = w.readframes(w.getnframes())
    assert len(played) >= 32000 and any(
        played[i] for i in range(0, len(played), 97)
    )  # about a second of reply
