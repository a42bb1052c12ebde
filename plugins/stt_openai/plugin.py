"""The ``stt_openai`` plugin: uploads the child's speech as WAV, returns the transcript.

Works with OpenAI, Groq, faster-whisper-server / speaches, whisper.cpp's server and
LocalAI: anything that answers ``POST <base_url>/audio/transcriptions``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import time
import wave

from toyd import App, PluginDeclaration, hookimpl, httpclient, setting
from toyd.errors import BackendError
from toyd.turn import Transcription, Turn

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OpenAISttSettings:
    """Settings of the ``stt_openai`` section."""

    base_url: str = setting(
        doc="API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1."
    )
    api_key: str | None = setting(
        None, doc="Bearer token; use {$env: OPENAI_API_KEY}, never plain text."
    )
    model: str = setting("whisper-1", doc="Model name the server knows.")
    language: str = setting(
        "auto", doc="Language code, or 'auto': the toy's language if known, else detected."
    )
    timeout: float = setting(15.0, min=0.5, max=300, doc="Seconds for the whole request.")
    min_seconds: float = setting(
        0.2, min=0, max=5, doc="Shorter audio gives an empty transcript without a request."
    )
    max_seconds: float = setting(
        60.0, min=1, max=600, doc="Longer audio is cut to its first max_seconds (logged)."
    )

    def __post_init__(self) -> None:
        httpclient.check_base_url(self.base_url)


class OpenAISttPlugin:
    """``toyd_transcribe`` over HTTP; ``verbose_json`` segments give the confidence."""

    def __init__(self) -> None:
        self.settings: OpenAISttSettings | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=OpenAISttSettings,
            summary="Speech-to-text via an OpenAI-compatible transcription API",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: OpenAISttSettings) -> None:
        self.settings = settings
        log.info("stt_openai: model %r at %s", settings.model, settings.base_url)

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: OpenAISttSettings) -> bool:
        self.settings = settings
        return True

    @hookimpl
    async def toyd_transcribe(self, turn: Turn, pcm: bytes, sample_rate: int) -> Transcription:
        """Upload one utterance; a failing server raises a clear :class:`BackendError`."""
        s = self.settings
        assert s is not None, "stt_openai was not started"
        pcm = pcm[: len(pcm) // 2 * 2]
        seconds = len(pcm) / 2 / sample_rate
        if seconds < s.min_seconds:
            return Transcription(text="", language=turn.language, confidence=0.0, no_speech=1.0)
        if seconds > s.max_seconds:
            log.warning(
                "stt_openai: turn %s: %.0f s of audio cut to the first %.0f s",
                turn.turn_id,
                seconds,
                s.max_seconds,
            )
            pcm = pcm[: int(s.max_seconds * sample_rate) * 2]
        fields = {"model": s.model, "response_format": "verbose_json", "temperature": "0"}
        language = s.language if s.language != "auto" else turn.language
        if language:
            fields["language"] = language
        body, headers = httpclient.multipart_body(
            fields, {"file": ("speech.wav", _wav(pcm, sample_rate), "audio/wav")}
        )
        headers.update(httpclient.auth_headers(s.api_key))
        url = s.base_url.rstrip("/") + "/audio/transcriptions"
        started = time.monotonic()
        response = await httpclient.request(
            "POST", url, body=body, headers=headers, timeout=s.timeout
        )
        async with response:
            if response.status != 200:
                raise BackendError(
                    f"speech recognition at {url} refused: {await httpclient.error_text(response)}"
                )
            data = await response.json()
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise BackendError(f"speech recognition at {url} answered without a 'text' field")
        log.debug(
            "stt_openai: turn %s: %r in %.0f ms",
            turn.turn_id,
            data["text"],
            (time.monotonic() - started) * 1000,
        )
        return _transcription(data, language)


def _transcription(data: dict, language: str | None) -> Transcription:
    segments = [s for s in data.get("segments") or [] if isinstance(s, dict)]
    logprobs = [
        float(s["avg_logprob"]) for s in segments if isinstance(s.get("avg_logprob"), (int, float))
    ]
    no_speech = [
        float(s["no_speech_prob"])
        for s in segments
        if isinstance(s.get("no_speech_prob"), (int, float))
    ]
    return Transcription(
        text=data["text"].strip(),
        language=data.get("language") if isinstance(data.get("language"), str) else language,
        confidence=round(min(math.exp(sum(logprobs) / len(logprobs)), 1.0), 3) if logprobs else 1.0,
        no_speech=round(max(no_speech), 3) if no_speech else 0.0,
    )


def _wav(pcm: bytes, sample_rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return out.getvalue()
