"""A cloud and a simulated toy on loopback, and one conversational turn between them.

The cloud daemon runs the gateway and the AI plugins; the toy daemon runs the cloud
link. This module is the toy's hardware edge: it presses the button, speaks the
child's audio as microphone frames, ends the utterance, and plays the reply as the
speaker would (collecting the PCM). ``toyd demo``, the end-to-end tests and
``bench/bench_turn.py`` all use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from toyd import State
from toyd import events as ev
from toyd.config import validate
from toyd.daemon import Daemon
from toyd.errors import ToydError
from toyd.registry import Registry

log = logging.getLogger(__name__)

FRAME_BYTES = 640  # 20 ms of 16 kHz mono int16
# The gateway accepts a burst of 100 frames, then real time (50 frames/s), like a microphone
# whose buffer is flushed: the first BURST frames go at once, the rest at speaking pace.
BURST = 80
Progress = Callable[[str, Any], None]
LATENCY_KEYS = (
    "stt",
    "llm_first_token",
    "tts_first_audio",
    "end_of_speech_to_first_audio",
    "overhead",
)


@dataclasses.dataclass
class TurnReport:
    """What the toy heard back in one turn, the verdicts the cloud made, and the timings."""

    transcript: str = ""
    reply: str = ""
    outcome: str = "reply"  # reply | no_speech | failed | timeout
    safety: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    alerts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    toy_alerts: int = 0  # SafetyAlert events the toy received (for its parents' MQTT)
    pcm: bytes = b""
    brain: str = (
        ""  # which brain answered: "local model X", "offline responder ...", "model X at URL"
    )
    response_id: str = ""
    latency_ms: dict[str, float | None] = dataclasses.field(default_factory=dict)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Loopback:
    """``async with Loopback(cloud, toy, registry=..., state_dir=...) as lb: await lb.turn(pcm)``."""

    def __init__(
        self,
        cloud: Mapping[str, Any],
        toy: Mapping[str, Any],
        *,
        state_dir: Path,
        registry: Registry | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.registry = registry or Registry()
        self.progress = progress or (lambda kind, data: None)
        port, token = free_port(), secrets.token_urlsafe(16)
        device_id = toy.get("device_id", "demo-toy")
        cloud_data = {**cloud, "state_dir": str(state_dir / "cloud")}
        cloud_data["gateway"] = {
            **(cloud.get("gateway") or {}),
            "port": port,
            "tokens": {device_id: token},
        }
        toy_data = {**toy, "state_dir": str(state_dir / "toy"), "device_id": device_id}
        toy_data["cloudlink"] = {
            **(toy.get("cloudlink") or {}),
            "url": f"ws://127.0.0.1:{port}",
            "token": token,
        }
        self.cloud_config = validate(
            cloud_data,
            self.registry.schema,
            source="<demo cloud>",
            known_plugins=self.registry.names,
        )
        self.toy_config = validate(
            toy_data, self.registry.schema, source="<demo toy>", known_plugins=self.registry.names
        )
        self._cloud: Daemon | None = None
        self._toy: Daemon | None = None

    async def __aenter__(self) -> Loopback:
        self._cloud = Daemon(self.cloud_config, registry=self.registry)
        self.cloud = await self._cloud.start()
        self.cloud_events = self.cloud.bus.subscribe(
            "demo", (ev.TextChecked, ev.SafetyAlert, ev.TurnLatency, ev.ReplySource), maxsize=10000
        )
        try:
            self._toy = Daemon(self.toy_config, registry=self.registry, simulate=True)
            self.toy = await self._toy.start()
            self.toy_events = self.toy.bus.subscribe("demo", maxsize=100000)
            await _next(self.toy_events, ev.CloudOnline, 15)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for daemon in (self._toy, self._cloud):
            if daemon is not None:
                await daemon.stop()
        self._toy = self._cloud = None

    async def speak(self, pcm: bytes, burst: int = BURST) -> float:
        """Press the button, say ``pcm``, stop talking; returns the end-of-speech time.

        The first ``burst`` frames go at once (quicker tests and demo), the rest at speaking
        pace; ``burst=0`` is a push-to-talk toy's microphone, all of it in real time.
        """
        self.toy.bus.publish(ev.ButtonPressed())
        await _next(self.toy_events, ev.StateChanged, 5, lambda e: e.new is State.LISTENING)
        started = time.monotonic()
        for seq, start in enumerate(range(0, len(pcm), FRAME_BYTES)):
            frame = pcm[start : start + FRAME_BYTES]
            self.toy.bus.publish(
                ev.AudioFrame(pcm=frame + bytes(FRAME_BYTES - len(frame)), seq=seq)
            )
            due = started + (seq + 1 - burst) * 0.02  # frame seq is heard by its end
            # let the cloud link take it (microphone frames are droppable); then keep to real time
            await asyncio.sleep(max(due - time.monotonic(), 0))
        eos = time.monotonic()
        self.toy.bus.publish(ev.SpeechEnded(reason="released"))
        return eos

    async def turn(
        self,
        pcm: bytes,
        *,
        timeout: float = 120.0,
        stop_after_audio: bool = False,
        burst: int = BURST,
    ) -> TurnReport:
        """One full turn; ``stop_after_audio`` returns at the first reply audio (barge-in tests)."""
        _drain(self.cloud_events)
        report = TurnReport()
        watcher = asyncio.ensure_future(self._watch_cloud(report))
        try:
            eos = await self.speak(pcm, burst)
            await asyncio.wait_for(self._listen(report, eos, stop_after_audio), timeout)
        except TimeoutError:
            report.outcome = "timeout"
            log.error("demo: no complete reply within %.0f s", timeout)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self._collect_cloud(report)
        if not report.reply:
            # a redirected question is answered with the filter's line (no model text streams)
            said = [v.get("replacement") for v in report.safety if v.get("replacement")]
            report.reply = " ".join(s for s in said if s)
        return report

    async def _listen(self, report: TurnReport, eos: float, stop_after_audio: bool) -> None:
        """Be the toy's speaker and screen until the reply ends."""
        pcm: list[bytes] = []
        first_audio: float | None = None
        deltas: list[str] = []
        async for event in self.toy_events:
            if isinstance(event, ev.Transcript) and event.final:
                report.transcript = event.text
                self.progress("transcript", event.text)
            elif isinstance(event, ev.ResponseText) and event.delta:
                deltas.append(event.delta)
                self.progress("reply_delta", event.delta)
            elif isinstance(event, ev.ReplyAudio):
                if first_audio is None:
                    first_audio, report.response_id = time.monotonic(), event.response_id
                    self.toy.bus.publish(ev.PlaybackStarted(response_id=event.response_id))
                    self.progress("first_audio", None)
                    if stop_after_audio:
                        break
                if event.response_id == report.response_id:
                    pcm.append(event.pcm)
            elif isinstance(event, ev.ReplyAudioEnd) and event.response_id == report.response_id:
                self.toy.bus.publish(ev.PlaybackFinished(response_id=event.response_id))
            elif isinstance(event, ev.TurnLatency):
                report.latency_ms = _latency(event, first_audio, eos)
                break
            elif isinstance(event, ev.SafetyAlert):
                report.toy_alerts += 1
            elif isinstance(event, ev.TurnFailed):
                report.outcome = "no_speech" if not report.transcript.strip() else "failed"
                break
            elif isinstance(event, ev.ReplyTimeout):
                report.outcome = "failed"
                break
        report.pcm = b"".join(pcm)
        report.reply = "".join(deltas).strip()

    async def _watch_cloud(self, report: TurnReport) -> None:
        """Report verdicts as they happen (they are collected again at the end)."""
        async for event in self.cloud_events:
            self._record(report, event)

    def _collect_cloud(self, report: TurnReport) -> None:
        while (event := self.cloud_events.get_nowait()) is not None:
            self._record(report, event)

    def _record(self, report: TurnReport, event: Any) -> None:
        if isinstance(event, ev.ReplySource):
            report.brain = {
                "local": f"local language model {event.name}",
                "remote": f"language model {event.name}",
            }.get(event.kind, event.name)
        elif isinstance(event, ev.TextChecked):
            entry = {
                "speaker": event.speaker,
                "text": event.text,
                "safe": event.safe,
                "action": event.action,
                "category": event.category,
                "severity": event.severity,
                "filtered": event.filtered,
            }
            if event.replacement and (event.action != "allow" or not event.safe):
                entry["replacement"] = event.replacement
            report.safety.append(entry)
            self.progress("safety", entry)
        elif isinstance(event, ev.SafetyAlert):
            entry = {
                "category": event.category,
                "severity": event.severity,
                "excerpt": event.excerpt,
                "action": event.action,
            }
            report.alerts.append(entry)
            self.progress("alert", entry)


