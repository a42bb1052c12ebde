"""Decode while the child is still talking, so that at the end of speech little or nothing is left.

Whisper is not a streaming model, so this follows the usual way around it: the growing
utterance is decoded again in the background whenever enough new audio has arrived, or
as soon as the child pauses after new words (they may have finished), and no decode is
running. Each decode is the same decode the plain path would run on that audio, so
accuracy is the same. When the utterance ends:

- if the audio after the last background decode is silence (the VAD's hangover, a
  pause before the button is released), that decode *is* the final transcript: the
  answer is ready at once;
- otherwise the whole utterance is decoded once more, which costs one plain decode
  (after the running one, if any: the model's worker is busy until it ends).

The words two consecutive background decodes agree on from the start are *stable*:
they are the partial transcript (``stable``, for interim results) and never change later in
this turn's partials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from toyd.turn import Transcription

log = logging.getLogger(__name__)

RATE = 16000
FRAME = RATE // 50  # 20 ms
Decode = Callable[[np.ndarray], Awaitable[Transcription]]


class GrowingUtterance:
    """``feed`` audio as it comes; ``result()`` at the end of speech; ``aclose()`` on abort."""

    def __init__(
        self,
        decode: Decode,
        *,
        step_seconds: float,
        min_seconds: float,
        tail_db: float,
        pause_seconds: float = 0.0,
    ) -> None:
        self._decode = decode
        self.step = int(step_seconds * RATE)
        self.min_samples = int(min_seconds * RATE)
        self.tail_db = tail_db
        self.pause_frames = round(pause_seconds * RATE / FRAME)  # 0: no decode at pauses
        self._chunks: list[np.ndarray] = []
        self._length = 0
        self._db: list[float] = []  # loudness of every whole 20 ms frame so far
        self._rest = np.zeros(0, np.float32)  # the samples of a frame not yet whole
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[int, Transcription] | None = (
            None  # samples covered, result of the latest decode
        )
        self._previous_words: list[str] = []
        self.stable = ""
        self.decodes = 0  # background decodes that finished (for logs and the benchmark)
        self.from_background = False  # whether result() answered from a background decode

    @property
    def seconds(self) -> float:
        return self._length / RATE

    def audio(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    def feed(self, samples: np.ndarray) -> None:
        """Add 16 kHz float32 audio; starts a background decode when enough is new and none runs."""
        if not len(samples):
            return
        self._chunks.append(samples)
        self._length += len(samples)
        if self.pause_frames:
            self._measure(samples)
        if self._task is None and self._length >= self.min_samples:
            covered = self._last[0] if self._last is not None else 0
            if (
                self._last is None
                or self._length - covered >= self.step
                or self._paused_after_words(covered)
            ):
                self._task = asyncio.get_running_loop().create_task(
                    self._background(self.audio()[: self._length])
                )

    def _measure(self, samples: np.ndarray) -> None:
        audio = np.concatenate([self._rest, samples]) if len(self._rest) else samples
        whole = len(audio) // FRAME * FRAME
        if whole:
            self._db.extend(_frame_db(audio[:whole]).tolist())
        self._rest = audio[whole:]

    def _paused_after_words(self, covered: int) -> bool:
        """The last ``pause_frames`` are quiet, and something louder came after sample ``covered``.

        Quiet means what :meth:`result` counts as silence: ``tail_db`` under the loud frames.
        """
        n = self.pause_frames
        if len(self._db) <= n:
            return False
        reference = float(np.percentile(self._db[:-n], 90)) - self.tail_db
        since = self._db[covered // FRAME : -n]  # frames after the last decode, before the pause
        return bool(since) and max(since) >= reference > max(self._db[-n:])

    async def _background(self, audio: np.ndarray) -> None:
        try:
            result = await self._decode(audio)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed background decode only loses a head start
            log.debug("background decode failed: %s", exc)
            return
        finally:
            self._task = None
        self.decodes += 1
        self._last = (len(audio), result)
        self._commit(result.text)

    def _commit(self, text: str) -> None:
        """Words two consecutive decodes agree on from the start become stable; ``stable`` only grows."""
        words = text.split()
        agreed = 0
        for a, b in zip(words, self._previous_words):
            if a.strip(".,!?").lower() != b.strip(".,!?").lower():
                break
            agreed += 1
        self._previous_words = words
        held = self.stable.split()
        if agreed > len(held) and [w.lower() for w in words[: len(held)]] == [
            w.lower() for w in held
        ]:
            self.stable = " ".join(words[:agreed])  # extended, never rewritten

    async def result(self) -> Transcription:
        """The final transcript: the latest decode if only silence came after it, else one more decode."""
        audio = self.audio()[: self._length]
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._last is not None and self._tail_is_silent(audio, self._last[0]):
            log.debug(
                "final transcript from the background decode (%.2f of %.2f s)",
                self._last[0] / RATE,
                len(audio) / RATE,
            )
            self.from_background = True
            return self._last[1]
        return await self._decode(audio)

    def _tail_is_silent(self, audio: np.ndarray, covered: int) -> bool:
        """Whether every 20 ms frame after ``covered`` is ``tail_db`` below the utterance's loud frames."""
        tail = audio[covered:]
        if len(tail) < FRAME:
            return True
        loud = _frame_db(audio[:covered]) if covered >= FRAME else np.array([-120.0])
        reference = float(np.percentile(loud, 90))
        return float(_frame_db(tail).max()) < reference - self.tail_db

    async def aclose(self) -> None:
        """Cancel a running background decode (barge-in, abort, a new turn)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _frame_db(audio: np.ndarray) -> np.ndarray:
    frames = audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
    return 20 * np.log10(rms)
