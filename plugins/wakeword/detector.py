"""openWakeWord models on a lean streaming pipeline: tflite only, no scikit-learn, no onnxruntime.

The feature pipeline is openWakeWord's (melspectrogram → speech embedding → per-word
classifier), run directly on the LiteRT/tflite interpreter so the whole wake word stack
costs a few tens of MB instead of the ~200 MB that ``import openwakeword`` pulls in.

Audio is consumed in 80 ms chunks (1280 samples at 16 kHz). Per chunk: the melspectrogram
model turns the newest 1760 samples (the chunk plus 480 samples of context) into 8 mel
frames; the embedding model turns the newest 76 mel frames (~775 ms) into one 96-value
feature vector; each wake word model scores its newest 16 feature vectors (~1.3 s).
Not thread-safe: one :class:`WakeWordDetector` belongs to one thread at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toyd.errors import ToydError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CHUNK_SAMPLES = 1280  # 80 ms: one score per model per chunk
CHUNK_BYTES = CHUNK_SAMPLES * 2
CHUNK_SECONDS = CHUNK_SAMPLES / SAMPLE_RATE
MEL_CONTEXT = 480  # 3 hops of 160 samples carried over from the previous chunk
MEL_FRAMES = 76  # input window of the embedding model
MEL_BINS = 32
MEL_PER_CHUNK = 8  # mel frames per 80 ms chunk (10 ms hop)
EMBEDDING_SIZE = 96


class WakeWordModelError(ToydError):
    """A wake word model file is missing, unreadable or of the wrong shape."""


def load_interpreter(path: str | Path, threads: int = 1) -> Any:
    """A tflite interpreter for ``path`` from LiteRT (numpy 2) or, failing that, tflite_runtime."""
    path = Path(path)
    if not path.is_file():
        raise WakeWordModelError(f"model file not found: {path}")
    try:
        # XNNPACK (LiteRT's default delegate) makes the embedding model ~3x faster
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # older images ship tflite_runtime (works with numpy<2 only)
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError as exc:
            raise WakeWordModelError(
                "no tflite interpreter installed: pip install ai-edge-litert"
            ) from exc
    try:
        return Interpreter(model_path=str(path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise WakeWordModelError(f"{path}: not a usable tflite model ({exc})") from exc


class _Model:
    """One tflite model with a fixed input shape, ready to invoke."""

    def __init__(self, path: str | Path, shape: Sequence[int] | None, threads: int) -> None:
        self.path = Path(path)
        self.interp = load_interpreter(path, threads)
        inp = self.interp.get_input_details()[0]
        try:
            if shape is not None:
                self.interp.resize_tensor_input(inp["index"], list(shape), strict=True)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise WakeWordModelError(f"{path}: unexpected model input ({exc})") from exc
        self.input_index = inp["index"]
        self.input_shape = tuple(int(n) for n in self.interp.get_input_details()[0]["shape"])
        self.output_index = self.interp.get_output_details()[0]["index"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interp.set_tensor(self.input_index, x)
        self.interp.invoke()
        return self.interp.get_tensor(self.output_index)


@dataclasses.dataclass(frozen=True)
class WakeWordSpec:
    """A wake word model to run and how it triggers."""

    name: str
    path: Path
    threshold: float = 0.5
    refractory: float = 2.0
    patience: int = 1


@dataclasses.dataclass(frozen=True)
class Detection:
    """A model fired at ``time`` seconds of stream audio (end of the chunk)."""

    model: str
    score: float
    time: float


class _Word:
    """A classifier plus its trigger state."""

    def __init__(self, spec: WakeWordSpec, threads: int) -> None:
        self.spec = spec
        self.model = _Model(spec.path, None, threads)
        shape = self.model.input_shape
        if len(shape) != 3 or shape[2] != EMBEDDING_SIZE:
            raise WakeWordModelError(
                f"{spec.path}: not an openWakeWord classifier (input shape {shape})"
            )
        self.windows = shape[1]
        self.above = 0
        self.quiet_until = -1.0

    def reset(self) -> None:
        self.above = 0
        self.quiet_until = -1.0


class WakeWordDetector:
    """Streaming scorer: feed 16 kHz int16 PCM, get scores per 80 ms and detections."""

    def __init__(
        self,
        melspec_path: str | Path,
        embedding_path: str | Path,
        words: Sequence[WakeWordSpec],
        *,
        threads: int = 1,
    ) -> None:
        if not words:
            raise WakeWordModelError("no wake word models configured")
        self.melspec = _Model(melspec_path, (1, CHUNK_SAMPLES + MEL_CONTEXT), threads)
        self.embedding = _Model(embedding_path, (1, MEL_FRAMES, MEL_BINS, 1), threads)
        self.words = [_Word(spec, threads) for spec in words]
        history = max(w.windows for w in self.words)
        self._pending = bytearray()
        self._audio = np.zeros(CHUNK_SAMPLES + MEL_CONTEXT, dtype=np.float32)
        self._mels = np.zeros((MEL_FRAMES, MEL_BINS), dtype=np.float32)
        self._features = np.zeros((history, EMBEDDING_SIZE), dtype=np.float32)
        self._silence = self._silence_features()
        self.reset()

    @property
    def names(self) -> list[str]:
        return [w.spec.name for w in self.words]

    def _silence_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Mel frame and embedding of digital silence: the state after a long quiet stream."""
        mels = self.melspec(np.zeros((1, CHUNK_SAMPLES + MEL_CONTEXT), dtype=np.float32))
        mel = mels[0, 0, 0, :] / 10 + 2
        window = np.broadcast_to(mel, (MEL_FRAMES, MEL_BINS)).reshape(1, MEL_FRAMES, MEL_BINS, 1)
        feature = self.embedding(np.ascontiguousarray(window, dtype=np.float32)).reshape(
            EMBEDDING_SIZE
        )
        return mel.copy(), feature.copy()

    def update_specs(self, specs: Sequence[WakeWordSpec]) -> bool:
        """Swap thresholds/refractory/patience in place; False if the model files differ."""
        if [(s.name, s.path) for s in specs] != [(w.spec.name, w.spec.path) for w in self.words]:
            return False
        for word, spec in zip(self.words, specs):
            word.spec = spec
        return True

    def reset(self) -> None:
        """Forget all audio (after a pause): the buffers look like a long silence."""
        mel, feature = self._silence
        self._pending.clear()
        self._audio[:] = 0
        self._mels[:] = mel
        self._features[:] = feature
        self.position = 0.0  # seconds of audio scored since the last reset
        for word in self.words:
            word.reset()

    def process(self, pcm: bytes) -> tuple[dict[str, float], list[Detection]]:
        """Feed PCM (any length); returns the max score per model over the new chunks and detections."""
        self._pending += pcm
        scores = {name: 0.0 for name in self.names}
        detections: list[Detection] = []
        while len(self._pending) >= CHUNK_BYTES:
            chunk = np.frombuffer(bytes(self._pending[:CHUNK_BYTES]), dtype="<i2").astype(
                np.float32
            )
            del self._pending[:CHUNK_BYTES]
            for name, score, hit in self._score_chunk(chunk):
                scores[name] = max(scores[name], score)
                if hit:
                    detections.append(Detection(name, score, self.position))
        return scores, detections

    def _score_chunk(self, chunk: np.ndarray) -> list[tuple[str, float, bool]]:
        self._audio[:MEL_CONTEXT] = self._audio[-MEL_CONTEXT:]
        self._audio[MEL_CONTEXT:] = chunk
        mels = (
            self.melspec(self._audio.reshape(1, -1))[0, 0] / 10 + 2
        )  # scaling openWakeWord trained with
        self._mels[:-MEL_PER_CHUNK] = self._mels[MEL_PER_CHUNK:]
        self._mels[-MEL_PER_CHUNK:] = mels[-MEL_PER_CHUNK:]
        feature = self.embedding(self._mels.reshape(1, MEL_FRAMES, MEL_BINS, 1))
        self._features[:-1] = self._features[1:]
        self._features[-1] = feature.reshape(EMBEDDING_SIZE)
        self.position += CHUNK_SECONDS
        out = []
        for word in self.words:
            x = self._features[-word.windows :].reshape(1, word.windows, EMBEDDING_SIZE)
            score = float(word.model(x).reshape(-1)[0])
            out.append((word.spec.name, score, self._trigger(word, score)))
        return out

    def _trigger(self, word: _Word, score: float) -> bool:
        """Threshold, patience (consecutive chunks above it) and refractory time."""
        if score < word.spec.threshold:
            word.above = 0
            return False
        word.above += 1
        if word.above < word.spec.patience or self.position < word.quiet_until:
            return False
        word.above = 0
        word.quiet_until = self.position + word.spec.refractory
        return True
