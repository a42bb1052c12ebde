"""An optional LLM judge for borderline texts, over an OpenAI-compatible chat endpoint.

Only texts the classifier is unsure about (P(unsafe) between ``judge.low`` and
``judge.high``) are sent, already redacted, with a fixed rubric; the answer is one
JSON object. Blocking (:func:`toyd.jsonpost.post_json`): callers run it in an executor. Every failure
becomes a :class:`JudgeError`, and the classifier's threshold decides instead.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time

from toyd.errors import ToydError
from toyd.jsonpost import post_json

from .corpus import LABELS

RUBRIC = (
    "You check texts in a conversation between a young child and an AI voice toy, in English or Korean. "
    "Decide whether the text is unsafe for a child. Unsafe categories: "
    + ", ".join(label for label in LABELS if label != "benign")
    + ". Grooming includes secrecy from parents, meeting in person, gifts for photos, asking where the "
    "child lives or goes to school. Personal information means addresses, phone numbers, school names, "
    "full names. Benign look-alikes are safe: sports (shooting a ball), cooking (cutting, beating eggs), "
    "nature (a cat killing a mouse), games, history, doctors and medicine, surprise parties. "
    'Answer with one JSON object only: {"unsafe": true|false, "category": "<category or none>", '
    '"reason": "<a few words>"}'
)
JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeError(ToydError):
    """The judge could not be reached or answered something unusable."""


@dataclasses.dataclass(frozen=True)
class JudgeResult:
    """The judge's answer and how long it took."""

    unsafe: bool
    category: str | None
    reason: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "unsafe": self.unsafe,
            "category": self.category,
            "reason": self.reason,
            "ms": round(self.seconds * 1000, 1),
        }


class Judge:
    """Posts one text per request to ``{base_url}/chat/completions``."""

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout: float) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def judge(self, text: str, speaker: str) -> JudgeResult:
        """Ask about one (redacted) text; blocking, bounded by ``timeout``."""
        who = "the child" if speaker == "child" else "the toy (a sentence it is about to speak)"
        question = f"Said by {who}: {json.dumps(text, ensure_ascii=False)}"
        payload = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": 80,
            "messages": [
                {"role": "system", "content": RUBRIC},
                {"role": "user", "content": question},
            ],
        }
        started = time.monotonic()
        raw = post_json(self.url, payload, self.api_key, self.timeout, JudgeError)
        return parse(raw, time.monotonic() - started, self.url)


def parse(raw: bytes, seconds: float, source: str = "judge") -> JudgeResult:
    """The verdict in a chat completion; anything malformed is a JudgeError."""
    try:
        content = json.loads(raw.decode("utf-8"))["choices"][0]["message"]["content"]
        found = JSON_OBJECT.search(content)  # models like to wrap JSON in prose or fences
        answer = json.loads(found.group() if found else content)
        unsafe = answer["unsafe"]
        if not isinstance(unsafe, bool):
            raise TypeError("'unsafe' is not true or false")
    except (
        UnicodeDecodeError,
        json.JSONDecodeError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as exc:
        snippet = raw[:160].decode("utf-8", "replace")
        raise JudgeError(
            f"{source}: malformed answer ({type(exc).__name__}: {exc}): {snippet!r}"
        ) from None
    category = answer.get("category")
    category = (
        category
        if isinstance(category, str) and category in LABELS and category != "benign"
        else None
    )
    return JudgeResult(unsafe, category, str(answer.get("reason", ""))[:200], seconds)
