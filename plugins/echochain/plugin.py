"""The ``echochain`` plugin (cloud role): a stand-in AI chain that answers with the child's own voice.

For bringing up a toy and for tests of the link: speech-to-text returns ``transcript``
("echo"), every text is allowed, the reply is ``reply`` and the "synthesized" speech
is the audio the child just sent, so a working link makes the toy repeat you.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import AsyncIterator

from toyd import App, PluginDeclaration, hookimpl, setting
from toyd.turn import SafetyVerdict, Transcription, Turn

log = logging.getLogger(__name__)
KEEP_TURNS = 64  # uplink audio kept for turns whose reply is not spoken yet


@dataclasses.dataclass(frozen=True)
class EchoChainSettings:
    """Settings of the ``echochain`` section."""

    transcript: str = setting("echo", doc="What speech-to-text 'hears'.")
    reply: str = setting("Echo.", doc="The reply text, streamed word by word.")
    silence_ms: int = setting(
        0, min=0, max=10000, doc="Speak this much silence when the turn has no audio (say)."
    )
    repeat: int = setting(
        1, min=1, max=20, doc="Play the echo this many times (long replies for barge-in tests)."
    )


class EchoChainPlugin:
    """Implements the four cloud hooks with echo behaviour."""

    def __init__(self) -> None:
        self.settings = EchoChainSettings()
        self._audio: collections.OrderedDict[str, bytes] = collections.OrderedDict()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=EchoChainSettings,
            summary="Stand-in AI chain: the toy repeats what it heard",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: EchoChainSettings) -> None:
        self.settings = settings

    @hookimpl
    def toyd_transcribe(self, turn: Turn, pcm: bytes, sample_rate: int) -> Transcription:
        self._audio[turn.turn_id] = pcm
        while len(self._audio) > KEEP_TURNS:
            self._audio.popitem(last=False)
        return Transcription(text=self.settings.transcript if pcm else "", language=turn.language)

    @hookimpl
    def toyd_check_text(self, turn: Turn, text: str, speaker: str) -> SafetyVerdict:
        return SafetyVerdict(safe=True, text=text)

    @hookimpl
    def toyd_reply(self, turn: Turn, text: str) -> AsyncIterator[str]:
        async def words() -> AsyncIterator[str]:
            for word in self.settings.reply.split(" "):
                yield word + " "

        return words()

    @hookimpl
    def toyd_synthesize(self, turn: Turn, text: str) -> AsyncIterator[bytes]:
        pcm = self._audio.pop(turn.turn_id, None)
        if pcm is None:
            pcm = bytes(32 * self.settings.silence_ms)  # 16 kHz int16: 32 bytes per ms
        pcm *= self.settings.repeat

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(pcm), 3200):  # 100 ms pieces, like a streaming TTS
                yield pcm[start : start + 3200]

        return chunks()
