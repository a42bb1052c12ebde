"""The ``tts_http`` plugin: ``toyd_synthesize`` from a hosted TTS API, streamed and resampled.

``api: openai`` POSTs ``<base_url>/audio/speech`` with ``response_format: pcm`` (24 kHz
16-bit mono raw PCM; OpenAI, Kokoro-FastAPI, openedai-speech, LocalAI). ``api:
elevenlabs`` POSTs ``<base_url>/text-to-speech/<voice>/stream?output_format=pcm_16000``
with an ``xi-api-key`` header. The audio is passed on as it arrives.
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

from toyd import App, PluginDeclaration, hookimpl, httpclient, setting
from toyd.errors import BackendError
from toyd.turn import Turn

log = logging.getLogger(__name__)

OUT_RATE = 16000


@dataclasses.dataclass(frozen=True)
class HttpTtsSettings:
    """Settings of the ``tts_http`` section."""

    base_url: str = setting(
        doc="API root, e.g. https://api.openai.com/v1 or https://api.elevenlabs.io/v1."
    )
    api: Literal["openai", "elevenlabs"] = setting(
        "openai", doc="Which wire format the server speaks."
    )
    api_key: str | None = setting(None, doc="The key; use {$env: NAME}, never plain text.")
    model: str = setting(
        "tts-1", doc="Model name (openai: tts-1, gpt-4o-mini-tts; elevenlabs: eleven_flash_v2_5)."
    )
    voice: str = setting("alloy", doc="Voice name (openai) or voice id (elevenlabs).")
    personas: dict[str, str] = setting(
        factory=dict, doc="Voice per persona id, overriding 'voice'."
    )
    sample_rate: int = setting(
        0,
        min=0,
        max=48000,
        doc="Rate of the PCM the server sends; 0 = the API's default "
        "(openai 24000, elevenlabs 16000).",
    )
    speed: float = setting(1.0, min=0.25, max=4.0, doc="Speaking speed (openai only).")
    timeout: float = setting(
        10.0, min=0.5, max=120, doc="Seconds to the response headers and between chunks."
    )

    def __post_init__(self) -> None:
        httpclient.check_base_url(self.base_url)


class HttpTtsPlugin:
    """Streams each sentence's PCM from the server, resampled to 16 kHz."""

    def __init__(self) -> None:
        self.settings: HttpTtsSettings | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=HttpTtsSettings,
            summary="Hosted text-to-speech (OpenAI /audio/speech or ElevenLabs streaming)",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: HttpTtsSettings) -> None:
        self.settings = settings
        log.info(
            "tts_http: %s API at %s, voice %r", settings.api, settings.base_url, settings.voice
        )

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: HttpTtsSettings) -> bool:
        self.settings = settings
        return True

    @hookimpl
    def toyd_synthesize(self, turn: Turn, text: str) -> AsyncIterator[bytes]:
        return self._speak(turn, text)

    def _request(self, turn: Turn, text: str) -> tuple[str, bytes, dict[str, str], int]:
        s = self.settings
        assert s is not None, "tts_http was not started"
        voice = s.personas.get(turn.persona or "", s.voice)
        root = s.base_url.rstrip("/")
        if s.api == "openai":
            body, headers = httpclient.json_body(
                {
                    "model": s.model,
                    "input": text,
                    "voice": voice,
                    "response_format": "pcm",
                    "speed": s.speed,
                }
            )
            headers.update(httpclient.auth_headers(s.api_key))
            return root + "/audio/speech", body, headers, s.sample_rate or 24000
        rate = s.sample_rate or 16000
        body, headers = httpclient.json_body({"text": text, "model_id": s.model})
        if s.api_key:
            headers["xi-api-key"] = s.api_key
        url = f"{root}/text-to-speech/{urllib.parse.quote(voice)}/stream?output_format=pcm_{rate}"
        return url, body, headers, rate

    async def _speak(self, turn: Turn, text: str) -> AsyncGenerator[bytes, None]:
        """16 kHz int16 chunks as the server sends them; closing stops the download."""
        import asyncio

        import numpy as np
        import soxr

        text = " ".join(text.split())
        if not text:
            return
        url, body, headers, rate = self._request(turn, text)
        assert self.settings is not None
        timeout = self.settings.timeout
        response = await httpclient.request(
            "POST", url, body=body, headers=headers, timeout=timeout
        )
        async with response:
            if response.status != 200:
                raise BackendError(
                    f"speech synthesis at {url} refused: {await httpclient.error_text(response)}"
                )
            resampler = (
                soxr.ResampleStream(rate, OUT_RATE, 1, dtype="int16") if rate != OUT_RATE else None
            )
            carry = b""
            chunks = response.iter_bytes()
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), timeout)
                except StopAsyncIteration:
                    chunk = b""
                except TimeoutError:
                    raise BackendError(
                        f"speech synthesis at {url} sent nothing for {timeout:g} s"
                    ) from None
                data = carry + chunk
                carry = data[len(data) // 2 * 2 :]
                samples = np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)
                out = resampler.resample_chunk(samples, last=not chunk) if resampler else samples
                if len(out):
                    yield out.tobytes()
                if not chunk:
                    return
