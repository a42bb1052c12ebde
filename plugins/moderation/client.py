"""A small client for the OpenAI-compatible ``POST {base_url}/moderations`` endpoint.

Blocking (:func:`toyd.jsonpost.post_json`), so callers run it off the event loop; every failure — network,
timeout, HTTP status, a body that is not the documented JSON — becomes one
:class:`ModerationError` with a clear message.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from toyd.errors import ToydError
from toyd.jsonpost import post_json


class ModerationError(ToydError):
    """The moderation API could not be reached or answered something unusable."""


@dataclasses.dataclass(frozen=True)
class ModerationResult:
    """The API's answer for one text: flagged, and per API category flag and score."""

    flagged: bool
    categories: Mapping[str, bool]
    scores: Mapping[str, float]


class ModerationClient:
    """Posts one text per request; holds no connection, so it is safe from any thread."""

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout: float) -> None:
        self.url = base_url.rstrip("/") + "/moderations"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def moderate(self, text: str) -> ModerationResult:
        """Ask the API about ``text`` (blocking, bounded by ``timeout``)."""
        payload = {"model": self.model, "input": text}
        raw = post_json(self.url, payload, self.api_key, self.timeout, ModerationError)
        return parse(raw, self.url)


def parse(raw: bytes, source: str = "moderation API") -> ModerationResult:
    """Read the first result of a moderation response; anything malformed is a ModerationError."""
    try:
        data = json.loads(raw.decode("utf-8"))
        result = data["results"][0]
        flagged = result["flagged"]
        categories = result.get("categories") or {}
        scores = result.get("category_scores") or {}
        if (
            not isinstance(flagged, bool)
            or not isinstance(categories, dict)
            or not isinstance(scores, dict)
        ):
            raise TypeError("wrong types")
        return ModerationResult(
            flagged=flagged,
            categories={str(k): bool(v) for k, v in categories.items()},
            scores={str(k): float(v) for k, v in scores.items() if isinstance(v, (int, float))},
        )
    except (
        UnicodeDecodeError,
        json.JSONDecodeError,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ) as exc:
        snippet = raw[:120].decode("utf-8", "replace")
        raise ModerationError(
            f"{source}: malformed response ({type(exc).__name__}): {snippet!r}"
        ) from None
