"""``toyd safety train``: rebuild the classifier head from the corpus in ``data/``.

The head is a one-hidden-layer network trained with Adam on the embeddings of the
training lines (class-balanced cross-entropy, weight decay), in plain numpy: a few
seconds for the whole corpus once the ~2 500 lines are embedded (a few minutes on a
loaded 2-core machine). The same seed and corpus give the same weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .classifier import Embedder, Head
from .corpus import LABELS, Line, training_lines

log = logging.getLogger(__name__)

HIDDEN = 64
EPOCHS = 60
LEARNING_RATE = 0.01
WEIGHT_DECAY = 1e-2
BATCH = 64


def embed_lines(embedder: Embedder, lines: Sequence[Line], batch: int = BATCH) -> np.ndarray:
    """Embeddings of every line, in batches (blocking)."""
    rows = [
        embedder.embed([x.text for x in lines[i : i + batch]]) for i in range(0, len(lines), batch)
    ]
    return np.concatenate(rows) if rows else np.zeros((0, 384), np.float32)


def fit(
    x: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str] = LABELS,
    hidden: int = HIDDEN,
    epochs: int = EPOCHS,
    seed: int = 0,
) -> Head:
    """Train the head on embeddings ``x`` with string ``labels``."""
    rng = np.random.default_rng(seed)
    y = np.array([classes.index(label) for label in labels])
    counts = np.maximum(np.bincount(y, minlength=len(classes)), 1).astype(np.float64)
    # benign weighs as much as all unsafe classes together, each of which weighs the same:
    # most of what a child says is benign, and a false alarm interrupts a happy conversation
    share = np.full(len(classes), 0.5 / (len(classes) - 1))
    share[classes.index("benign")] = 0.5
    weight = (share / counts * len(y))[y]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6  # e5 vectors crowd in a narrow cone
    x = (x - mean) / scale
    params = [
        rng.normal(0, (2 / x.shape[1]) ** 0.5, (x.shape[1], hidden)),
        np.zeros(hidden),
        rng.normal(0, (2 / hidden) ** 0.5, (hidden, len(classes))),
        np.zeros(len(classes)),
    ]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), BATCH):
            idx = order[start : start + BATCH]
            grads = _gradients(params, x[idx], y[idx], weight[idx])
            step += 1
            for i, (p, g) in enumerate(zip(params, grads)):
                m, v = moments[i]
                g = g + WEIGHT_DECAY * p * (i % 2 == 0)  # decay the weights, not the biases
                m[:] = 0.9 * m + 0.1 * g
                v[:] = 0.999 * v + 0.001 * g * g
                p -= LEARNING_RATE * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    w1, b1, w2, b2 = params
    # fold the standardisation into the first layer: the head takes raw embeddings
    return Head(w1 / scale[:, None], b1 - (mean / scale) @ w1, w2, b2, tuple(classes))


def _gradients(
    params: list[np.ndarray], x: np.ndarray, y: np.ndarray, weight: np.ndarray
) -> list[np.ndarray]:
    w1, b1, w2, b2 = params
    h = np.maximum(x @ w1 + b1, 0.0)
    z = h @ w2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    dz = p * (weight / weight.sum())[:, None]
    dh = (dz @ w2.T) * (h > 0)
    return [x.T @ dh, dh.sum(axis=0), h.T @ dz, dz.sum(axis=0)]


def train(out: Path, embedder: Embedder, data: Path | None = None) -> tuple[Head, list[Line]]:
    """Embed the training corpus, fit the head, write it to ``out``."""
    lines = training_lines(data) if data else training_lines()
    started = time.monotonic()
    x = embed_lines(embedder, lines)
    embedded = time.monotonic() - started
    head = fit(x, [line.label for line in lines])
    head = Head(
        head.w1,
        head.b1,
        head.w2,
        head.b2,
        head.labels,
        {"lines": len(lines), "hidden": head.w1.shape[1], "epochs": EPOCHS},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    head.save(out)
    log.info("trained on %d lines (embedding took %.0f s), wrote %s", len(lines), embedded, out)
    return head, lines
