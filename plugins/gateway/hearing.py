"""The utterance a session is hearing: Opus decoded as it arrives, streaming speech-to-text, end of speech.

One :class:`Hearing` per session, reset at every ``listen start``. The words a streaming
recogniser will not change any more go to the toy as an interim ``stt`` while the child
is still talking; the rest is the response's job (:meth:`take` hands both over).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Literal

from toyd.audio import SAMPLE_RATE
from toyd.audio.opus import OpusDecoder, OpusError
from toyd.errors import ProtocolError
from toyd.protocol import Stt, codes
from toyd.protocol.limits import MAX_TEXT_CHARS
from toyd.turn import Turn

from .context import SessionContext
from .downlink import Send
from .endpoint import Endpointer

log = logging.getLogger(__name__)
Ended = Literal["max_length", "end_of_speech"]


class Hearing:
    """Collects one utterance; :meth:`hear` says when it ended."""

    def __init__(self, context: SessionContext, device_id: str, send: Send) -> None:
        self.context = context
        self.device_id = device_id
        self._send = send
        self.pcm = bytearray()
        self.speech: Any = None  # toyd_transcribe_stream's answer for the utterance being heard
        self._stable = ""  # its words already sent to the toy as an interim stt
        self._turn_id = ""
        self._decoder: OpusDecoder | None = None
        self._endpoint: Endpointer | None = None  # server end of speech (xiaozhi auto, realtime)

    def start(self, turn_id: str, *, endpoint: bool) -> None:
        """A new utterance; ``endpoint``: the gateway finds its end itself."""
        self._turn_id = turn_id
        self.pcm.clear()
        self._decoder = OpusDecoder()
        self._endpoint = Endpointer() if endpoint else None

    async def open_speech(self, turn: Turn) -> None:
        """Ask for a transcription to feed while the child talks (none: the whole utterance at the end)."""
        await self.drop()
        try:
            self.speech = await self.context.call_first(
                "toyd_transcribe_stream", turn=turn, sample_rate=SAMPLE_RATE
            )
        except Exception as exc:  # noqa: BLE001 - a faulty plugin costs the head start, not the turn
            log.error(
                "%s: toyd_transcribe_stream failed: %s; transcribing at the end instead",
                self.device_id,
                exc,
            )
            self.speech = None
        self._stable = ""

    async def hear(self, frame: bytes) -> Ended | None:
        """Decode one Opus packet; the reason the utterance ended with it, if it did."""
        assert self._decoder is not None
        try:
            # decoding 20 ms takes tens of microseconds: inline beats a thread hop
            pcm = self._decoder.decode(frame)
        except OpusError as exc:
            raise ProtocolError(codes.BAD_AUDIO, str(exc)) from None
        self.pcm += pcm
        if self.speech is not None:
            await self._feed_speech(pcm)
        if len(self.pcm) >= self.context.max_listen_bytes:
            return "max_length"
        if self._endpoint is not None and self._endpoint.feed(pcm):
            return "end_of_speech"
        return None

    async def _feed_speech(self, pcm: bytes) -> None:
        """Feed the utterance; words that will not change any more go to the toy as an interim stt."""
        try:
            self.speech.feed(pcm)
            stable = str(getattr(self.speech, "stable", "") or "")
        except Exception as exc:  # noqa: BLE001
            log.error(
                "%s: streaming transcription failed: %s; transcribing at the end instead",
                self.device_id,
                exc,
            )
            await self.drop()
            return
        if len(stable) > len(self._stable):
            self._stable = stable
            await self._send(Stt(text=stable[:MAX_TEXT_CHARS], final=False, turn_id=self._turn_id))

    def take(self) -> tuple[bytes, Any]:
        """The utterance's PCM and its streaming transcription (now the response's to close)."""
        self._endpoint = None
        pcm, self.pcm = bytes(self.pcm), bytearray()
        speech, self.speech = self.speech, None
        return pcm, speech

    async def drop(self) -> None:
        """Forget what was heard (abort, detect, the session's end)."""
        self.pcm.clear()
        speech, self.speech = self.speech, None
        if speech is not None:
            with contextlib.suppress(Exception):
                await speech.aclose()
