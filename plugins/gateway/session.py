"""One toy's session: handshake, the session state machine, the frames it sends.

States: HELLO (waiting for the device's hello) → IDLE ⇄ LISTENING → RESPONDING → IDLE.
A bad frame gets an ``error`` message and changes nothing; the connection only closes
after too many errors (1008), a hello timeout (1008) or a newer connection of the same
toy (4000). Which audio frames are heard is :mod:`.uplink`'s call, what the toy says is
collected by :mod:`.hearing`; answers run as one task per response (:mod:`.responses`),
cancelled on abort, barge-in (``listen start`` while responding), replacement and
disconnect. A xiaozhi client's own ways live in
:mod:`.xiaozhi` (its messages) and :mod:`.xiaozhi_peer` (its mode, tools and ``detect``).
"""

from __future__ import annotations

import enum
import logging
import time
import uuid

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from toyd.errors import ProtocolError
from toyd.protocol import (
    Abort,
    Error,
    Hello,
    Listen,
    Ping,
    Playback,
    Pong,
    Say,
    ServerHello,
    Stt,
    Tts,
    codes,
    encode,
    limits,
    parse,
)
from toyd.protocol.limits import MAX_TEXT_CHARS
from toyd.protocol.messages import Message
from toyd.turn import Turn

from .alerts import Alerts
from .context import SessionContext
from .handshake import SUPPORTED_AUDIO, read_hello
from .hearing import Hearing
from .meters import TokenBucket
from .responses import Responses, Work
from .uplink import Uplink
from .xiaozhi import Dialect, Mcp
from .xiaozhi_peer import XiaozhiPeer

log = logging.getLogger(__name__)


class Phase(str, enum.Enum):
    """Where a session is."""

    HELLO = "hello"
    IDLE = "idle"
    LISTENING = "listening"
    RESPONDING = "responding"
    CLOSED = "closed"


