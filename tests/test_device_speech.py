"""Speech on the toy: espeak-ng gets reply text on stdin, and no failure of it stops the cache.

The real espeak-ng speaks; a stand-in program is used only where espeak-ng would have to
fail (the process boundary).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from toyd.events import OfflinePhrases
from toyd.testing import next_event, running_daemon

SECOND = 32000  # bytes of 16 kHz int16 PCM


async def _filled(app, phrases: set[str], timeout: float = 60) -> None:
    sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
    await next_event(sub, OfflinePhrases, timeout, lambda e: set(e.phrases) == phrases)


async def _lookup(app, text: str):
    return await asyncio.wait_for(app.host.call_first("toyd_lookup_reply", text=text), 10)


async def test_replies_that_look_like_options_are_spoken_as_text(
    state_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "hostname"
    secret.write_text("this file must never be read aloud by the toy " * 40)
    responses = {"how cold is it": "-5 degrees outside", "what is your name": f"-f{secret}"}
    config = {
        "plugins": ["tts_espeak", "cache"],
        "cache": {"responses": responses, "codec": "pcm", "language": "en"},
    }
    async with running_daemon(config, state_dir=state_dir) as app:
        await _filled(app, set(responses))  # the fill finished: it did not die on the first reply
        cold = await _lookup(app, "how cold is it")
        assert cold.hit and cold.reply == "-5 degrees outside" and cold.pcm
        named = await _lookup(app, "what is your name")
        assert named.hit and named.pcm
        # the path is spoken (a few seconds), not the file's 400 words (minutes)
        assert len(named.pcm) < 15 * SECOND, (
            f"{len(named.pcm) / SECOND:.1f} s: the file was read aloud"
        )


def _fake_espeak(tmp_path: Path, body: str) -> str:
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\n" + body + "\n")
    fake.chmod(0o755)
    return str(fake)


async def test_every_espeak_failure_keeps_the_cache_filling(
    state_dir: Path, tmp_path: Path, caplog
) -> None:
    failures = {
        "exits": "cat >/dev/null; echo 'no such voice' >&2; exit 3",
        "no audio": "cat >/dev/null; exit 0",
        "garbage": "cat >/dev/null; echo 'not a wav stream at all, just text'",
        "killed": "kill -9 $$",
        "closes stdin": "exec 0<&-; exit 1",
    }
    for name, body in failures.items():
        binary = _fake_espeak(tmp_path, body)
        responses = {"hello there": "Hi!", "good night": "Sleep well!"}
        config = {
            "plugins": ["tts_espeak", "cache"],
            "tts_espeak": {"binary": binary, "timeout": 5},
            "cache": {"responses": responses, "codec": "pcm"},
        }
        caplog.clear()
        async with running_daemon(config, state_dir=state_dir / name) as app:
            await _filled(app, set(responses), 30)
            hit = await _lookup(app, "good night")
            assert hit.hit and hit.reply == "Sleep well!" and hit.pcm == b"", (
                name
            )  # text kept, no audio
        assert "kept as text only" in caplog.text, name