def _latency(
    event: ev.TurnLatency, first_audio: float | None, eos: float
) -> dict[str, float | None]:
    """The breakdown: backend times from the gateway, end to end as the toy heard it."""
    e2e = round((first_audio - eos) * 1000, 1) if first_audio is not None else None
    hooks = event.hooks_ms
    asked = (
        event.llm_first_token_ms > 0 or event.llm_first_sentence_ms > 0
    )  # 0: the model was not asked
    return {
        "stt": event.stt_ms,
        "safety_check": event.check_ms,
        "llm_first_token": event.llm_first_token_ms if asked else None,
        "llm_first_sentence": event.llm_first_sentence_ms if asked else None,
        "tts_first_audio": event.tts_first_audio_ms,
        "end_of_speech_to_first_audio": e2e,
        # everything on the path that is not an AI backend: transport, Opus, bus, scheduling
        "overhead": round(max(e2e - hooks, 0.0), 1) if e2e is not None else None,
    }


def _drain(sub: Any) -> None:
    while sub.get_nowait() is not None:
        pass


async def _next(
    sub: Any, kind: type, timeout: float, where: Callable[[Any], bool] = lambda e: True
) -> Any:
    async def find() -> Any:
        async for event in sub:
            if isinstance(event, kind) and where(event):
                return event
        raise ToydError("the daemon stopped")

    try:
        return await asyncio.wait_for(find(), timeout)
    except TimeoutError:
        raise ToydError(f"the simulated toy saw no {kind.__name__} within {timeout:g} s") from None
