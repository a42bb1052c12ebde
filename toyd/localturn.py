"""What the device's offline chain passes between its stages (recognition → cache → speech)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LocalTranscription:
    """On-device recognition of the child's last utterance.

    ``phrase`` is the cached phrase it matched in grammar mode ("" = out of grammar or
    free-form); ``error`` says why there is no text (model missing, decoder fault).
    """

    text: str
    phrase: str = ""
    grammar: bool = False
    error: str = ""


@dataclasses.dataclass(frozen=True)
class CacheAnswer:
    """The response cache's answer: ``hit`` with the matched phrase, reply text and 16 kHz PCM.

    A miss has ``hit`` False; ``error`` says why the cache could not look (disabled, broken file).
    """

    hit: bool
    phrase: str = ""
    reply: str = ""
    pcm: bytes = b""
    score: float = 0.0
    error: str = ""
