"""Device-role hooks: the questions the offline chain asks, answered by one plugin each.

Order of a local turn (``offline``): ``toyd_transcribe_local`` → ``toyd_lookup_reply`` →
``toyd_synthesize`` (shared with the cloud role, :mod:`toyd.hookspecs`) when the cached
reply has no audio. Each is first-result: implementations are awaited last-registered
first and the first result that is not None wins, so a plugin can decline. All take
keyword arguments; all may be async. A barge-in cancels the awaiting task; the
``CancelledError`` must be re-raised.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from .markers import hookspec

if TYPE_CHECKING:
    from .localturn import CacheAnswer, LocalTranscription
    from .turn import Turn


@hookspec(firstresult=True)
def toyd_transcribe_local(
    turn: Turn,
) -> LocalTranscription | None | Awaitable[LocalTranscription | None]:
    """Recognise the child's last utterance on the device (link down or reply late).

    Contract: first result; return None to decline. The recogniser has been listening to
    the microphone all along, so only the turn is passed; it decodes what it buffered.
    A missing model or a decoder fault is a :class:`~toyd.localturn.LocalTranscription`
    with ``error`` set, not an exception. Inference runs off the event loop.

    Example::

        @hookimpl
        async def toyd_transcribe_local(self, turn):
            text = await asyncio.to_thread(self.model.decode, self.utterance)
            return LocalTranscription(text=text)
    """


@hookspec(firstresult=True)
def toyd_lookup_reply(text: str) -> CacheAnswer | None | Awaitable[CacheAnswer | None]:
    """Find the stored reply to what the child said (the response cache).

    Contract: first result; return None to decline (no cache here). A miss is a
    :class:`~toyd.localturn.CacheAnswer` with ``hit`` False (``error`` set when the
    cache could not look); a hit carries the reply text and its 16 kHz PCM audio (empty
    when it has none: the caller synthesizes the text).

    Example::

        @hookimpl
        def toyd_lookup_reply(self, text):
            reply = self.replies.get(text.lower())
            return CacheAnswer(hit=reply is not None, reply=reply or "")
    """
