"""The ``llm`` plugin: persona-shaped, child-safe, voice-friendly streamed replies with memory."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

from toyd import App, PluginDeclaration, hookimpl
from toyd.errors import BackendError
from toyd.events import ReplySource
from toyd.store import Store, open_store
from toyd.turn import Turn

from .client import ChatClient
from .offline import OfflineResponder
from .prompt import ReplyLimiter, VoiceCleaner, chat_messages
from .settings import LlmSettings, Persona

log = logging.getLogger(__name__)


class LlmPlugin:
    """Answers ``toyd_reply`` from a chat-completions endpoint, a local model, or the offline responder.

    The brain is chosen per reply: ``base_url`` set → that endpoint; else a plugin that
    answers ``toyd_chat`` (``llm_local``); else the rule-based offline responder.
    """

    def __init__(self) -> None:
        self.app: App | None = None
        self.settings = LlmSettings()
        self.memory: Store | None = None
        self.client: ChatClient | None = None
        self.offline = OfflineResponder()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=LlmSettings,
            summary="Replies from an OpenAI-compatible chat model (or the offline responder)",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: LlmSettings) -> None:
        self.app = app
        self._configure(settings)
        app.spawn(
            self._warm_up(), "llm-warm-up"
        )  # a turn that comes first waits for the model anyway
        if settings.memory:
            self.memory = open_store(
                settings.memory_db,
                app.state_dir,
                turns=settings.memory_turns,
                summary_chars=settings.summary_chars,
            )
            await self.memory.open()

    def _configure(self, settings: LlmSettings) -> None:
        self.settings = settings
        if settings.base_url:
            self.client = ChatClient(
                settings.base_url,
                settings.api_key,
                settings.model,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                connect_timeout=settings.connect_timeout,
            )
            log.info("llm: model %r at %s", settings.model or "(server default)", settings.base_url)
        else:
            self.client = None
            log.info(
                "llm: no base_url: replies come from a local model (llm_local) when one is loaded, "
                "else from the OFFLINE RESPONDER (rule-based, not a language model)"
            )

    async def _warm_up(self) -> None:
        """Put the default persona's system prompt into a local model's cache before the first child asks.

        Needs ``llm_local`` listed before ``llm`` (started first).
        """
        if self.client is not None or self.app is None:
            return
        persona = self.settings.personas[self.settings.default_persona]
        turn = Turn(
            device_id="", session_id="", turn_id="warm-up", persona=self.settings.default_persona
        )
        started = time.monotonic()
        try:
            answered = await self._prefill(turn, persona, "", [])
        except BackendError as exc:
            log.warning("llm: warming up the local model failed: %s", exc)
            return
        if not answered:
            log.warning(
                "llm: no local model (llm_local, listed before llm) and no base_url: replies come "
                "from the OFFLINE RESPONDER (rule-based, not a language model)"
            )
            return
        log.info(
            "llm: persona %r cached in the local model in %.2f s",
            persona.name,
            time.monotonic() - started,
        )

    async def _prefill(
        self, turn: Turn, persona: Persona, summary: str, recent: list[tuple[str, str]]
    ) -> bool:
        """Have a local model evaluate the next prompt up to the child's words; False: no model.

        A prompt is evaluated once and kept in the model's cache, so the reply to the next
        question only evaluates that question: its first word comes sooner.
        """
        assert self.app is not None, "llm was not started"
        messages = chat_messages(persona, summary, recent, "")
        stream = await self.app.host.call_first(
            "toyd_chat", turn=turn, messages=messages, max_tokens=1
        )
        if stream is None:
            return False
        try:
            async for _delta in stream:
                pass
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()  # stops the model if this task was cancelled (shutdown)
        return True

    async def _prefill_next(self, turn: Turn, persona: Persona) -> None:
        """After a reply is remembered: the conversation so far, ready for the child's next words."""
        if self.memory is None:
            return
        summary, recent = await self.memory.recall(turn.device_id)
        nxt = dataclasses.replace(turn, turn_id=f"{turn.turn_id}-next")
        try:
            await self._prefill(nxt, persona, summary, recent)
        except BackendError as exc:
            log.debug("llm: preparing %s's next prompt failed: %s", turn.device_id, exc)

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: LlmSettings) -> bool:
        old = self.settings
        self._configure(settings)
        return (old.memory, old.memory_db, old.memory_turns, old.summary_chars) == (
            settings.memory,
            settings.memory_db,
            settings.memory_turns,
            settings.summary_chars,
        )

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        if self.memory is not None:
            await self.memory.close()

    @hookimpl
    def toyd_reply(self, turn: Turn, text: str) -> AsyncIterator[str]:
        return self._reply(turn, text)

    def persona(self, turn: Turn) -> Persona:
        """The persona the toy selected, or the default one."""
        if turn.persona and turn.persona in self.settings.personas:
            return self.settings.personas[turn.persona]
        if turn.persona:
            log.warning(
                "llm: toy %s asked for unknown persona %r; using %r",
                turn.device_id,
                turn.persona,
                self.settings.default_persona,
            )
        return self.settings.personas[self.settings.default_persona]

    async def _reply(self, turn: Turn, text: str) -> AsyncIterator[str]:
        """The reply stream: cleaned, limited, with in-character endings on every failure."""
        persona = self.persona(turn)
        summary, recent = await self.memory.recall(turn.device_id) if self.memory else ("", [])
        limiter = ReplyLimiter(persona.max_sentences, persona.max_chars)
        cleaner = VoiceCleaner()
        started = time.monotonic()
        source = await self._source(turn, text, persona, summary, recent)
        guarded = self._guarded(source, started)
        try:
            async for delta in guarded:
                piece = limiter.feed(cleaner.feed(delta))
                if piece:
                    yield piece
                if limiter.done:
                    break
            piece = limiter.feed(cleaner.flush())
            if piece:
                yield piece
        except BackendError as exc:
            piece = limiter.feed(cleaner.flush())
            if piece:
                yield piece
            yield self._ending(limiter, persona, turn, str(exc))
        finally:
            await guarded.aclose()
            await source.aclose()
        if self.memory is not None and limiter.text.strip():
            await self.memory.remember(turn.device_id, text, limiter.text.strip())
            if self.client is None and self.app is not None:
                self.app.spawn(self._prefill_next(turn, persona), f"llm-prefill:{turn.device_id}")

    async def _source(
        self, turn: Turn, text: str, persona: Persona, summary: str, recent: list[tuple[str, str]]
    ) -> AsyncIterator[str]:
        """The brain's raw stream: the endpoint, a local model, or the offline responder (announced)."""
        messages = chat_messages(persona, summary, recent, text)
        if self.client is not None:
            self._announce(turn, "remote", self.client.model or self.client.url)
            return self.client.stream(messages)
        assert self.app is not None, "llm was not started"
        stream = await self.app.host.call_first(
            "toyd_chat", turn=turn, messages=messages, max_tokens=self.settings.max_tokens
        )
        if stream is not None:
            self._announce(turn, "local", getattr(stream, "model", "local model"))
            return stream
        self._announce(turn, "rules", OfflineResponder.label)
        return self._offline_stream(text, persona)

    def _announce(self, turn: Turn, kind: str, name: str) -> None:
        log.info("llm: turn %s of %s answered by %s (%s)", turn.turn_id, turn.device_id, name, kind)
        if self.app is not None:
            self.app.bus.publish(
                ReplySource(device_id=turn.device_id, turn_id=turn.turn_id, kind=kind, name=name)
            )

    async def _offline_stream(self, text: str, persona: Persona) -> AsyncGenerator[str, None]:
        """The rule-based answer, word by word, so it streams like a model would."""
        answer = self.offline.reply(text, persona)
        for i, word in enumerate(answer.split(" ")):
            yield word if i == 0 else " " + word
            await asyncio.sleep(0)

    async def _guarded(
        self, source: AsyncIterator[str], started: float
    ) -> AsyncGenerator[str, None]:
        """Deltas from ``source``; a missed first-token or idle deadline raises BackendError."""
        first = True
        while True:
            timeout = (
                (self.settings.first_token_timeout - (time.monotonic() - started))
                if first
                else self.settings.idle_timeout
            )
            try:
                delta = await asyncio.wait_for(anext(source), max(timeout, 0.001))
            except StopAsyncIteration:
                return
            except TimeoutError:
                what = "first text" if first else "more text"
                limit = self.settings.first_token_timeout if first else self.settings.idle_timeout
                raise BackendError(f"language model sent no {what} within {limit:g} s") from None
            if delta and first:
                first = False
            yield delta

    def _ending(self, limiter: ReplyLimiter, persona: Persona, turn: Turn, problem: str) -> str:
        """The fallback line (nothing said yet) or a graceful ending (cut mid-reply); logged."""
        if not limiter.text.strip():
            log.warning(
                "llm: turn %s of %s: %s; saying the fallback line",
                turn.turn_id,
                turn.device_id,
                problem,
            )
            limiter.text = persona.fallback
            return persona.fallback
        log.warning(
            "llm: turn %s of %s: reply cut after %d characters: %s; ending it gracefully",
            turn.turn_id,
            turn.device_id,
            len(limiter.text),
            problem,
        )
        ending = ("" if limiter.ends_sentence else "... ") + persona.cut_ending
        # the cleaner's pieces end with a space; a reply the limiter cut may not
        if not limiter.text.endswith(" "):
            ending = " " + ending
        limiter.text += ending
        return ending
