"""The llm plugin through its hooks, against the local chat-completions stand-in."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from toyd.store import fold
from toyd.testing import running_daemon
from toyd.testing.standin import StandIn, collect
from toyd.turn import Turn
from toyd_plugins.llm.offline import OfflineResponder
from toyd_plugins.llm.prompt import ReplyLimiter, VoiceCleaner, chat_messages, system_prompt
from toyd_plugins.llm.settings import Persona

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1")


def llm_config(url: str = "", **extra: object) -> dict[str, object]:
    return {
        "role": "cloud",
        "plugins": ["llm"],
        "llm": {"base_url": url, "model": "stand-in", **extra},
    }


async def reply(app, text: str, turn: Turn = TURN) -> str:  # type: ignore[no-untyped-def]
    stream = await app.host.call_first("toyd_reply", turn=turn, text=text)
    return "".join(await asyncio.wait_for(collect(stream), 10))


async def test_hook_toyd_reply(state_dir: Path) -> None:
    """The reply streams from the model in pieces, cleaned for the voice; the request is a proper chat stream."""
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url + "/v1"), state_dir=state_dir) as app,
    ):
        server.script("Dragons love **shiny** things! 🐉 They guard gold.")
        stream = await app.host.call_first("toyd_reply", turn=TURN, text="tell me about dragons")
        pieces = await asyncio.wait_for(collect(stream), 10)
        assert len(pieces) > 1, "the reply must stream in pieces"
        assert "".join(pieces) == "Dragons love shiny things! They guard gold."
        sent = server.requests[-1].json()
        assert sent["stream"] is True and sent["model"] == "stand-in"
        assert sent["messages"][0]["role"] == "system" and "Pip" in sent["messages"][0]["content"]
        assert sent["messages"][-1] == {"role": "user", "content": "tell me about dragons"}


async def test_memory_sends_recent_turns_and_survives_restart(state_dir: Path) -> None:
    async with StandIn() as server:
        async with running_daemon(
            llm_config(server.url, memory_turns=2, summary_chars=200), state_dir=state_dir
        ) as app:
            for i in range(3):
                server.script(f"Answer {i}.")
                await reply(app, f"question {i}")
        async with running_daemon(
            llm_config(server.url, memory_turns=2, summary_chars=200), state_dir=state_dir
        ) as app:
            await reply(app, "question 3")
            messages = server.requests[-1].json()["messages"]
            assert [m["content"] for m in messages[1:-2]] == [
                "question 1",
                "Answer 1.",
                "question 2",
                "Answer 2.",
            ]
            assert messages[-1] == {"role": "user", "content": "question 3"}
            assert messages[-2]["role"] == "system" and "question 0" in messages[-2]["content"]
            first = server.requests[0].json()["messages"][0]
            assert messages[0] == first, "the system prompt does not change with the memory"
            other = Turn(device_id="toy-2", session_id="s", turn_id="t")
            await reply(app, "hello", other)
            assert len(server.requests[-1].json()["messages"]) == 2, "memory is per toy"


async def test_persona_selected_by_turn(state_dir: Path) -> None:
    personas = {
        "pip": {"name": "Pip"},
        "rex": {"name": "Rex", "personality": "a brave little dinosaur", "max_sentences": 1},
    }
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url, personas=personas), state_dir=state_dir) as app,
    ):
        server.script("I am Rex. I like rocks. I roar.")
        text = await reply(
            app, "who are you", Turn(device_id="t", session_id="s", turn_id="1", persona="rex")
        )
        assert text == "I am Rex.", "max_sentences of the persona cuts the reply"
        assert "You are Rex" in server.requests[-1].json()["messages"][0]["content"]


async def test_first_token_timeout_says_fallback_and_closes_connection(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url, first_token_timeout=0.3), state_dir=state_dir) as app,
    ):
        server.script("Too late.", first_token_delay=5)
        text = await reply(app, "hello")
        assert text == Persona().fallback
        seen = await asyncio.wait_for(server.disconnects.get(), 3)
        assert not seen.completed
        assert "no first text within 0.3 s" in caplog.text


async def test_stream_cut_midway_ends_gracefully(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url), state_dir=state_dir) as app,
    ):
        server.script("Once upon a time there was a brave little", cut_after=5)
        text = await reply(app, "story")
        assert text == "Once upon a time there ... " + Persona().cut_ending
        assert "reply cut after" in caplog.text and "connection closed in the middle" in caplog.text


async def test_stalled_stream_ends_gracefully_after_idle_timeout(state_dir: Path) -> None:
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url, idle_timeout=0.3), state_dir=state_dir) as app,
    ):
        server.script("Once upon a time there was a fox.", token_delay=2)
        text = await reply(app, "story")
        assert text == "Once ... " + Persona().cut_ending
        seen = await asyncio.wait_for(server.disconnects.get(), 3)
        assert not seen.completed, "the stalled connection was closed"


async def test_non_utf8_bytes_are_dropped_not_fatal(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url), state_dir=state_dir) as app,
    ):
        server.script("Hello friend.", raw_bytes=b"\xff\xfe\xc3")
        text = await reply(app, "hi")
        assert text == "Hello friend."
        assert "undecodable" in caplog.text


async def test_http_error_gives_fallback(state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url), state_dir=state_dir) as app,
    ):
        server.script("", status=500)
        assert await reply(app, "hi") == Persona().fallback
        assert "HTTP 500" in caplog.text


async def test_unreachable_endpoint_gives_fallback(state_dir: Path) -> None:
    from toyd.testing import free_port

    async with running_daemon(
        llm_config(f"http://127.0.0.1:{free_port()}/v1"), state_dir=state_dir
    ) as app:
        assert await reply(app, "hi") == Persona().fallback


async def test_closing_the_reply_closes_the_model_connection(state_dir: Path) -> None:
    async with (
        StandIn() as server,
        running_daemon(llm_config(server.url), state_dir=state_dir) as app,
    ):
        server.script("one two three four five six seven eight nine ten.", token_delay=0.2)
        stream = await app.host.call_first("toyd_reply", turn=TURN, text="count")
        first = await asyncio.wait_for(anext(stream), 5)
        assert first
        await stream.aclose()  # barge-in
        seen = await asyncio.wait_for(server.disconnects.get(), 3)
        assert not seen.completed


async def test_offline_responder_is_default_and_labelled(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_daemon({"role": "cloud", "plugins": ["llm"]}, state_dir=state_dir) as app:
        text = await reply(app, "tell me a story about a dragon")
        assert "dragon" in text and text.startswith("Once upon a time")
        assert "OFFLINE RESPONDER" in caplog.text and "not a language model" in caplog.text


@pytest.mark.parametrize(
    ("question", "expect"),
    [
        ("hello", "Hello there"),
        ("what is your name", "My name is Pip"),
        ("tell me a joke", "?"),
        ("do you like elephants", "trunks"),
        ("", "say that again"),
        ("why is the sky blue", "find out together"),
    ],
)
def test_offline_responder_topics(question: str, expect: str) -> None:
    assert expect in OfflineResponder(seed=1).reply(question, Persona())


def test_voice_cleaner_strips_markdown_lists_and_emojis() -> None:
    cleaner = VoiceCleaner()
    raw = ["# Fun", " facts\n- Cats **pu", "rr** 😺 loudly.\n2. See `https://x.y/z` ", "for more!"]
    out = "".join(cleaner.feed(p) for p in raw) + cleaner.flush()
    assert out == "Fun facts Cats purr loudly. See for more!"


def test_reply_limiter_cuts_long_text_at_a_word() -> None:
    limiter = ReplyLimiter(max_sentences=5, max_chars=40)
    out = limiter.feed("This sentence goes on and on without any end in sight at all")
    assert limiter.done and out.endswith(".") and len(out) <= 41


def test_summary_is_bounded() -> None:
    summary = fold("", [(f"question number {i}", "a") for i in range(50)], 100)
    assert len(summary) <= 100 and summary.endswith("question number 49")


def test_system_prompt_is_child_safe() -> None:
    prompt = system_prompt(Persona(age_min=3, age_max=6))
    assert "3 to 6 year old" in prompt and "keeping secrets from parents" in prompt
    assert "no markdown" in prompt


def test_what_changes_between_turns_comes_last() -> None:
    """Stable system prompt, then the window verbatim, then the summary, then the child's words."""
    persona = Persona()
    summary = fold("", [("likes cats", "Meow!"), ("has a dog", "Woof!")], 600)
    messages = chat_messages(persona, summary, [("hi", "Hello!")], "what is a cat")
    assert messages[0] == {"role": "system", "content": system_prompt(persona)}
    assert messages[1:3] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert messages[3] == {
        "role": "system",
        "content": "Earlier, this child also talked about: likes cats; has a dog.",
    }
    assert messages[4] == {"role": "user", "content": "what is a cat"}
    assert len(chat_messages(persona, "", [], "hi")) == 2, "no summary, no summary message"


def test_bad_persona_config_is_a_clear_error(state_dir: Path) -> None:
    from toyd.config import validate
    from toyd.errors import ConfigError
    from toyd.registry import Registry

    registry = Registry()
    with pytest.raises(ConfigError, match="default_persona 'bob' is not one of the personas"):
        validate(
            {"role": "cloud", "plugins": ["llm"], "llm": {"default_persona": "bob"}},
            registry.schema,
            source="<t>",
            known_plugins=registry.names,
        )
