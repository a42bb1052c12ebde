"""The ``stt_wyoming`` plugin (cloud role): ``toyd_transcribe`` over the Wyoming protocol.

The child's utterance goes as ``transcribe`` + ``audio-start/chunk/stop`` (16 kHz mono
int16, one-second chunks); the server's ``transcript`` is the answer. Works with the
speech-to-text servers Home Assistant users already run: wyoming-faster-whisper,
wyoming-vosk, ...
"""

from __future__ import annotations

import dataclasses
import logging
import time

from toyd import App, PluginDeclaration, hookimpl, setting
from toyd.errors import BackendError
from toyd.turn import Transcription, Turn
from toyd.wyoming_client import audio_event, check_uri, connection

log = logging.getLogger(__name__)
CHUNK_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class WyomingSttSettings:
    """Settings of the ``stt_wyoming`` section."""

    uri: str = setting(
        "tcp://127.0.0.1:10300",
        doc="The Wyoming speech-to-text server: tcp://host:port or unix:///path.",
    )
    language: str = setting(
        "auto",
        doc="Language code, or 'auto': the toy's language if known, else the server's default.",
    )
    model: str | None = setting(
        None, doc="Model name to ask for (the server's default when unset)."
    )
    connect_timeout: float = setting(
        3.0,
        min=0.1,
        max=60,
        doc="Seconds to reach the server, retrying while it restarts; then a clear error.",
    )
    timeout: float = setting(
        30.0, min=0.5, max=300, doc="Seconds for the transcript after the audio."
    )
    min_seconds: float = setting(
        0.2, min=0, max=5, doc="Shorter audio gives an empty transcript, no request."
    )

    def __post_init__(self) -> None:
        check_uri(self.uri)


class WyomingSttPlugin:
    """One connection per utterance; a restarted server is reached by the next one."""

    def __init__(self) -> None:
        self.settings = WyomingSttSettings()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=WyomingSttSettings,
            summary="Speech-to-text on a Wyoming server (wyoming-faster-whisper, ...)",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: WyomingSttSettings) -> None:
        self.settings = settings
        log.info("stt_wyoming: %s", settings.uri)

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: WyomingSttSettings) -> bool:
        self.settings = settings
        return True

    @hookimpl
    async def toyd_transcribe(self, turn: Turn, pcm: bytes, sample_rate: int) -> Transcription:
        from wyoming.event import Event

        s = self.settings
        pcm = pcm[: len(pcm) // 2 * 2]
        if len(pcm) / 2 / sample_rate < s.min_seconds:
            return Transcription(text="", language=turn.language, confidence=0.0, no_speech=1.0)
        language = s.language if s.language != "auto" else turn.language
        started = time.monotonic()
        async with connection(
            s.uri, connect_timeout=s.connect_timeout, what="Wyoming speech-to-text"
        ) as conn:
            # built by hand: wyoming 1.2 (pinned by the wake-word package) misspells it "transcibe"
            ask = {k: v for k, v in (("name", s.model), ("language", language)) if v}
            await conn.send(Event(type="transcribe", data=ask))
            await conn.send(audio_event("audio-start", sample_rate))
            step = int(sample_rate * CHUNK_SECONDS) * 2
            for start in range(0, len(pcm), step):
                await conn.send(
                    audio_event("audio-chunk", sample_rate, audio=pcm[start : start + step])
                )
            await conn.send(audio_event("audio-stop", sample_rate))
            while True:
                event = await conn.receive(s.timeout)
                if event.type == "transcript":
                    break
        text, heard_language = event.data.get("text"), event.data.get("language")
        if not isinstance(text, str):
            raise BackendError(f"Wyoming speech-to-text at {s.uri} sent a transcript without text")
        log.debug(
            "stt_wyoming: turn %s transcribed in %.0f ms",
            turn.turn_id,
            (time.monotonic() - started) * 1000,
        )
        text = text.strip()
        return Transcription(
            text=text,
            language=heard_language if isinstance(heard_language, str) else language,
            no_speech=0.0 if text else 1.0,
        )
