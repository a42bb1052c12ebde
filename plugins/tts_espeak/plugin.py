"""The ``tts_espeak`` plugin: ``toyd_synthesize`` with an espeak-ng subprocess, resampled with soxr.

Both roles: the cloud speaks every reply with it, a toy its cached and offline replies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from toyd import App, PluginDeclaration, hookimpl, setting
from toyd.audio import espeak
from toyd.turn import Turn

log = logging.getLogger(__name__)

OUT_RATE = 16000


@dataclasses.dataclass(frozen=True)
class EspeakVoice:
    """A persona's voice; unset fields fall back to the section defaults."""

    voice: str | None = setting(
        None, doc="espeak-ng voice (en-us, en-gb+f3, ko, de...; `espeak-ng --voices`)."
    )
    rate: int | None = setting(None, min=80, max=450, doc="Words per minute.")
    pitch: int | None = setting(None, min=0, max=99, doc="Base pitch, 0-99.")


def _default_languages() -> dict[str, str]:
    return {
        "en": "en-us",
        "ko": "ko",
        "de": "de",
        "fr": "fr-fr",
        "es": "es",
        "ja": "ja",
        "zh": "cmn",
    }


@dataclasses.dataclass(frozen=True)
class EspeakSettings:
    """Settings of the ``tts_espeak`` section."""

    voice: str = setting(
        "en-us+f3",
        doc="Default espeak-ng voice (a variant after '+', e.g. +f3, sounds friendlier).",
    )
    rate: int = setting(165, min=80, max=450, doc="Default words per minute.")
    pitch: int = setting(60, min=0, max=99, doc="Default base pitch, 0-99.")
    amplitude: int = setting(100, min=0, max=200, doc="Loudness, 0-200.")
    languages: dict[str, str] = setting(
        factory=_default_languages,
        doc="Voice per language code, used when the toy's language is known.",
    )
    personas: dict[str, EspeakVoice] = setting(
        factory=dict, doc="Voice per persona id (from the llm personas)."
    )
    max_chars: int = setting(
        1000,
        min=10,
        max=20000,
        doc="Longer sentences are cut (logged) so one reply cannot hog the CPU.",
    )
    timeout: float = setting(
        15.0, min=0.5, max=120, doc="Seconds one sentence may take before espeak-ng is stopped."
    )
    binary: str = setting("espeak-ng", doc="The espeak-ng program (name on PATH or absolute path).")


class EspeakPlugin:
    """Speaks each sentence in a subprocess; the PCM streams out as espeak-ng writes it."""

    def __init__(self) -> None:
        self.settings = EspeakSettings()
        self.running = 0  # espeak-ng processes alive now (barge-in must bring this to 0)

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud", "device"),
            settings=EspeakSettings,
            summary="Local text-to-speech with espeak-ng (streamed, 16 kHz); "
            "on a toy it speaks cached and offline replies",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: EspeakSettings) -> None:
        espeak.find(settings.binary)
        self.settings = settings

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: EspeakSettings) -> bool:
        self.settings = settings
        return True

    @hookimpl
    def toyd_synthesize(self, turn: Turn, text: str) -> AsyncIterator[bytes]:
        return self._speak(turn, text)

    def voice_for(self, turn: Turn) -> tuple[str, int, int]:
        """(voice, rate, pitch): persona entry, else the toy's language, else the defaults."""
        s = self.settings
        voice, rate, pitch = s.voice, s.rate, s.pitch
        if turn.language and turn.language.split("-")[0] in s.languages:
            voice = s.languages[turn.language.split("-")[0]]
            if voice.split("+")[0] == s.voice.split("+")[0]:
                voice = s.voice  # keep the default's variant for the default language
        persona = s.personas.get(turn.persona or "")
        if persona is not None:
            voice = persona.voice or voice
            rate = persona.rate or rate
            pitch = persona.pitch if persona.pitch is not None else pitch
        return voice, rate, pitch

    async def _speak(self, turn: Turn, text: str) -> AsyncGenerator[bytes, None]:
        """16 kHz mono int16 chunks; closing the generator kills espeak-ng."""
        s = self.settings
        text = " ".join(text.split())
        if not text:
            return
        if len(text) > s.max_chars:
            log.warning(
                "tts_espeak: turn %s: sentence of %d characters cut to %d",
                turn.turn_id,
                len(text),
                s.max_chars,
            )
            text = text[: s.max_chars]
        name, rate, pitch = self.voice_for(turn)
        voice = espeak.Voice(name=name, rate=rate, pitch=pitch, amplitude=s.amplitude)
        self.running += 1
        try:  # aclosing: a barge-in that closes this generator kills espeak-ng now, not at GC
            async with contextlib.aclosing(
                espeak.stream(text, voice, binary=s.binary, timeout=s.timeout, sample_rate=OUT_RATE)
            ) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self.running -= 1
