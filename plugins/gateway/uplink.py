"""Which audio frames of a session are heard, and which are refused or dropped quietly.

Audio is heard only while listening, at most ``UPLINK_FPS`` frames a second. After an
utterance is cut at ``max_listen_seconds`` the toy keeps sending until it sees our
``listen stop``: those frames are expected, so for ``CUT_GRACE`` they are counted and
dropped, not reported as errors. A xiaozhi client streams on while it speaks: dropped too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from toyd.errors import ProtocolError
from toyd.protocol import check_uplink, codes, limits

from .meters import TokenBucket

if TYPE_CHECKING:
    from .xiaozhi_peer import XiaozhiPeer


class Uplink:
    """The gate in front of a session's :class:`~.hearing.Hearing`."""

    def __init__(self) -> None:
        self._rate = TokenBucket(limits.UPLINK_FPS, limits.UPLINK_BURST)
        self.frames_in = 0  # frames heard
        self.frames_after_cut = 0  # frames of a cut utterance still in flight (not errors)
        self._cut_turn = ""  # the turn whose utterance was cut
        self._cut_until = 0.0  # until then, its audio still in flight is dropped quietly

    def admit(self, frame: bytes, phase: str, xiaozhi: XiaozhiPeer | None) -> bool:
        """True: hear ``frame``; False: drop it quietly; ProtocolError: the toy sent it wrongly."""
        listening = phase == "listening"
        if not listening and self._cut_turn and time.monotonic() < self._cut_until:
            self.frames_after_cut += 1  # sent before the toy heard our listen stop
            return False
        if not listening and xiaozhi is not None:
            xiaozhi.frames_ignored += 1
            return False
        if not listening:
            raise ProtocolError(
                codes.UNEXPECTED_AUDIO, f"binary frame while {phase}; send listen start first"
            )
        check_uplink(frame)
        if not self._rate.take():
            raise ProtocolError(
                codes.RATE_LIMITED,
                f"more than {limits.UPLINK_FPS} audio frames per second; frame dropped",
            )
        self.frames_in += 1
        return True

    def cut(self, turn_id: str) -> None:
        """The utterance of ``turn_id`` was cut: its frames in flight are expected for a while."""
        self._cut_turn, self._cut_until = turn_id, time.monotonic() + limits.CUT_GRACE

    def listening(self) -> None:
        """A new utterance: nothing of an earlier cut one is expected any more."""
        self._cut_turn, self._cut_until = "", 0.0

    def toy_stopped(self, turn_id: str) -> None:
        """The toy's own ``listen stop``: nothing of the cut turn can follow it."""
        if self._cut_turn and turn_id in ("", self._cut_turn):
            self._cut_until = 0.0
