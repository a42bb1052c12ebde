"""One conversational turn through the cloud AI hooks, in process, with a latency breakdown.

The order is the gateway's: transcribe → check the child's words → stream the reply →
cut it into sentences → check each → synthesize each while the model is still
talking. The demo uses this when the WebSocket gateway is not installed, and reports
where the time went.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from toyd import App
from toyd.events import SafetyAlert
from toyd.turn import SafetyVerdict, Transcription, Turn

log = logging.getLogger(__name__)

# a sentence ends at . ! ? (and CJK forms) followed by a space; a long clause may end at a comma
_SENTENCE = re.compile(r"(.+?[.!?。！？]+[\"')\]]*)(\s+|$)", re.S)
LONG_CLAUSE = 140

Progress = Callable[[str, Any], None]


@dataclasses.dataclass
class TurnReport:
    """What happened in one turn: texts, verdicts, the reply audio and the timings."""

    transcript: str = ""
    confidence: float = 0.0
    reply: str = ""
    safety: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pcm: bytes = b""
    latency_ms: dict[str, float | None] = dataclasses.field(default_factory=dict)


class SentenceSplitter:
    """Cuts streamed text into speakable sentences as soon as each one is complete."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, delta: str) -> list[str]:
        """Complete sentences in the text so far (the unfinished rest is kept)."""
        self.buffer += delta
        out = []
        while True:
            match = _SENTENCE.match(self.buffer)
            if not match or (not match.group(2) and match.end() == len(self.buffer)):
                break
            out.append(match.group(1).strip())
            self.buffer = self.buffer[match.end():]
        if len(self.buffer) > LONG_CLAUSE and "," in self.buffer[:LONG_CLAUSE]:
            cut = self.buffer.rfind(",", 0, LONG_CLAUSE) + 1
            out.append(self.buffer[:cut].strip())
            self.buffer = self.buffer[cut:]
        return [s for s in out if s]

    def flush(self) -> list[str]:
        """The rest, at the end of the stream."""
        rest, self.buffer = self.buffer.strip(), ""
        return [rest] if rest else []


def verdict_dict(verdict: SafetyVerdict | None, text: str, speaker: str) -> dict[str, Any]:
    """The JSON form of a verdict (no filter installed: allowed, ``filter: none``)."""
    if verdict is None:
        return {"speaker": speaker, "text": text, "safe": True, "action": "allow", "category": None, "filter": "none"}
    return {"speaker": speaker, "text": verdict.text or text, "safe": verdict.safe, "action": verdict.action,
            "category": verdict.category, "severity": verdict.severity, "alert": verdict.alert}


