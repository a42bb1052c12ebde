"""The device hooks the offline switch asks: any plugin may answer them (stand-ins here, no Vosk)."""

from __future__ import annotations

from pathlib import Path

from toyd import PluginDeclaration, hookimpl
from toyd.events import CloudOffline, StateChanged
from toyd.localturn import CacheAnswer, LocalTranscription
from toyd.testing import next_event, running_daemon
from toyd.testing.drive import speak_turn

PCM = bytes(range(256)) * 25  # 10 frames of "speech" (the stand-in recogniser does not listen)


class Recogniser:
    """Hears what it is told to; records the turns it was asked about."""

    def __init__(
        self, heard: LocalTranscription | None = None, error: Exception | None = None
    ) -> None:
        self.heard, self.error, self.turns = heard, error, []

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device",))

    @hookimpl
    async def toyd_transcribe_local(self, turn):
        self.turns.append(turn)
        if self.error is not None:
            raise self.error
        return self.heard


class Cache:
    """Knows one phrase; records what it was asked."""

    def __init__(self) -> None:
        self.asked = []

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device",))

    @hookimpl
    def toyd_lookup_reply(self, text):
        self.asked.append(text)
        return (
            CacheAnswer(hit=True, phrase=text, reply="Hello, friend!", pcm=PCM)
            if text == "hello"
            else CacheAnswer(hit=False)
        )


async def _offline_turn(plugins: dict, state_dir: Path):
    config = {"plugins": ["tts_espeak", "offline", *plugins], "offline": {"language": "en"}}
    async with running_daemon(config, state_dir=state_dir, extra_plugins=plugins) as app:
        sub = app.bus.subscribe("t", (StateChanged,), maxsize=100)
        app.bus.publish(CloudOffline(reason="test"))
        await next_event(sub, StateChanged, 5, lambda e: e.offline)
        answer, _ = await speak_turn(app, PCM, timeout=20)
        return answer, {name: app.host.plugins[name] for name in plugins}


async def test_hook_toyd_transcribe_local(state_dir: Path) -> None:
    heard = LocalTranscription(text="hello", phrase="hello", grammar=True)
    answer, p = await _offline_turn({"rec": lambda: Recogniser(heard), "kv": Cache}, state_dir)
    assert (
        answer.source == "cache"
        and answer.reply == "Hello, friend!"
        and answer.transcript == "hello"
    )
    assert p["rec"].turns[0].turn_id == answer.turn_id and p["rec"].turns[0].language == "en"
    assert p["kv"].asked == ["hello"]


async def test_hook_toyd_transcribe_local_declined_or_raising_plays_the_fallback(
    state_dir: Path,
) -> None:
    for name, rec in (
        ("declines", lambda: Recogniser(None)),
        ("raises", lambda: Recogniser(error=RuntimeError("x"))),
    ):
        answer, p = await _offline_turn({"rec": rec, "kv": Cache}, state_dir / name)
        assert answer.source == "fallback", name
        assert p["kv"].asked == [], "nothing heard, nothing looked up"


async def test_hook_toyd_lookup_reply(state_dir: Path) -> None:
    miss = LocalTranscription(text="what is the weather", phrase="", grammar=False)
    answer, p = await _offline_turn({"rec": lambda: Recogniser(miss), "kv": Cache}, state_dir)
    assert answer.source == "fallback" and p["kv"].asked == ["what is the weather"]
