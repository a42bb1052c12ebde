"""One response: speech-to-text → safety → streamed LLM → per-sentence safety → TTS → downlink.

The LLM stream is read by its own task and cut into sentences as tokens arrive; the
main task checks and speaks each sentence meanwhile, so the first audio leaves while
the LLM is still talking. Cancelling the task that runs :meth:`Pipeline.run_turn`
(barge-in) cancels the reader too and closes every hook iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from toyd.audio import SAMPLE_RATE
from toyd.errors import BackendError
from toyd.events import TextChecked
from toyd.protocol import Llm, Stt
from toyd.protocol.limits import MAX_TEXT_CHARS
from toyd.text import compact
from toyd.turn import SafetyVerdict, Speaker, Transcription, Turn

from .context import SessionContext
from .downlink import Downlink
from .sentences import SentenceSplitter

log = logging.getLogger(__name__)

FALLBACK_LINE = "Let's talk about something else!"
AlertSink = Callable[[Turn, SafetyVerdict, str], Awaitable[None]]


def cache_key(turn: Turn, text: str) -> str:
    """Stable key of the audio of ``text`` in this persona and language (device-side caches)."""
    raw = f"{turn.persona or ''}|{turn.language or ''}|{text.strip().lower()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def reply_cache_key(phrase: str, persona: str | None, language: str | None) -> str:
    """Key of the cached answer to a question: the normalised phrase, persona and language."""
    raw = f"reply|{persona or ''}|{language or ''}|{compact(phrase)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


class Pipeline:
    """Runs the hooks for one response and streams the result through a :class:`Downlink`."""

    def __init__(
        self,
        context: SessionContext,
        turn: Turn,
        downlink: Downlink,
        *,
        on_alert: AlertSink,
        end_of_speech: float | None = None,
    ) -> None:
        self.call_first = context.call_first
        self.publish = context.publish
        self.turn = turn
        self.downlink = downlink
        # a reconfigure applies to the next turn
        self.stage_timeout = context.settings.stage_timeout
        self.first_clause = context.settings.first_clause
        self.on_alert = on_alert
        self.eos = end_of_speech if end_of_speech is not None else time.monotonic()
        self.times: dict[str, float] = {}  # stage -> seconds on the path to the first audio
        self._first_sentence = True
        self.cacheable = (
            context.cacheable
        )  # compact() forms of the questions whose answers toys may cache
        self.reply_key: str | None = None  # set while this turn's reply may still be cached

    # --- entry points -----------------------------------------------------------------

    async def run_turn(self, pcm: bytes, speech: Any = None) -> None:
        """Answer the child's speech ``pcm``; ``speech``, when given, was fed it while the child talked."""
        started = time.monotonic()
        if speech is not None:
            try:
                result = await self._guard("toyd_transcribe_stream", speech.result())
            finally:
                await _aclose(speech)
        else:
            result = await self._hook(
                "toyd_transcribe", turn=self.turn, pcm=pcm, sample_rate=SAMPLE_RATE
            )
        self.times["stt"] = time.monotonic() - started
        if not isinstance(result, Transcription):
            raise BackendError(
                "no speech-to-text plugin answered"
                if result is None
                else f"toyd_transcribe returned {type(result).__name__}, not Transcription"
            )
        await self._answer(result.text.strip(), result.language)

    async def run_text(self, text: str) -> None:
        """Answer words the child did not speak but sent as text (a xiaozhi ``listen detect``)."""
        await self._answer(text.strip()[:MAX_TEXT_CHARS], None)

    async def _answer(self, text: str, language: str | None) -> None:
        """The child's words → ``stt`` → safety → streamed LLM → speech, or a gentle redirect."""
        await self.downlink.message(
            Stt(
                text=text[:MAX_TEXT_CHARS], final=True, turn_id=self.turn.turn_id, language=language
            )
        )
        if not text:
            await self.downlink.stop("no_speech", self.latency())
            return
        verdict = await self.check(text, "child", stage="check")
        if verdict.action != "allow" or not verdict.safe:
            await self._refuse(verdict, text)
        else:
            if verdict.alert:  # allowed but worth a parent's look (personal information, redacted)
                await self.on_alert(self.turn, verdict, text)
            if compact(text) in self.cacheable:  # a known question, allowed: its answer may be kept
                self.reply_key = reply_cache_key(
                    text, self.turn.persona, self.turn.language or language
                )
            started = time.monotonic()
            stream = await self._hook("toyd_reply", turn=self.turn, text=verdict.text or text)
            if stream is None:
                raise BackendError("no LLM plugin answered")
            await self._speak_stream(stream, started)
        # repeating the key confirms it: every sentence passed the filter and the reply is whole
        await self.downlink.stop("done", self.latency(), cache_key=self.reply_key)

    async def run_say(self, text: str) -> None:
        """Speak a parent's text as it is (``say``)."""
        await self.downlink.start("say", cache_key(self.turn, text))
        await self.speak(text)
        await self.downlink.stop("done", self.latency())

    # --- stages -----------------------------------------------------------------------

    async def check(self, text: str, speaker: Speaker, stage: str | None = None) -> SafetyVerdict:
        """``toyd_check_text``; no filter means allowed, a failing filter means blocked (fail closed)."""
        started = time.monotonic()
        try:
            verdict = await self._hook(
                "toyd_check_text", turn=self.turn, text=text, speaker=speaker
            )
        except BackendError as exc:
            log.error("%s: safety check failed, text blocked: %s", self.turn.device_id, exc)
            verdict = SafetyVerdict(
                safe=False, action="block", category="filter_error", severity="none"
            )
        if stage:
            self.times[stage] = time.monotonic() - started
        filtered = verdict is not None
        if verdict is None:
            verdict = SafetyVerdict(safe=True, text=text)
        elif not isinstance(verdict, SafetyVerdict):
            log.error(
                "%s: toyd_check_text returned %s; text blocked",
                self.turn.device_id,
                type(verdict).__name__,
            )
            verdict = SafetyVerdict(safe=False, action="block", category="filter_error")
        self.publish(
            TextChecked(
                device_id=self.turn.device_id,
                turn_id=self.turn.turn_id,
                speaker=speaker,
                text=verdict.text or ("" if not verdict.safe else text),
                safe=verdict.safe,
                action=verdict.action,
                category=verdict.category,
                severity=verdict.severity,
                replacement=verdict.replacement,
                filtered=filtered,
            )
        )
        return verdict

    async def _refuse(self, verdict: SafetyVerdict, text: str) -> None:
        """The child's words were redirected or blocked: say the gentle line instead."""
        if verdict.alert:
            await self.on_alert(self.turn, verdict, text)
        line = verdict.replacement or FALLBACK_LINE
        await self.downlink.start("redirect", cache_key(self.turn, line))
        await self.speak(line)

    async def _speak_stream(self, stream: AsyncIterator[str], started: float) -> None:
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        reader = asyncio.create_task(
            self._read_reply(stream, sentences, started), name=f"llm:{self.turn.turn_id}"
        )
        try:
            while (sentence := await sentences.get()) is not None:
                first = self._first_sentence
                verdict = await self.check(sentence, "toy", stage="check_toy" if first else None)
                if verdict.action != "allow" or not verdict.safe:
                    self.reply_key = None  # a reply that went wrong is never cached
                    if verdict.alert:
                        await self.on_alert(self.turn, verdict, sentence)
                    await self.downlink.start("reply")
                    await self.speak(verdict.replacement or FALLBACK_LINE)
                    break  # the rest of a reply that went wrong is not spoken
                await self.downlink.start("reply", self.reply_key)
                await self.speak(verdict.text or sentence)
        finally:
            reader.cancel()
            await asyncio.wait([reader])
        await self.downlink.message(
            Llm(final=True, turn_id=self.turn.turn_id, response_id=self.downlink.response_id)
        )
        error = None if reader.cancelled() else reader.exception()
        if error is not None:
            self.reply_key = None  # cut short: not the answer to keep
            if not self.downlink.started:
                raise BackendError(str(error))
            log.error("%s: reply stream failed midway: %s", self.turn.device_id, error)

    async def _read_reply(
        self, stream: AsyncIterator[str], out: asyncio.Queue[str | None], started: float
    ) -> None:
        splitter = SentenceSplitter(first_clause=self.first_clause)
        iterator = stream.__aiter__()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.stage_timeout):
                        delta = await anext(iterator)
                except StopAsyncIteration:
                    break
                if not isinstance(delta, str) or not delta:
                    continue
                self.times.setdefault("llm_first_token", time.monotonic() - started)
                for at in range(
                    0, len(delta), MAX_TEXT_CHARS
                ):  # a huge delta still fits the limits
                    await self.downlink.message(
                        Llm(
                            text=delta[at : at + MAX_TEXT_CHARS],
                            turn_id=self.turn.turn_id,
                            response_id=self.downlink.response_id,
                        )
                    )
                for sentence in splitter.feed(delta):
                    self.times.setdefault("llm_first_sentence", time.monotonic() - started)
                    out.put_nowait(sentence)
            for sentence in splitter.flush():
                self.times.setdefault("llm_first_sentence", time.monotonic() - started)
                out.put_nowait(sentence)
        except TimeoutError:
            raise BackendError(f"toyd_reply gave nothing for {self.stage_timeout:g} s") from None
        finally:
            await _aclose(iterator)
            out.put_nowait(None)

    async def speak(self, text: str) -> None:
        """Synthesize one sentence and send it (the response must have started)."""
        first = self._first_sentence
        self._first_sentence = False
        await self.downlink.sentence(text, cache_key(self.turn, text))
        started = time.monotonic()
        stream = await self._hook("toyd_synthesize", turn=self.turn, text=text)
        if stream is None:
            raise BackendError("no text-to-speech plugin answered")
        iterator = stream.__aiter__()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.stage_timeout):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise BackendError(
                        f"toyd_synthesize gave nothing for {self.stage_timeout:g} s"
                    ) from None
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise BackendError(
                        f"toyd_synthesize yielded {type(chunk).__name__}, not PCM bytes"
                    )
                if first:
                    self.times.setdefault("tts_first_audio", time.monotonic() - started)
                await self.downlink.pcm(bytes(chunk))
            await self.downlink.flush()
        finally:
            await _aclose(iterator)

    async def _hook(self, name: str, **kwargs: Any) -> Any:
        return await self._guard(name, self.call_first(name, **kwargs))

    async def _guard(self, name: str, answer: Awaitable[Any]) -> Any:
        """``answer`` within the stage timeout; any failure of the plugin becomes a BackendError."""
        try:
            async with asyncio.timeout(self.stage_timeout):
                return await answer
        except TimeoutError:
            raise BackendError(f"{name} did not answer within {self.stage_timeout:g} s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a faulty AI plugin fails the turn, not the gateway
            log.debug("%s traceback", name, exc_info=exc)
            raise BackendError(f"{name} failed: {type(exc).__name__}: {exc}") from None

    # --- latency ------------------------------------------------------------------------

    def latency(self) -> dict[str, float]:
        """The breakdown sent in ``tts stop`` (milliseconds; docs/protocol.md "Latency")."""
        ms = {k: round(v * 1000, 1) for k, v in self.times.items()}
        first = self.downlink.first_audio_at
        e2fa = round((first - self.eos) * 1000, 1) if first is not None else 0.0
        hooks = sum(
            ms.get(k, 0.0)
            for k in ("stt", "check", "llm_first_sentence", "check_toy", "tts_first_audio")
        )
        return {
            "stt_ms": ms.get("stt", 0.0),
            "check_ms": ms.get("check", 0.0),
            "llm_first_token_ms": ms.get("llm_first_token", 0.0),
            "llm_first_sentence_ms": ms.get("llm_first_sentence", 0.0),
            "tts_first_audio_ms": ms.get("tts_first_audio", 0.0),
            "end_of_speech_to_first_audio_ms": e2fa,
            "hooks_ms": round(hooks, 1),
            "overhead_ms": round(max(e2fa - hooks, 0.0), 1) if first is not None else 0.0,
            "total_ms": round((time.monotonic() - self.eos) * 1000, 1),
            "audio_ms": round(self.downlink.seconds_sent() * 1000, 1),
        }