class Session:
    """Serves one connection of one toy."""

    def __init__(self, context: SessionContext, conn: ServerConnection, device_id: str) -> None:
        self.context = context
        self.conn = conn
        self.device_id = device_id
        self.session_id = uuid.uuid4().hex[:12]
        self.phase = Phase.HELLO
        self.persona: str | None = None
        self.language: str | None = None
        self.mode = "auto"  # how the current turn was opened (push_to_talk, wake_word, auto)
        self.errors = 0
        self.uplink = Uplink()
        self._messages = TokenBucket(limits.MESSAGES_PER_SECOND, limits.MESSAGES_BURST)
        self.hearing = Hearing(context, device_id, self.send)
        self.alerts = Alerts(context, self.send)
        self.responses = Responses(
            context, device_id, self.send, on_alert=self.alerts, on_finished=self._response_finished
        )
        self._turn_id = ""
        self._last_rate_error = 0.0
        self.xiaozhi: XiaozhiPeer | None = None  # set for a xiaozhi client
        self._listen_after: str = ""  # xiaozhi: listen mode to open once the running greeting ends

    @property
    def dialect(self) -> Dialect | None:
        """A xiaozhi client's dialect (None for a toyd toy)."""
        return self.xiaozhi.dialect if self.xiaozhi is not None else None

    @property
    def xiaozhi_mode(self) -> str:
        """A xiaozhi client's listen mode: manual | auto | realtime ("" before its first listen)."""
        return self.xiaozhi.mode if self.xiaozhi is not None else ""

    # --- connection lifecycle ------------------------------------------------------------

    async def run(self) -> None:
        """Handshake, then serve frames until the connection closes."""
        try:
            if await self._handshake():
                async for frame in self.conn:
                    await self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self.phase = Phase.CLOSED
            if self.xiaozhi is not None:
                self.xiaozhi.close()
            await self.hearing.drop()
            await self.responses.close()

    async def _handshake(self) -> bool:
        settings = self.context.settings
        hello = await read_hello(self.conn, self.device_id, settings.hello_timeout, self._error)
        if hello is None:
            return False
        self.phase = Phase.IDLE
        if isinstance(hello, Dialect):  # a xiaozhi client: its dialect, the format it asked for
            self.xiaozhi = XiaozhiPeer(hello, self.device_id, self.session_id, self.send)
            self.alerts.relay = True  # its parents hear of alerts from the cloud, not from it
            await self.send(hello.server_hello(self.session_id))
            log.info(
                "%s: xiaozhi session %s (opus %d Hz, %d ms%s)",
                self.device_id,
                self.session_id,
                hello.sample_rate,
                hello.frame_ms,
                ", mcp" if hello.mcp else "",
            )
            await self.xiaozhi.start()
            return True
        self.persona, self.language = hello.persona, hello.language
        await self.send(
            ServerHello(
                session_id=self.session_id,
                config_version=self.context.config_version(self.device_id),
                audio_params=SUPPORTED_AUDIO,
                features={"say": True, "barge_in": True},
                limits={**limits.as_dict(), "max_listen_seconds": settings.max_listen_seconds},
            )
        )
        log.info(
            "%s: session %s (firmware %s)", self.device_id, self.session_id, hello.firmware or "?"
        )
        return True

    async def replace(self) -> None:
        """A newer connection of the same toy took over: end this one.

        Runs as its own task: an old peer that vanished (the usual reason for a
        reconnect) takes ``close_timeout`` to close, and the new session must not wait.
        """
        await self.cancel_response()
        await self.conn.close(codes.CLOSE_REPLACED, "replaced by a newer connection")

    async def revoke(self) -> None:
        """The toy's token was revoked: end the session now."""
        await self.cancel_response()
        await self.conn.close(codes.CLOSE_REVOKED, "token revoked")

    async def send(self, msg: Message | str | bytes) -> None:
        """Send a message or a raw frame; a closed connection is not an error here."""
        dialect = self.dialect
        if dialect is not None and not isinstance(msg, (str, bytes)):
            for text in dialect.translate(msg, self.session_id):
                await self.send(text)
            return
        try:
            await self.conn.send(msg if isinstance(msg, (str, bytes)) else encode(msg))
        except ConnectionClosed:
            pass

    async def _error(self, exc: ProtocolError, ref: str | None = None) -> bool:
        """Report a bad frame; False when the connection was closed for too many errors."""
        self.errors += 1
        log.info("%s: %s: %s", self.device_id, exc.code, exc)
        await self.send(Error(code=exc.code, message=str(exc)[:300], ref=ref))
        if self.errors >= limits.MAX_ERRORS:
            log.warning("%s: %d protocol errors; closing", self.device_id, self.errors)
            await self.conn.close(codes.CLOSE_POLICY, "too many protocol errors")
            return False
        return True

    # --- frames ---------------------------------------------------------------------------

    async def _on_frame(self, frame: str | bytes) -> None:
        started = time.perf_counter()
        try:
            await self._handle_frame(frame)
        finally:
            self.context.frame_timer.add(time.perf_counter() - started)

    async def _handle_frame(self, frame: str | bytes) -> None:
        ref: str | None = "audio" if isinstance(frame, bytes) else None  # what the error is about
        try:
            if isinstance(frame, bytes):
                await self._on_audio(frame)
                return
            if not self._messages.take():
                raise ProtocolError(
                    codes.RATE_LIMITED, "too many messages per second; message dropped"
                )
            dialect = self.dialect
            msg = parse(frame, "up") if dialect is None else dialect.parse(frame)
            if isinstance(msg, Mcp):
                if self.xiaozhi is not None and self.xiaozhi.mcp is not None:
                    await self.xiaozhi.mcp.on_payload(msg.payload)
                return
            if msg is None:
                return
            ref = msg.type
            await self._on_message(msg)
        except ProtocolError as exc:
            if exc.code == codes.RATE_LIMITED:
                # one error per second at most, or the errors themselves become the flood
                now = time.monotonic()
                if now - self._last_rate_error < 1.0:
                    return
                self._last_rate_error = now
            await self._error(exc, ref)

    async def _on_audio(self, frame: bytes) -> None:
        if not self.uplink.admit(frame, self.phase.value, self.xiaozhi):
            return
        ended = await self.hearing.hear(frame)
        if ended == "max_length":
            await self._cut_utterance()
        elif ended == "end_of_speech":
            log.info(
                "%s: end of speech heard by the gateway (%s)", self.device_id, self.xiaozhi_mode
            )
            self._end_listening()

    async def _cut_utterance(self) -> None:
        """The utterance reached ``max_listen_seconds``: tell the toy to stop listening, answer what we have."""
        seconds = self.context.settings.max_listen_seconds
        log.info("%s: utterance of turn %s cut at %g s", self.device_id, self._turn_id, seconds)
        self.uplink.cut(self._turn_id)
        # listen stop ends the toy's turn; the error is for toys that predate it (not counted against the toy)
        await self.send(Listen(state="stop", turn_id=self._turn_id, reason="max_length"))
        await self.send(
            Error(
                code=codes.AUDIO_TOO_LONG,
                message=f"utterance cut at {seconds:g} s and answered",
                ref="audio",
            )
        )
        self._end_listening()

    async def _on_message(self, msg: Message) -> None:
        if isinstance(msg, Listen):
            await self._on_listen(msg)
        elif isinstance(msg, Abort):
            log.info("%s: abort (%s)", self.device_id, msg.reason)
            self._listen_after = ""
            await self.cancel_response(reason="aborted")
            if self.phase is Phase.LISTENING:
                await self.hearing.drop()
                self.phase = Phase.IDLE
        elif isinstance(msg, Playback):
            log.debug(
                "%s: playback of %d done (interrupted=%s)",
                self.device_id,
                msg.response_id,
                msg.interrupted,
            )
        elif isinstance(msg, Say):
            if self.phase is not Phase.IDLE:
                raise ProtocolError(
                    codes.BUSY, f"cannot say while {self.phase.value}; retry when idle"
                )
            self._respond(
                lambda p: p.run_say(msg.text),
                turn_id=f"say-{msg.request_id or uuid.uuid4().hex[:8]}",
            )
        elif isinstance(msg, Ping):
            await self.send(Pong(id=msg.id))
        elif isinstance(msg, Hello):
            raise ProtocolError(codes.BAD_MESSAGE, "hello was already exchanged")

    async def _on_listen(self, msg: Listen) -> None:
        if msg.persona is not None:
            self.persona = msg.persona
        if msg.language is not None:
            self.language = msg.language
        if msg.state == "start":
            if self.xiaozhi is not None:  # xiaozhi's mode rides in ``reason`` (Dialect.parse)
                self.xiaozhi.mode = msg.reason or "manual"
                if self._listen_after and self.phase is Phase.RESPONDING:
                    # the firmware opens listening right after its detect: the greeting plays first
                    self._listen_after = self.xiaozhi.mode
                    return
            if self.phase is Phase.RESPONDING:
                await self.cancel_response(reason="aborted")  # barge-in without an explicit abort
            self._turn_id = msg.turn_id or uuid.uuid4().hex[:12]
            self.mode = msg.mode
            self._start_listening()
            await self.hearing.open_speech(self._turn())
        elif msg.state == "stop":
            if self.phase is Phase.LISTENING:
                self._end_listening()
            else:
                self.uplink.toy_stopped(msg.turn_id)
        elif self.xiaozhi is not None:
            await self._on_detect(msg.text)
        else:
            log.info("%s: wake word %r", self.device_id, msg.text)

    async def _on_detect(self, text: str | None) -> None:
        """A xiaozhi ``detect``: a wake word alone is greeted, other text answered as the child's words."""
        settings = self.context.settings
        words = XiaozhiPeer.words_of_detect(text, settings.wake_words, settings.wake_greeting)
        log.info("%s: detect %r → %s", self.device_id, (text or "")[:60], repr(words)[:60])
        self._listen_after = ""
        await self.cancel_response(reason="aborted")  # like a barge-in: the new words win
        if self.phase is Phase.LISTENING:
            await self.hearing.drop()
            self.phase = Phase.IDLE
        self._turn_id = uuid.uuid4().hex[:12]
        if words is None:  # nothing to answer (no greeting configured): the client goes idle
            if text and text.strip():
                await self.send(Stt(text=text.strip()[:MAX_TEXT_CHARS], final=True))
                await self.send(Tts(state="stop", response_id=0, turn_id=self._turn_id))
            return
        self._listen_after = "-"  # a listen start during this answer waits for its end
        self._respond(lambda p: p.run_text(words), turn_id=self._turn_id)

    def _start_listening(self) -> None:
        self.uplink.listening()
        self.hearing.start(self._turn_id, endpoint=self.xiaozhi_mode in ("auto", "realtime"))
        self.phase = Phase.LISTENING

    def _end_listening(self) -> None:
        pcm, speech = self.hearing.take()
        eos = time.monotonic()
        self._respond(lambda p: p.run_turn(pcm, speech), turn_id=self._turn_id, end_of_speech=eos)

    # --- responses ------------------------------------------------------------------------

    def _turn(self, turn_id: str | None = None) -> Turn:
        return Turn(
            device_id=self.device_id,
            session_id=self.session_id,
            turn_id=self._turn_id if turn_id is None else turn_id,
            language=self.language,
            persona=self.persona,
        )

    def _respond(self, work: Work, *, turn_id: str, end_of_speech: float | None = None) -> None:
        self.phase = Phase.RESPONDING
        self.responses.start(work, self._turn(turn_id), self.dialect, end_of_speech)

    def _response_finished(self) -> None:
        """A response ended by itself: idle, or listening again for a realtime client."""
        if self.phase is not Phase.RESPONDING:
            return
        self.phase = Phase.IDLE
        listen_after, self._listen_after = self._listen_after, ""
        if self.xiaozhi_mode == "realtime" or listen_after not in ("", "-"):
            self._turn_id = uuid.uuid4().hex[:12]  # the client streams on (realtime) or asked to
            self._start_listening()

    async def cancel_response(self, reason: str | None = None) -> None:
        """Stop the running response at once (its hooks' iterators are closed)."""
        if not self.responses.running:
            self.responses.task = None
            return
        if self.phase is Phase.RESPONDING:
            self.phase = Phase.IDLE
        await self.responses.cancel(reason, self._turn_id)
