"""The toy's end of the downlink (the cloud gateway's ``Downlink`` is the other end):
what the cloud sends, turned into bus events, with response-id bookkeeping.

A response becomes *live* only when its ``tts start`` names the turn the toy is waiting
for (or, for ``say``, when the toy is not waiting for anything); only the live
response's frames become ``ReplyAudio``. Abort, barge-in, a reply timeout or a lost link
kill the turn. Whether reply audio may play in the toy's current state is decided in
one place only: the audio player (``plugins/audio/player.py``).
"""

from __future__ import annotations

import asyncio
import collections
import logging

from toyd import App
from toyd import events as ev
from toyd.audio.opus import OpusDecoder, OpusError
from toyd.errors import ProtocolError
from toyd.protocol import (
    Abort,
    Alert,
    Error,
    Listen,
    Llm,
    Ping,
    Pong,
    Stt,
    Tts,
    codes,
    parse,
    unpack_audio,
)
from toyd.protocol.messages import Message

from .link import Link

log = logging.getLogger(__name__)

MAX_CACHED_AUDIO = 30 * 32000  # bytes: 30 s of reply audio
MAX_KNOWN_RESPONSES = 256  # response ids remembered for playback reports


class CacheableReply:
    """A reply the cloud marked cacheable, collected while it plays, for the device's response cache."""

    def __init__(self, response_id: int, cache_key: str, phrase: str) -> None:
        self.response_id, self.cache_key, self.phrase = response_id, cache_key, phrase
        self.pcm = bytearray()

    def add(self, pcm: bytes) -> None:
        if len(self.pcm) + len(pcm) <= MAX_CACHED_AUDIO:
            self.pcm += pcm

    def event(self, reply: str) -> ev.CacheStore:
        return ev.CacheStore(
            phrase=self.phrase, reply=reply, pcm=bytes(self.pcm), cache_key=self.cache_key
        )


