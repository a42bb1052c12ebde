"""The ``tts_espeak`` plugin: ``toyd_synthesize`` with an espeak-ng subprocess, resampled with soxr."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import struct
from collections.abc import AsyncGenerator, AsyncIterator

from toyd import App, PluginDeclaration, hookimpl, setting
from toyd.errors import BackendError
from toyd.turn import Turn

log = logging.getLogger(__name__)

OUT_RATE = 16000


@dataclasses.dataclass(frozen=True)
class EspeakVoice:
    """A persona's voice; unset fields fall back to the section defaults."""

    voice: str | None = setting(None, doc="espeak-ng voice (en-us, en-gb+f3, ko, de...; `espeak-ng --voices`).")
    rate: int | None = setting(None, min=80, max=450, doc="Words per minute.")
    pitch: int | None = setting(None, min=0, max=99, doc="Base pitch, 0-99.")


def _default_languages() -> dict[str, str]:
    return {"en": "en-us", "ko": "ko", "de": "de", "fr": "fr-fr", "es": "es", "ja": "ja", "zh": "cmn"}


@dataclasses.dataclass(frozen=True)
class EspeakSettings:
    """Settings of the ``tts_espeak`` section."""

    voice: str = setting("en-us+f3", doc="Default espeak-ng voice (a variant after '+', e.g. +f3, sounds friendlier).")
    rate: int = setting(165, min=80, max=450, doc="Default words per minute.")
    pitch: int = setting(60, min=0, max=99, doc="Default base pitch, 0-99.")
    amplitude: int = setting(100, min=0, max=200, doc="Loudness, 0-200.")
    languages: dict[str, str] = setting(factory=_default_languages,
                                        doc="Voice per language code, used when the toy's language is known.")
    personas: dict[str, EspeakVoice] = setting(factory=dict, doc="Voice per persona id (from the llm personas).")
    max_chars: int = setting(1000, min=10, max=20000, doc="Longer sentences are cut (logged) so one reply cannot hog the CPU.")
    timeout: float = setting(15.0, min=0.5, max=120, doc="Seconds one sentence may take before espeak-ng is stopped.")
    binary: str = setting("espeak-ng", doc="The espeak-ng program (name on PATH or absolute path).")


class EspeakPlugin:
    """Speaks each sentence in a subprocess; the PCM streams out as espeak-ng writes it."""

    def __init__(self) -> None:
        self.settings = EspeakSettings()
        self.running = 0  # espeak-ng processes alive now (barge-in must bring this to 0)

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("cloud",), settings=EspeakSettings,
                                 summary="Local text-to-speech with espeak-ng (streamed, 16 kHz)")

    @hookimpl
    def toyd_startup(self, app: App, settings: EspeakSettings) -> None:
        if shutil.which(settings.binary) is None:
            raise BackendError(f"{settings.binary} is not installed (apt-get install espeak-ng)")
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
        import numpy as np
        import soxr

        s = self.settings
        text = " ".join(text.split())
        if not text:
            return
        if len(text) > s.max_chars:
            log.warning("tts_espeak: turn %s: sentence of %d characters cut to %d", turn.turn_id, len(text), s.max_chars)
            text = text[: s.max_chars]
        voice, rate, pitch = self.voice_for(turn)
        proc = await asyncio.create_subprocess_exec(
            s.binary, "--stdout", "-v", voice, "-s", str(rate), "-p", str(pitch), "-a", str(s.amplitude),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdin and proc.stdout
        self.running += 1
        try:
            proc.stdin.write(text.encode("utf-8") + b"\n")
            proc.stdin.close()
            in_rate = await asyncio.wait_for(_read_wav_header(proc.stdout), s.timeout)
            resampler = soxr.ResampleStream(in_rate, OUT_RATE, 1, dtype="int16") if in_rate != OUT_RATE else None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + s.timeout
            carry = b""
            while True:
                chunk = await asyncio.wait_for(proc.stdout.read(8192), max(deadline - loop.time(), 0.01))
                last = not chunk
                data = carry + chunk
                carry = data[len(data) // 2 * 2:]
                samples = np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)
                out = resampler.resample_chunk(samples, last=last) if resampler else samples
                if len(out):
                    yield out.tobytes()
                if last:
                    break
            code = await asyncio.wait_for(proc.wait(), 2)
            if code != 0:
                err = (await proc.stderr.read()).decode(errors="replace").strip() if proc.stderr else ""
                raise BackendError(f"espeak-ng exited with {code} for voice {voice!r}: {err[:200]}")
        except TimeoutError:
            raise BackendError(f"espeak-ng took longer than {s.timeout:g} s for one sentence") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self.running -= 1


async def _read_wav_header(stream: asyncio.StreamReader) -> int:
    """Skip the RIFF header espeak-ng writes (sizes unknown while streaming); returns the rate."""
    try:
        riff = await stream.readexactly(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise BackendError("espeak-ng did not write a WAV stream")
        rate = 22050
        while True:
            chunk_id, size = struct.unpack("<4sI", await stream.readexactly(8))
            if chunk_id == b"data":
                return rate
            body = await stream.readexactly(size)
            if chunk_id == b"fmt ":
                channels, rate = struct.unpack("<HI", body[2:8])
                if channels != 1:
                    raise BackendError(f"espeak-ng wrote {channels} channels, expected 1")
    except asyncio.IncompleteReadError:
        raise BackendError("espeak-ng ended before writing any audio (bad voice name?)") from None
