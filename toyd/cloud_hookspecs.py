"""Cloud-role hooks: the AI chain a gateway drives for each turn.

Order per turn: ``toyd_transcribe`` → ``toyd_check_text(speaker="child")`` →
``toyd_reply`` (streamed; it may ask ``toyd_chat`` for a local model's tokens) → per
sentence ``toyd_check_text(speaker="toy")`` → ``toyd_synthesize`` (streamed; shared with
the device role, so its contract lives in :mod:`toyd.hookspecs`). Each is first-result: the host awaits
implementations last-registered first and takes the first that is not None, so a
plugin can decline (return None) and let the next one answer. All take keyword
arguments; all may be async. Cancellation (barge-in) arrives as ``CancelledError``
in the awaiting task and must be re-raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING

from .markers import hookspec

if TYPE_CHECKING:
    from .turn import SafetyVerdict, Speaker, SpeechStream, Transcription, Turn


@hookspec(firstresult=True)
def toyd_transcribe(
    turn: Turn, pcm: bytes, sample_rate: int
) -> Transcription | None | Awaitable[Transcription | None]:
    """Turn the child's speech (mono int16 PCM) into text.

    Contract: first result; return None to decline. Empty or silent audio gives a
    :class:`~toyd.turn.Transcription` with empty ``text`` (not an error). Inference runs
    off the event loop.

    Example::

        @hookimpl
        async def toyd_transcribe(self, turn, pcm, sample_rate):
            text = await asyncio.to_thread(self.model.transcribe, pcm)
            return Transcription(text=text, language="en")
    """


@hookspec(firstresult=True)
def toyd_transcribe_stream(
    turn: Turn, sample_rate: int
) -> SpeechStream | None | Awaitable[SpeechStream | None]:
    """A transcription to feed while the child is still talking (the gateway asks at listen start).

    Contract: first result; None to decline (the gateway then calls ``toyd_transcribe``
    with the whole utterance at the end). The answer has ``feed(pcm: bytes)`` (mono int16
    at ``sample_rate``, called for every uplink frame: cheap, never blocking), an optional
    ``stable`` text (words that will not change; sent to the toy as an interim ``stt``),
    ``async result() -> Transcription`` at the end of speech, and ``async aclose()`` for an
    abort or barge-in.

    Example::

        @hookimpl
        def toyd_transcribe_stream(self, turn, sample_rate):
            return self.recogniser.open(turn.language, sample_rate)
    """


@hookspec(firstresult=True)
def toyd_check_text(
    turn: Turn, text: str, speaker: Speaker
) -> SafetyVerdict | None | Awaitable[SafetyVerdict | None]:
    """Judge one text: the child's words before the LLM, each reply sentence before TTS.

    Contract: first result; return None to decline (no filter installed means every
    text is allowed — a deployment should always enable one). Personal information is
    redacted in ``SafetyVerdict.text``. A plugin that raises makes the gateway treat the
    text as blocked (fail closed).

    Example::

        @hookimpl
        def toyd_check_text(self, turn, text, speaker):
            return SafetyVerdict(safe=True, text=text)
    """


@hookspec(firstresult=True)
def toyd_safety_verdict(
    turn: Turn, text: str, speaker: Speaker, category: str, severity: str
) -> SafetyVerdict | None | Awaitable[SafetyVerdict | None]:
    """The verdict for a ``category`` another plugin found in ``text``, under the safety policy.

    A second opinion (a moderation API) names a category; the safety filter owns the
    policy: the category's action, its replacement lines, who is alerted. Category
    ``"unchecked"`` means the text could not be checked at all (the API is down and
    fails closed): the local filter's verdict if it flags the text, else a gentle
    redirect. ``text`` is already redacted.

    Contract: first result; None when the category is allowed by config or no safety
    filter is installed (the caller then applies its own fallback).

    Example::

        @hookimpl
        def toyd_safety_verdict(self, turn, text, speaker, category, severity):
            return SafetyVerdict(safe=False, action="redirect", category=category, text=text)
    """


@hookspec(firstresult=True)
def toyd_reply(turn: Turn, text: str) -> AsyncIterator[str] | None:
    """Stream the toy's answer to the (already checked) child text, as text deltas.

    Contract: first result; return an async iterator of text pieces, or None to
    decline. The gateway cuts the stream into sentences, checks and speaks each
    while the rest is still coming. Closing the iterator (``aclose``) cancels the
    generation (barge-in).

    Example::

        @hookimpl
        def toyd_reply(self, turn, text):
            async def stream():
                yield "Hello! "
                yield "I am a dragon."
            return stream()
    """


@hookspec(firstresult=True)
def toyd_chat(
    turn: Turn, messages: list[dict[str, str]], max_tokens: int
) -> AsyncIterator[str] | None:
    """Stream a chat completion of OpenAI-style ``messages`` from a model in this process.

    Contract: first result; return an async iterator of text deltas, or None when no
    model is loaded. The caller (the ``llm`` plugin) owns the persona, memory, cleaning
    and limits; this hook only generates. Closing the iterator stops the generation at
    the next token (barge-in). Generation runs off the event loop.

    Example::

        @hookimpl
        def toyd_chat(self, turn, messages, max_tokens):
            return self.model.stream(messages, max_tokens=max_tokens)
    """


@hookspec(firstresult=True)
def toyd_authenticate(device_id: str, token: str) -> bool | None | Awaitable[bool | None]:
    """Is ``token`` a valid credential of toy ``device_id``? (the gateway asks on connect)

    Contract: first result; return True to accept, None when this plugin does not know
    the toy (the gateway then checks its own ``tokens``). Compare in constant time.

    Example::

        @hookimpl
        async def toyd_authenticate(self, device_id, token):
            return True if await self.store.is_live(device_id, token) else None
    """
