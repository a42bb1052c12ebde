"""Reply playback: a jitter buffer per response, software volume, and barge-in.

The player runs on the event loop and hands one frame at a time to the speaker
thread, so it decides frame by frame what may still play. Guarantee: once a state
change interrupts playback, :meth:`AudioOutput.interrupt` has been called before the
handler returns, every response id known at that moment is dead, and a frame of a
dead response is never handed to the speaker again, however late it arrives.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from concurrent.futures import Executor

import numpy as np

from toyd.bus import EventBus
from toyd.events import PlaybackFinished, PlaybackStarted, ReplyAudio, ReplyAudioEnd, StateChanged
from toyd.state import State

from .device import AudioOutput

log = logging.getLogger(__name__)

# States in which nothing may play: new responses arriving then are dead on arrival.
SILENT_STATES = frozenset({State.LISTENING, State.SLEEPING, State.MUTED})
# How many finished/interrupted response ids to remember for dropping late frames.
DEAD_MEMORY = 1024


def apply_volume(pcm: bytes, level: int) -> bytes:
    """Scale int16 PCM by a perceptual curve (gain = (level/100)^2); 100 is bit-exact."""
    if level >= 100:
        return pcm
    if level <= 0:
        return bytes(len(pcm))
    gain = (level / 100) ** 2
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) * gain
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


@dataclasses.dataclass
class _Response:
    rid: str
    frames: collections.deque[bytes] = dataclasses.field(default_factory=collections.deque)
    ended: bool = False
    started: bool = False
    buffering: bool = True
    last_activity: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass
class PlayerStats:
    """Counters for logs and benchmarks."""

    frames_played: int = 0
    frames_dropped: int = 0
    underruns: int = 0
    interrupts: int = 0
    last_interrupt_at: float = 0.0


class Player:
    """Plays ReplyAudio responses in arrival order; stops at once on barge-in."""

    def __init__(
        self,
        bus: EventBus,
        speaker: AudioOutput,
        executor: Executor,
        *,
        volume: int = 70,
        prebuffer_frames: int = 3,
        stall_timeout: float = 3.0,
        state: State = State.IDLE,
    ) -> None:
        self.bus = bus
        self.speaker = speaker
        self.executor = executor
        self.volume = volume
        self.prebuffer_frames = prebuffer_frames
        self.stall_timeout = stall_timeout
        self.state = state
        self.stats = PlayerStats()
        self._responses: collections.OrderedDict[str, _Response] = collections.OrderedDict()
        self._dead: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._generation = 0
        self._changed = asyncio.Event()

    # --- events (loop thread, cheap) -------------------------------------------------------

    def on_audio(self, event: ReplyAudio) -> None:
        """Queue one frame of a response, unless the response is dead or may not play now."""
        resp = self._accept(event.response_id)
        if resp is None or resp.ended:
            self.stats.frames_dropped += 1
            return
        pcm = event.pcm
        if len(pcm) % 2:
            log.warning(
                "reply audio %s: dropped a frame of odd length %d", event.response_id, len(pcm)
            )
            return
        resp.frames.append(pcm)
        resp.last_activity = time.monotonic()
        self._changed.set()

    def on_end(self, event: ReplyAudioEnd) -> None:
        """Mark a response complete: it finishes when its last frame has played."""
        resp = self._accept(event.response_id)
        if resp is not None:
            resp.ended = True
            self._changed.set()

    def _accept(self, rid: str) -> _Response | None:
        if rid in self._dead:
            return None
        resp = self._responses.get(rid)
        if resp is None:
            if self.state in SILENT_STATES:
                log.info("reply %s arrived while %s: dropped", rid, self.state.value)
                self._kill(rid)
                return None
            resp = self._responses[rid] = _Response(rid)
        return resp

    def on_state(self, event: StateChanged) -> None:
        """Barge-in, cancel, sleep or mute: stop playback now and kill every known response."""
        if event.old == event.new:
            return
        self.state = event.new
        if event.new in (State.SPEAKING, State.THINKING):
            return
        # Our own PlaybackFinished moves SPEAKING -> IDLE; the next queued response may play.
        if event.new is State.IDLE and event.cause == PlaybackFinished.__name__:
            return
        if event.new in SILENT_STATES or self._responses:
            self.interrupt(f"{event.old.value} -> {event.new.value} ({event.cause})")

    def interrupt(self, why: str = "") -> None:
        """Stop output within one frame and drop every response known so far."""
        self._generation += 1
        self.speaker.interrupt(self._generation)
        self.stats.interrupts += 1
        self.stats.last_interrupt_at = time.monotonic()
        for rid, resp in self._responses.items():
            self._kill(rid)
            self.stats.frames_dropped += len(resp.frames)
            if resp.started:
                log.info("playback of %s interrupted: %s", rid, why)
                self.bus.publish(PlaybackFinished(response_id=rid, interrupted=True))
        self._responses.clear()
        self._changed.set()
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.speaker.discard)
        future.add_done_callback(_log_error)

    def _kill(self, rid: str) -> None:
        self._dead[rid] = None
        self._dead.move_to_end(rid)
        while len(self._dead) > DEAD_MEMORY:
            self._dead.popitem(last=False)

    # --- the playback loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Hand frames to the speaker thread, one at a time, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            resp = next(iter(self._responses.values()), None)
            if resp is None:
                await self._wait(None)
                continue
            if not resp.ended and time.monotonic() - resp.last_activity >= self.stall_timeout:
                log.warning(
                    "reply %s: no audio for %.1f s and no end marker; finishing it",
                    resp.rid,
                    self.stall_timeout,
                )
                resp.ended = True
            if not resp.frames and resp.ended:
                self._finish(resp)
                continue
            if not resp.frames and resp.started and not resp.buffering:
                resp.buffering = True  # underrun: refill the jitter buffer before going on
                self.stats.underruns += 1
                log.debug("reply %s: underrun", resp.rid)
            if resp.buffering and len(resp.frames) < self.prebuffer_frames and not resp.ended:
                await self._wait(self.stall_timeout - (time.monotonic() - resp.last_activity))
                continue
            resp.buffering = False
            pcm = apply_volume(resp.frames.popleft(), self.volume)
            if not resp.started:
                resp.started = True
                log.info("playing reply %s", resp.rid)
                self.bus.publish(PlaybackStarted(response_id=resp.rid))
            if await loop.run_in_executor(self.executor, self.speaker.write, pcm, self._generation):
                self.stats.frames_played += 1

    def _finish(self, resp: _Response) -> None:
        del self._responses[resp.rid]
        self._kill(resp.rid)
        log.info("reply %s finished", resp.rid)
        # an empty response still ends the turn (THINKING -> IDLE)
        self.bus.publish(PlaybackFinished(response_id=resp.rid, interrupted=False))

    async def _wait(self, timeout: float | None) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(
                self._changed.wait(), timeout if timeout is None else max(timeout, 0.001)
            )
        except TimeoutError:
            pass


def _log_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("speaker: %s", future.exception())