class DownlinkReceiver:
    """Turn and response bookkeeping for one toy."""

    def __init__(self, app: App, link: Link, reply_timeout: float) -> None:
        self.app = app
        self.link = link
        self.reply_timeout = reply_timeout
        self.session_id = ""
        self.turn_id = ""  # the turn being listened to or answered
        self.turn_session = ""  # the session that turn was opened on
        self.waiting = False  # listen stop sent, no response started yet
        self.live: int | None = None  # response id whose frames are played
        self._decoder: OpusDecoder | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._offline_announced = False
        self.uplink_cut = False  # the cloud cut this utterance at its length limit: stop sending
        self.cacheable: CacheableReply | None = (
            None  # the live reply, when the cloud marked it cacheable
        )
        self._heard = ""  # the cloud's final transcript of the current turn
        self._said: list[str] = []  # the reply text of the current turn
        self.stale_frames = 0  # frames dropped here (not for the live response)
        self.frames = 0
        # ReplyAudio.response_id -> protocol response number, for this session's responses
        self._numbers: collections.OrderedDict[str, int] = collections.OrderedDict()

    # --- session ---------------------------------------------------------------------------

    def session_up(self, session_id: str) -> None:
        """A new session: response numbers start over."""
        self.session_id = session_id
        self._offline_announced = False
        self.live = None
        self._numbers.clear()

    def session_down(self, reason: str) -> None:
        """The link dropped: a turn in flight cannot be answered by the cloud any more."""
        if self.live is not None:
            self.app.bus.publish(ev.ReplyAudioEnd(response_id=self.key(self.live)))
            self.live = None
        if self.waiting:
            self.give_up("link_lost")
        # a turn still being listened to stays open: it is given up when the child stops talking

    def announce_offline(self) -> bool:
        """True once per outage: publish CloudOffline then."""
        first, self._offline_announced = not self._offline_announced, True
        return first

    def key(self, response: int) -> str:
        """The ``ReplyAudio.response_id`` of a protocol response number (unique across sessions)."""
        key = f"{self.session_id}:{response}"
        if key not in self._numbers:
            self._numbers[key] = response
            while len(self._numbers) > MAX_KNOWN_RESPONSES:
                self._numbers.popitem(last=False)
        return key

    def response_number(self, key: str) -> int | None:
        """The protocol response number of a ``ReplyAudio.response_id`` made in this session."""
        return self._numbers.get(key)

    # --- turns -----------------------------------------------------------------------------

    def begin_turn(self, turn_id: str) -> None:
        """LISTENING began: ``turn_id`` is the turn the toy will wait for."""
        self._cancel_timer()
        self.uplink_cut = False
        self.turn_id, self.waiting, self.live = turn_id, False, None
        self._heard, self._said, self.cacheable = (
            "",
            [],
            None,
        )  # nothing of an earlier turn is cached with this one
        self.turn_session = self.session_id if self.link.online else ""

    def turn_is_open(self) -> bool:
        """The current turn was opened on the session that is up now (so it can be answered)."""
        return bool(self.turn_id) and self.link.online and self.turn_session == self.session_id

    def await_reply(self) -> None:
        """``listen stop`` went out (or came in): the reply must start within ``reply_timeout``."""
        self.waiting = True
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(
            self.reply_timeout, self._timed_out, self.turn_id
        )

    async def abort(self, reason: str, *, only_if_busy: bool = False) -> None:
        """Kill the current turn and response here, and tell the cloud."""
        busy = self.waiting or self.live is not None
        if only_if_busy and not busy:
            return
        response, turn = self.live, self.turn_id
        self._kill_turn()
        await self.link.send(Abort(reason=reason, turn_id=turn, response_id=response))

    def _kill_turn(self) -> None:
        # forgetting the turn is enough: only the awaited turn's tts start can make a response live
        self._cancel_timer()
        self.turn_id, self.waiting, self.live = "", False, None

    def _timed_out(self, turn_id: str) -> None:
        self._timer = None
        if self.waiting and self.turn_id == turn_id:
            log.warning(
                "no reply within %.1f s; giving the turn to a local backend", self.reply_timeout
            )
            self.give_up("reply_timeout")
            self.app.spawn(
                self.link.send(Abort(reason="reply_timeout", turn_id=turn_id)), "cloudlink:abort"
            )

    def give_up(self, reason: str) -> None:
        """The cloud will not answer this turn: hand it to a local backend (``ReplyTimeout``)."""
        turn = self.turn_id
        self._kill_turn()
        self.app.bus.publish(ev.ReplyTimeout(turn_id=turn, reason=reason))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Shutdown: no timer may fire afterwards."""
        self._cancel_timer()

    # --- frames from the cloud ------------------------------------------------------------------

    async def on_frame(self, frame: str | bytes) -> None:
        """Handle one frame; a bad one is logged and dropped, never fatal."""
        try:
            if isinstance(frame, bytes):
                self._on_audio(frame)
            else:
                await self._on_message(parse(frame, "down"))
        except ProtocolError as exc:
            log.warning("bad frame from the cloud dropped: %s: %s", exc.code, exc)

    def _on_audio(self, frame: bytes) -> None:
        packet = unpack_audio(frame)
        if packet.response_id != self.live or self._decoder is None:
            self.stale_frames += 1
            return
        try:
            pcm = self._decoder.decode(packet.payload)
        except OpusError as exc:
            log.warning("undecodable reply frame dropped: %s", exc)
            return
        self.frames += 1
        self.app.bus.publish(ev.ReplyAudio(response_id=self.key(packet.response_id), pcm=pcm))
        if self.cacheable is not None and self.cacheable.response_id == packet.response_id:
            self.cacheable.add(pcm)

    async def _on_message(self, msg: Message) -> None:
        bus = self.app.bus
        if isinstance(msg, Tts):
            self._on_tts(msg)
        elif isinstance(msg, Listen):
            self._on_listen(msg)
        elif isinstance(msg, Stt):
            if msg.turn_id and msg.turn_id == self.turn_id:
                bus.publish(
                    ev.Transcript(
                        text=msg.text, final=msg.final, source="cloud", turn_id=msg.turn_id
                    )
                )
                if msg.final:
                    self._heard = msg.text
        elif isinstance(msg, Llm):
            if (
                msg.turn_id == self.turn_id
                and msg.turn_id
                and (self.waiting or msg.response_id == self.live)
            ):
                bus.publish(ev.ResponseText(delta=msg.text, final=msg.final, turn_id=msg.turn_id))
                self._said.append(msg.text)
        elif isinstance(msg, Alert):
            bus.publish(
                ev.SafetyAlert(
                    category=msg.category,
                    severity=msg.severity,
                    excerpt=msg.message,
                    action=msg.action,
                )
            )
        elif isinstance(msg, Error):
            log.warning("cloud error %s: %s", msg.code, msg.message)
            if msg.code == codes.AUDIO_TOO_LONG:
                self.uplink_cut = True
        elif isinstance(msg, Ping):
            await self.link.send(Pong(id=msg.id))

    def _on_listen(self, msg: Listen) -> None:
        """``listen stop`` from the cloud: it cut the utterance (max_length) and answers what it heard."""
        if (
            msg.state != "stop"
            or not msg.turn_id
            or msg.turn_id != self.turn_id
            or self.waiting
            or self.live is not None
        ):
            return  # not the turn being listened to (or it already ended here): nothing to stop
        log.info(
            "the cloud ended listening for turn %s (%s)", msg.turn_id, msg.reason or "no reason"
        )
        self.uplink_cut = True
        # wait for the reply now: its stt/llm/tts start may arrive before the state machine has moved on
        self.await_reply()
        self.app.bus.publish(ev.SpeechEnded(reason=msg.reason or "max_length"))

    def _on_tts(self, msg: Tts) -> None:
        if msg.state == "start":
            mine = msg.kind != "say" and self.waiting and msg.turn_id == self.turn_id
            announce = (
                msg.kind == "say" and not self.waiting and self.live is None and not self.turn_id
            )
            if mine or announce:
                self._cancel_timer()
                self.waiting = False
                self.live = msg.response_id
                self._decoder = OpusDecoder()
                # a cache key on a reply's start: the cloud says this answer may be reused for this question
                if mine and msg.kind == "reply" and msg.cache_key and self._heard:
                    self.cacheable = CacheableReply(msg.response_id, msg.cache_key, self._heard)
            else:
                log.info(
                    "response %d of turn %r ignored (no longer wanted)",
                    msg.response_id,
                    msg.turn_id,
                )
        elif msg.state == "stop":
            if msg.response_id == self.live:
                self.live = None
                self.app.bus.publish(ev.ReplyAudioEnd(response_id=self.key(msg.response_id)))
                keep, self.cacheable = self.cacheable, None
                # kept only when the stop confirms the key: the whole reply passed the cloud's safety filter
                if (
                    keep is not None
                    and keep.response_id == msg.response_id
                    and msg.reason in (None, "done")
                    and msg.cache_key == keep.cache_key
                ):
                    self.app.bus.publish(keep.event("".join(self._said).strip()))
                if msg.latency:
                    self._publish_latency(msg)
                if msg.kind == "say" or msg.turn_id.startswith("say-"):
                    return
                self.turn_id = ""
            elif self.waiting and msg.turn_id == self.turn_id:
                # ended before any audio: nothing to say (no speech) or the chain failed
                if msg.reason == "error":
                    self.give_up("backend")
                else:
                    turn = self.turn_id
                    self._kill_turn()
                    self.app.bus.publish(ev.TurnFailed(reason=msg.reason or "empty reply"))
                    log.info("turn %s ended without a reply (%s)", turn, msg.reason)

    def _publish_latency(self, msg: Tts) -> None:
        fields = ev.TurnLatency.__dataclass_fields__
        values = {
            k: float(v)
            for k, v in (msg.latency or {}).items()
            if k in fields and isinstance(v, (int, float))
        }
        self.app.bus.publish(
            ev.TurnLatency(
                device_id=self.app.device_id,
                turn_id=msg.turn_id,
                response_id=msg.response_id,
                **values,
            )
        )
