"""offline: runs a turn on the device when the link is down or the reply is late.

Asks the other plugins through the device hooks, the way the cloud's gateway asks the
AI chain: ``toyd_transcribe_local`` (``vosk_stt``) → ``toyd_lookup_reply`` (``cache``) →
``toyd_synthesize`` (``tts_espeak``) for a reply without audio; a miss plays a friendly
fallback clip. Events tell it when a turn must run locally and carry the answer out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any

from toyd import App, PluginDeclaration, Service, hookimpl, setting
from toyd.audio import frames
from toyd.audio.wav import read_wav
from toyd.errors import AudioFileError, BackendError
from toyd.events import (
    CloudOffline,
    CloudOnline,
    OfflineAnswered,
    ReplyAudio,
    ReplyAudioEnd,
    ReplyTimeout,
    SpeechEnded,
    StateChanged,
)
from toyd.localturn import CacheAnswer, LocalTranscription
from toyd.speech import synthesize
from toyd.state import State
from toyd.turn import Turn

LOCAL_PREFIX = "local-"

log = logging.getLogger(__name__)

FALLBACK_LINES = {
    "ko": "미안해, 지금은 잘 모르겠어. 조금 있다가 다시 물어봐 줘!",
    "en": "Sorry, I can't answer that right now. Ask me again in a little while!",
}


@dataclasses.dataclass(frozen=True)
class OfflineSettings:
    """Settings of the ``offline`` section."""

    language: str = setting(
        "ko", doc="Language of the fallback line (the speech plugin picks its voice)."
    )
    fallback_wav: str = setting(
        "", doc="WAV clip played when the cache has no answer (best: a recorded voice)."
    )
    fallback_text: str = setting(
        "",
        doc="Line spoken by the speech plugin (tts_espeak) when no fallback_wav "
        "is set (empty = a built-in line for the language).",
    )
    on_reply_timeout: bool = setting(
        True, doc="Answer locally when the cloud misses its reply deadline."
    )
    hot_cache: bool = setting(
        False,
        doc="Online too: a question that is exactly a cached phrase is answered "
        "at once from the cache and the cloud turn is aborted (needs "
        "vosk_stt.decode: always).",
    )
    local_timeout: float = setting(
        20.0, doc="Seconds a local turn may take (includes a lazy model load).", min=1, max=120
    )


class OfflinePlugin:
    """The offline switch: decides when a turn runs locally and plays the answer."""

    def __init__(self) -> None:
        self.settings = OfflineSettings()
        self.offline = False
        self.fallback_pcm = b""
        self._fallback_text = ""
        self._fallback_ready = asyncio.Event()
        self._turn: asyncio.Task[None] | None = None
        self._answered_utterance = -1
        self._utterance = 0
        self._state = State.IDLE
        self._cloud_started = -1

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=OfflineSettings,
            summary="Offline switch: local turns (Vosk → cache → speaker) when the link is down",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: OfflineSettings) -> None:
        self.app, self.settings = app, settings
        self._events = app.bus.subscribe(
            "offline",
            (StateChanged, SpeechEnded, ReplyTimeout, CloudOnline, CloudOffline, ReplyAudio),
            maxsize=2048,
        )

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [
            Service("fallback", self._prepare_fallback, restart=False),
            Service("events", self._run),
        ]

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: OfflineSettings) -> bool:
        self.settings = settings
        await self._prepare_fallback()
        return True

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        if self._turn is not None:
            self._turn.cancel()

    async def _prepare_fallback(self) -> None:
        """Load or synthesise the fallback clip once, so a miss answers at once."""
        try:
            await self._load_fallback()
        finally:
            self._fallback_ready.set()

    async def _load_fallback(self) -> None:
        s = self.settings
        if s.fallback_wav:
            try:
                self.fallback_pcm = await self.app.run_blocking(read_wav, Path(s.fallback_wav))
                self._fallback_text = (
                    s.fallback_text
                )  # what the recorded clip says, if the maker wrote it down
                return
            except AudioFileError as exc:
                log.error(
                    "offline.fallback_wav: cannot read reply clip: %s; using the spoken fallback line "
                    "instead",
                    exc,
                )
        self._fallback_text = self.fallback_line()
        try:
            self.fallback_pcm = await synthesize(
                self.app, self._turn_for("fallback"), self._fallback_text
            )
        except BackendError as exc:
            log.error("offline fallback line unavailable (%s); a cache miss will be silent", exc)

    def fallback_line(self) -> str:
        """The text of the fallback (configured, or the built-in line for the language)."""
        return self.settings.fallback_text or FALLBACK_LINES.get(
            self.settings.language, FALLBACK_LINES["en"]
        )

    # --- events -----------------------------------------------------------------------

    async def _run(self) -> None:
        async for event in self._events:
            if isinstance(event, ReplyAudio):
                if not event.response_id.startswith(LOCAL_PREFIX):
                    self._cloud_started = (
                        self._utterance
                    )  # the cloud is already answering this question
            elif isinstance(event, StateChanged):
                self.offline, self._state = event.offline, event.new
                if event.new is State.LISTENING and event.old is not State.LISTENING:
                    self._utterance += 1
                    self._cancel_turn()  # barge-in: a new question replaces the local answer
            elif isinstance(event, (CloudOnline, CloudOffline)):
                self.offline = isinstance(event, CloudOffline)
            elif isinstance(event, SpeechEnded):
                # only the end of a question the toy was listening to (not VAD noise while idle)
                if event.reason != "too_short" and self._state is State.LISTENING:
                    if self.offline:
                        self._start(uuid.uuid4().hex, "offline")
                    elif self.settings.hot_cache:
                        self._start(uuid.uuid4().hex, "hot_cache")
            elif isinstance(event, ReplyTimeout) and self.settings.on_reply_timeout:
                self._start(event.turn_id or uuid.uuid4().hex, event.reason or "reply_timeout")

    def _start(self, turn_id: str, reason: str) -> None:
        if self._answered_utterance == self._utterance:
            return  # this utterance already has a local answer (offline, then its reply timeout)
        self._answered_utterance = self._utterance
        self._cancel_turn()
        self._turn = self.app.spawn(
            self._local_turn(turn_id, reason), f"offline.turn.{turn_id[:8]}"
        )

    def _cancel_turn(self) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()

    def _turn_for(self, turn_id: str) -> Turn:
        return Turn(
            device_id=self.app.device_id,
            session_id="local",
            turn_id=turn_id,
            language=self.settings.language or None,
        )

    async def _ask(self, hook: str, **kwargs: Any) -> Any:
        """One device hook's answer; a plugin that fails costs this step, not the turn."""
        try:
            return await self.app.host.call_first(hook, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the fallback still answers the child
            log.error("%s failed: %s: %s", hook, type(exc).__name__, exc)
            log.debug("%s traceback", hook, exc_info=exc)
            return None

    async def _local_turn(self, turn_id: str, reason: str) -> None:
        """Recognise → look up → speaker, bounded by ``local_timeout``; a miss plays the fallback."""
        log.info("local turn %s (%s)", turn_id[:8], reason)
        heard = LocalTranscription(text="", error="no answer")
        result: CacheAnswer | None = None
        try:
            async with asyncio.timeout(self.settings.local_timeout):
                turn = self._turn_for(turn_id)
                heard = await self._ask("toyd_transcribe_local", turn=turn) or LocalTranscription(
                    text="", error="no local speech recognition plugin is enabled"
                )
                query = heard.phrase if heard.grammar else heard.text
                if query:
                    result = await self._ask("toyd_lookup_reply", text=query)
        except TimeoutError:
            log.error(
                "local turn %s took longer than %g s; playing the fallback",
                turn_id[:8],
                self.settings.local_timeout,
            )
            result = None
        sure = heard.grammar and heard.phrase and result is not None and result.hit
        if reason == "hot_cache" and (not sure or self._cloud_started == self._utterance):
            # not a sure hit: the cloud answers as usual; a later reply timeout may still answer locally
            self._answered_utterance = -1
            log.info(
                "hot cache: %s; the cloud answers",
                "the cloud was faster" if sure else "no sure match",
            )
            log.debug("hot cache heard %r", heard.text)
            return
        if result is not None and result.hit:
            pcm = result.pcm or await self._speak(turn_id, result.reply)
            self._play(turn_id, heard.text, "cache", result.reply, pcm, reason)
        else:
            if heard.error:
                log.warning("local turn %s: no transcript (%s)", turn_id[:8], heard.error)
            if (
                not self._fallback_ready.is_set()
            ):  # a turn right after start: the clip is still being made
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._fallback_ready.wait(), self.settings.local_timeout)
            self._play(
                turn_id, heard.text, "fallback", self._fallback_text, self.fallback_pcm, reason
            )

    async def _speak(self, turn_id: str, text: str) -> bytes:
        try:
            return await synthesize(self.app, self._turn_for(turn_id), text)
        except BackendError as exc:
            log.error("cannot speak the cached reply: %s", exc)
            return b""

    def _play(
        self, turn_id: str, transcript: str, source: str, reply: str, pcm: bytes, reason: str
    ) -> None:
        """All frames at once: the speaker paces them and drops them on barge-in."""
        response_id = f"{LOCAL_PREFIX}{uuid.uuid4().hex[:12]}"
        for frame in frames(pcm):
            self.app.bus.publish(ReplyAudio(response_id=response_id, pcm=frame))
        self.app.bus.publish(ReplyAudioEnd(response_id=response_id))
        log.info("local turn %s answered from %s", turn_id[:8], source)
        log.debug("local turn %s: heard %r, replied %r", turn_id[:8], transcript, reply)
        self.app.bus.publish(
            OfflineAnswered(
                turn_id=turn_id,
                transcript=transcript,
                source=source,
                reply=reply,
                response_id=response_id,
                reason=reason,
            )
        )
