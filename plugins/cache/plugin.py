"""cache: answers known phrases from a local SQLite file (text + audio), online or offline."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from toyd import App, PluginDeclaration, Service, hookimpl, setting
from toyd.audio.wav import read_wav
from toyd.errors import AudioFileError, BackendError
from toyd.events import CacheStore, OfflinePhrases
from toyd.localturn import CacheAnswer
from toyd.speech import synthesize
from toyd.text import compact
from toyd.turn import Turn

from . import audio
from .audio import ReplyAudioError
from .store import CacheStoreError, Entry, ResponseStore

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """Settings of the ``cache`` section."""

    path: str = setting("responses.db", doc="SQLite file, relative to state_dir (or absolute).")
    responses: Mapping[str, str] = setting(
        doc="The maker's offline phrases: phrase → reply text.", factory=dict
    )
    audio: Mapping[str, str] = setting(
        doc="Optional recorded reply per phrase: phrase → WAV file.", factory=dict
    )
    language: str = setting("ko", doc="Language of the configured phrases.")
    persona: str = setting("", doc="Persona the configured replies belong to.")
    codec: Literal["opus", "pcm"] = setting(
        "opus", doc="How reply audio is stored: opus (about 10x smaller) or pcm."
    )
    max_bytes: int = setting(
        20_000_000, doc="Size cap; least recently used cloud replies are evicted first.", min=10_000
    )
    fuzzy_threshold: float = setting(
        85.0,
        doc="0-100 similarity a free-form transcript needs to match a "
        "phrase (rapidfuzz ratio); 0 = exact matches only.",
        min=0,
        max=100,
    )
    cloud_ttl: float = setting(
        30 * 86400.0, doc="Seconds a cloud-cached reply stays (0 = until evicted).", min=0
    )
    max_pages: int = setting(
        0, doc="Hard cap on the file in SQLite pages (0 = none): a disk quota.", min=0
    )


class CachePlugin:
    """Owns the response store: answers ``toyd_lookup_reply``, keeps CacheStore, announces phrases."""

    def __init__(self) -> None:
        self.settings = CacheSettings()
        self.store: ResponseStore | None = None
        self.error = ""
        self._keys: dict[str, str] = {}

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=CacheSettings,
            summary="Response cache (SQLite): known phrases answered with text + audio",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: CacheSettings) -> None:
        self.app, self.settings = app, settings
        self._events = app.bus.subscribe("cache", (CacheStore,), maxsize=512)
        path = Path(settings.path)
        self.store = ResponseStore(
            path if path.is_absolute() else app.state_dir / path,
            max_bytes=settings.max_bytes,
            max_pages=settings.max_pages,
        )
        try:
            await self.store.open()
        except CacheStoreError as exc:
            self.error = str(exc)
            self.store = None
            log.error("response cache disabled: %s", exc)

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("fill", self._fill, restart=False), Service("events", self._run)]

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: CacheSettings) -> bool:
        restart = (settings.path, settings.max_pages) != (
            self.settings.path,
            self.settings.max_pages,
        )
        self.settings = settings
        if self.store is not None:
            self.store.max_bytes = settings.max_bytes
        app.spawn(self._fill(), "cache.refill")
        return not restart

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        if self.store is not None:
            await self.store.close()

    # --- filling ----------------------------------------------------------------------

    async def _fill(self) -> None:
        """Bring the configured phrases into the file (only what changed), then announce them."""
        if self.store is not None:
            wanted: set[str] = set()
            for phrase, reply in self.settings.responses.items():
                key = compact(phrase)
                if not key:
                    log.warning("cache.responses: phrase %r has no words, skipped", phrase)
                    continue
                wanted.add(key)
                try:
                    await self._fill_one(key, phrase, reply)
                except (
                    sqlite3.Error,
                    ReplyAudioError,
                ) as exc:  # one phrase lost, not the whole fill
                    log.error(
                        "cache.responses[%r] could not be stored: %s: %s",
                        phrase,
                        type(exc).__name__,
                        exc,
                    )
            if self.store.writable:
                removed = await self.store.delete_config_except(wanted)
                if removed:
                    log.info(
                        "response cache: %d phrases no longer configured were removed", removed
                    )
        await self._announce()

    async def _fill_one(self, key: str, phrase: str, reply: str) -> None:
        assert self.store is not None
        wav = self.settings.audio.get(phrase)
        meta = await self.store.entry_meta(key)
        if meta is not None and meta[0] == reply and meta[1] and wav is None:
            return  # unchanged since the last start: keep its audio (maybe cloud-made)
        try:
            if wav:
                pcm = await self.app.run_blocking(read_wav, Path(wav))
            else:
                turn = self._turn(self.settings.language, self.settings.persona)
                pcm = await synthesize(self.app, turn, reply)
        except (AudioFileError, BackendError) as exc:
            log.error("cache.responses[%r]: %s; the phrase is kept as text only", phrase, exc)
            pcm = b""
        blob = await self.app.run_blocking(audio.encode, pcm, self.settings.codec) if pcm else None
        await self.store.put(
            Entry(
                key=key,
                phrase=phrase,
                reply=reply,
                audio=blob,
                codec=self.settings.codec,
                source="config",
                language=self.settings.language,
                persona=self.settings.persona,
            )
        )

    async def _announce(self, *, always: bool = True) -> None:
        """Publish the phrase set (the recogniser's grammar) when it changed, or always."""
        keys = await self.store.keys() if self.store is not None else {}
        changed, self._keys = keys != self._keys, keys
        if changed or always:
            self.app.bus.publish(
                OfflinePhrases(phrases=tuple(keys.values()), language=self.settings.language)
            )

    # --- events -----------------------------------------------------------------------

    async def _run(self) -> None:
        async for event in self._events:
            try:
                await self._keep(event)
            except sqlite3.Error as exc:  # the file broke while running (I/O error, corruption)
                self._log_failure(exc)

    def _log_failure(self, exc: sqlite3.Error) -> None:
        log.error(
            "response cache %s failed: %s: %s",
            self.store.path if self.store else "",
            type(exc).__name__,
            exc,
        )

    @hookimpl
    async def toyd_lookup_reply(self, text: str) -> CacheAnswer:
        """Normalised exact match first, then the closest phrase above the fuzzy threshold."""
        if self.store is None:
            return CacheAnswer(hit=False, error=self.error or "cache disabled")
        query = compact(text)
        key, score = (query, 100.0) if query in self._keys else self._fuzzy(query)
        try:
            entry = await self.store.get(key) if key else None
        except (
            sqlite3.Error
        ) as exc:  # the file broke while running: a miss; the cache keeps serving
            self._log_failure(exc)
            return CacheAnswer(hit=False, error=str(exc))
        if entry is None:
            return CacheAnswer(hit=False)
        try:
            pcm = (
                await self.app.run_blocking(audio.decode, entry.audio, entry.codec)
                if entry.audio
                else b""
            )
        except (ReplyAudioError, ValueError) as exc:
            log.error(
                "response cache: stored audio for %r is unreadable (%s); replying with text only",
                entry.phrase,
                exc,
            )
            pcm = b""
        return CacheAnswer(hit=True, phrase=entry.phrase, reply=entry.reply, pcm=pcm, score=score)

    def _turn(self, language: str, persona: str) -> Turn:
        """The turn a stored reply is spoken for: its language and persona choose the voice."""
        return Turn(
            device_id=self.app.device_id,
            session_id="cache",
            turn_id="fill",
            language=language or None,
            persona=persona or None,
        )

    def _fuzzy(self, query: str) -> tuple[str, float]:
        if not query or self.settings.fuzzy_threshold <= 0 or not self._keys:
            return "", 0.0
        from rapidfuzz import fuzz, process

        best = process.extractOne(
            query, list(self._keys), scorer=fuzz.ratio, score_cutoff=self.settings.fuzzy_threshold
        )
        return (best[0], float(best[1])) if best else ("", 0.0)

    async def _keep(self, event: CacheStore) -> None:
        """A cacheable reply (from the cloud): store it, audio as configured."""
        if self.store is None or not self.store.writable:
            return
        key = compact(event.phrase)
        if not key or not event.reply:
            log.warning(
                "cache: ignored a cacheable reply without phrase or text (cache_key %r)",
                event.cache_key,
            )
            return
        pcm = event.pcm
        if not pcm:
            try:
                pcm = await synthesize(
                    self.app,
                    self._turn(event.language or self.settings.language, event.persona),
                    event.reply,
                )
            except BackendError as exc:
                log.warning("cache: a cacheable reply is kept without audio: %s", exc)
        blob = await self.app.run_blocking(audio.encode, pcm, self.settings.codec) if pcm else None
        ttl = event.ttl or self.settings.cloud_ttl
        source = "config" if event.source == "config" else "cloud"
        stored = await self.store.put(
            Entry(
                key=key,
                phrase=event.phrase,
                reply=event.reply,
                audio=blob,
                codec=self.settings.codec,
                source=source,
                language=event.language or self.settings.language,
                persona=event.persona,
            ),
            cache_key=event.cache_key,
            ttl=0.0 if source == "config" else ttl,
        )
        if stored:  # a new phrase, or an eviction made room: the grammar follows the file
            await self._announce(always=False)