class Chain:
    """Runs turns on a started cloud :class:`App`; ``progress(kind, data)`` sees each step."""

    def __init__(self, app: App, progress: Progress | None = None) -> None:
        self.app = app
        self.progress = progress or (lambda kind, data: None)

    async def run(self, turn: Turn, pcm: bytes, sample_rate: int) -> TurnReport:
        """One turn; the clock starts at the end of the child's speech (all audio is here)."""
        report = TurnReport()
        t0 = time.monotonic()
        marks: dict[str, float] = {}
        transcription: Transcription | None = await self.app.host.call_first(
            "toyd_transcribe", turn=turn, pcm=pcm, sample_rate=sample_rate)
        marks["stt_done"] = time.monotonic()
        report.transcript = transcription.text if transcription else ""
        report.confidence = transcription.confidence if transcription else 0.0
        self.progress("transcript", report.transcript)
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._think(turn, report, sentences, marks))
            group.create_task(self._speak(turn, report, sentences, marks))
        report.latency_ms = _breakdown(t0, marks)
        return report

    async def _check(self, turn: Turn, text: str, speaker: str, report: TurnReport) -> SafetyVerdict | None:
        try:
            verdict = await self.app.host.call_first("toyd_check_text", turn=turn, text=text, speaker=speaker)
        except Exception as exc:  # noqa: BLE001 - a failing filter blocks (fail closed)
            log.error("safety filter failed on the %s's text, treating it as blocked: %s", speaker, exc)
            verdict = SafetyVerdict(safe=False, action="block", category="filter_error", text=text,
                                    replacement="Let's talk about something else!")
        entry = verdict_dict(verdict, text, speaker)
        report.safety.append(entry)
        self.progress("safety", entry)
        if verdict is not None and verdict.alert:
            self.app.bus.publish(SafetyAlert(category=verdict.category or "unknown", severity=verdict.severity,
                                             excerpt=verdict.text[:200], action=verdict.action))
        return verdict

    async def _think(self, turn: Turn, report: TurnReport, out: asyncio.Queue[str | None],
                     marks: dict[str, float]) -> None:
        try:
            if not report.transcript.strip():
                return
            verdict = await self._check(turn, report.transcript, "child", report)
            if verdict is not None and not verdict.safe:
                line = verdict.replacement or "Let's talk about something else!"
                await self._say(turn, line, report, out, checked=True)
                return
            text = verdict.text if verdict is not None and verdict.text else report.transcript
            marks["llm_start"] = time.monotonic()
            stream: AsyncIterator[str] | None = await self.app.host.call_first("toyd_reply", turn=turn, text=text)
            if stream is None:
                log.error("no plugin answers toyd_reply: enable llm in the config")
                return
            splitter = SentenceSplitter()
            try:
                async for delta in stream:
                    marks.setdefault("llm_first_token", time.monotonic())
                    self.progress("reply_delta", delta)
                    for sentence in splitter.feed(delta):
                        marks.setdefault("llm_first_sentence", time.monotonic())
                        await self._say(turn, sentence, report, out)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            for sentence in splitter.flush():
                marks.setdefault("llm_first_sentence", time.monotonic())
                await self._say(turn, sentence, report, out)
        finally:
            out.put_nowait(None)

    async def _say(self, turn: Turn, sentence: str, report: TurnReport, out: asyncio.Queue[str | None],
                   checked: bool = False) -> None:
        if not checked:
            verdict = await self._check(turn, sentence, "toy", report)
            if verdict is not None and not verdict.safe:
                if not verdict.replacement:
                    return
                sentence = verdict.replacement
            elif verdict is not None and verdict.text:
                sentence = verdict.text
        report.reply = (report.reply + " " + sentence).strip()
        out.put_nowait(sentence)

    async def _speak(self, turn: Turn, report: TurnReport, sentences: asyncio.Queue[str | None],
                     marks: dict[str, float]) -> None:
        chunks: list[bytes] = []
        while (sentence := await sentences.get()) is not None:
            started = time.monotonic()
            stream: AsyncIterator[bytes] | None = await self.app.host.call_first("toyd_synthesize", turn=turn, text=sentence)
            if stream is None:
                log.error("no plugin answers toyd_synthesize: enable tts_espeak in the config")
                continue
            try:
                async for chunk in stream:
                    if "first_audio" not in marks:
                        marks["tts_start"], marks["first_audio"] = started, time.monotonic()
                        self.progress("first_audio", None)
                    chunks.append(chunk)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        report.pcm = b"".join(chunks)


def _breakdown(t0: float, m: dict[str, float]) -> dict[str, float | None]:
    """Milliseconds per stage; ``overhead`` is what is left of the critical path after the backends."""
    def ms(a: str | float, b: str) -> float | None:
        start = a if isinstance(a, float) else m.get(a)
        return round((m[b] - start) * 1000, 1) if start is not None and b in m else None

    out: dict[str, float | None] = {
        "stt": ms(t0, "stt_done"),
        "llm_first_token": ms("llm_start", "llm_first_token"),
        "llm_first_sentence": ms("llm_start", "llm_first_sentence"),
        "tts_first_audio": ms("tts_start", "first_audio"),
        "end_of_speech_to_first_audio": ms(t0, "first_audio"),
    }
    total = out["end_of_speech_to_first_audio"]
    backends = [out["stt"], out["llm_first_sentence"], out["tts_first_audio"]]
    out["overhead"] = round(total - sum(b for b in backends if b is not None), 1) if total is not None else None
    return out
