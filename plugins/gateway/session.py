"""One toy's session: handshake, the session state machine, uplink audio, responses.

States: HELLO (waiting for the device's hello) → IDLE ⇄ LISTENING → RESPONDING → IDLE.
A bad frame gets an ``error`` message and changes nothing; the connection only closes
after too many errors (1008), a hello timeout (1008) or a newer connection of the same
toy (4000). Work for a response runs in one task per response, cancelled on abort,
barge-in (``listen start`` while responding), replacement and disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from toyd.audio import SAMPLE_RATE
from toyd.audio.opus import OpusDecoder, OpusError
from toyd.errors import BackendError, ProtocolError
from toyd.events import SafetyAlert, TurnLatency
from toyd.protocol import (
    Abort,
    Alert,
    AudioParams,
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
    check_uplink,
    codes,
    encode,
    limits,
    parse,
)
from toyd.protocol.limits import MAX_TEXT_CHARS
from toyd.protocol.messages import Message
from toyd.turn import SafetyVerdict, Turn

from .context import SessionContext
from .downlink import Downlink
from .endpoint import Endpointer
from .meters import TokenBucket
from .pipeline import Pipeline
from .xiaozhi import Dialect, is_xiaozhi_hello

log = logging.getLogger(__name__)
SUPPORTED_AUDIO = AudioParams()
CANCEL_GRACE = 2.0  # seconds a cancelled response may take to unwind before the session moves on


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
        self.frames_in = 0
        self._audio = TokenBucket(limits.UPLINK_FPS, limits.UPLINK_BURST)
        self._messages = TokenBucket(limits.MESSAGES_PER_SECOND, limits.MESSAGES_BURST)
        self._pcm = bytearray()
        self._speech: Any = None  # toyd_transcribe_stream's answer for the utterance being heard
        self._stable = ""  # its words already sent to the toy as an interim stt
        self._decoder: OpusDecoder | None = None
        self._turn_id = ""
        self._next_response = 1
        self._task: asyncio.Task[None] | None = None
        self._response_id = 0
        self._last_rate_error = 0.0
        self._cut_turn = ""  # the turn whose utterance was cut at max_listen_seconds
        self._cut_until = (
            0.0  # until then, audio of the cut turn still in flight is dropped silently
        )
        self.frames_after_cut = 0  # such frames (counted, not errors)
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled responses still unwinding
        self.dialect: Dialect | None = None  # set for a xiaozhi client (plugins/gateway/xiaozhi.py)
        self.xiaozhi_mode = ""  # its listen mode: manual | auto | realtime
        self._endpoint: Endpointer | None = None  # server end of speech (xiaozhi auto, realtime)
        self._downlink: Downlink | None = None  # the running response's
        self.frames_ignored = 0  # xiaozhi audio outside listening: dropped quietly

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
            await self._drop_speech()
            await self.cancel_response()
            if self._stopping:
                await asyncio.wait(self._stopping, timeout=CANCEL_GRACE)

    async def _handshake(self) -> bool:
        settings = self.context.settings
        deadline = time.monotonic() + settings.hello_timeout
        while True:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    frame = await self.conn.recv()
            except TimeoutError:
                log.info(
                    "%s: no hello within %g s; closing", self.device_id, settings.hello_timeout
                )
                await self.conn.close(codes.CLOSE_POLICY, "hello timeout")
                return False
            try:
                if isinstance(frame, bytes):
                    raise ProtocolError(codes.NOT_READY, "send hello before audio")
                if is_xiaozhi_hello(frame):
                    return await self._xiaozhi_hello(frame)
                msg = parse(frame, "up")
                if not isinstance(msg, Hello):
                    raise ProtocolError(codes.NOT_READY, f"send hello before {msg.type}")
                if msg.version != limits.PROTOCOL_VERSION:
                    raise ProtocolError(
                        codes.UNSUPPORTED_VERSION,
                        f"this server speaks protocol {limits.PROTOCOL_VERSION}",
                    )
                if msg.audio_params != SUPPORTED_AUDIO:
                    raise ProtocolError(
                        codes.UNSUPPORTED_AUDIO,
                        "audio_params must be opus, 16000 Hz, 1 channel, 20 ms",
                    )
            except ProtocolError as exc:
                if not await self._error(exc):
                    return False
                continue
            self.persona, self.language = msg.persona, msg.language
            self.phase = Phase.IDLE
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
                "%s: session %s (firmware %s)", self.device_id, self.session_id, msg.firmware or "?"
            )
            return True

    async def _xiaozhi_hello(self, frame: str) -> bool:
        """A xiaozhi client: answer in its dialect with the audio format it asked for."""
        try:
            self.dialect = Dialect.from_hello(frame)
        except ProtocolError as exc:
            log.info("%s: xiaozhi hello refused: %s", self.device_id, exc)
            await self.send(Error(code=exc.code, message=str(exc)[:300], ref="hello"))
            await self.conn.close(codes.CLOSE_POLICY, exc.code)
            return False
        self.phase = Phase.IDLE
        await self.send(self.dialect.server_hello(self.session_id))
        log.info(
            "%s: xiaozhi session %s (opus %d Hz, %d ms)",
            self.device_id,
            self.session_id,
            self.dialect.sample_rate,
            self.dialect.frame_ms,
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
        if self.dialect is not None and not isinstance(msg, (str, bytes)):
            for text in self.dialect.translate(msg, self.session_id):
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
            msg = parse(frame, "up") if self.dialect is None else self.dialect.parse(frame)
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
        if (
            self.phase is not Phase.LISTENING
            and self._cut_turn
            and time.monotonic() < self._cut_until
        ):
            self.frames_after_cut += (
                1  # sent before the toy heard our listen stop: expected, not an error
            )
            return
        if self.phase is not Phase.LISTENING and self.dialect is not None:
            self.frames_ignored += 1  # a xiaozhi client streams on while the toy speaks (realtime)
            return
        if self.phase is not Phase.LISTENING:
            raise ProtocolError(
                codes.UNEXPECTED_AUDIO,
                f"binary frame while {self.phase.value}; send listen start first",
            )
        check_uplink(frame)
        if not self._audio.take():
            raise ProtocolError(
                codes.RATE_LIMITED,
                f"more than {limits.UPLINK_FPS} audio frames per second; frame dropped",
            )
        assert self._decoder is not None
        try:
            # decoding 20 ms takes tens of microseconds: inline beats a thread hop
            pcm = self._decoder.decode(frame)
        except OpusError as exc:
            raise ProtocolError(codes.BAD_AUDIO, str(exc)) from None
        self._pcm += pcm
        self.frames_in += 1
        if self._speech is not None:
            await self._feed_speech(pcm)
        if len(self._pcm) >= self.context.max_listen_bytes:
            await self._cut_utterance()
        elif self._endpoint is not None and self._endpoint.feed(pcm):
            log.info(
                "%s: end of speech heard by the gateway (%s)", self.device_id, self.xiaozhi_mode
            )
            self._end_listening()

    async def _open_speech(self) -> None:
        """Ask for a transcription to feed while the child talks (none: the whole utterance at the end)."""
        await self._drop_speech()
        turn = Turn(
            device_id=self.device_id,
            session_id=self.session_id,
            turn_id=self._turn_id,
            language=self.language,
            persona=self.persona,
        )
        try:
            self._speech = await self.context.call_first(
                "toyd_transcribe_stream", turn=turn, sample_rate=SAMPLE_RATE
            )
        except Exception as exc:  # noqa: BLE001 - a faulty plugin costs the head start, not the turn
            log.error(
                "%s: toyd_transcribe_stream failed: %s; transcribing at the end instead",
                self.device_id,
                exc,
            )
            self._speech = None
        self._stable = ""

    async def _feed_speech(self, pcm: bytes) -> None:
        """Feed the utterance; words that will not change any more go to the toy as an interim stt."""
        try:
            self._speech.feed(pcm)
            stable = str(getattr(self._speech, "stable", "") or "")
        except Exception as exc:  # noqa: BLE001
            log.error(
                "%s: streaming transcription failed: %s; transcribing at the end instead",
                self.device_id,
                exc,
            )
            await self._drop_speech()
            return
        if len(stable) > len(self._stable):
            self._stable = stable
            await self.send(Stt(text=stable[:MAX_TEXT_CHARS], final=False, turn_id=self._turn_id))

    async def _drop_speech(self) -> None:
        speech, self._speech = self._speech, None
        if speech is not None:
            with contextlib.suppress(Exception):
                await speech.aclose()

    async def _cut_utterance(self) -> None:
        """The utterance reached ``max_listen_seconds``: tell the toy to stop listening, answer what we have."""
        seconds = self.context.settings.max_listen_seconds
        log.info("%s: utterance of turn %s cut at %g s", self.device_id, self._turn_id, seconds)
        self._cut_turn, self._cut_until = self._turn_id, time.monotonic() + limits.CUT_GRACE
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
            await self.cancel_response(reason="aborted")
            if self.phase is Phase.LISTENING:
                self._pcm.clear()
                await self._drop_speech()
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
            if self.phase is Phase.RESPONDING:
                await self.cancel_response(reason="aborted")  # barge-in without an explicit abort
            self._turn_id = msg.turn_id or uuid.uuid4().hex[:12]
            self.mode = msg.mode
            if self.dialect is not None:  # xiaozhi's mode rides in ``reason`` (Dialect.parse)
                self.xiaozhi_mode = msg.reason or "manual"
            self._start_listening()
            await self._open_speech()
        elif msg.state == "stop":
            if self.phase is Phase.LISTENING:
                self._end_listening()
            elif self._cut_turn and msg.turn_id in ("", self._cut_turn):
                self._cut_until = 0.0  # the toy's own stop: nothing of the cut turn can follow it
        else:
            log.info("%s: wake word %r", self.device_id, msg.text)

    def _start_listening(self) -> None:
        self._cut_turn, self._cut_until = "", 0.0
        self._pcm.clear()
        self._decoder = OpusDecoder()
        self._endpoint = Endpointer() if self.xiaozhi_mode in ("auto", "realtime") else None
        self.phase = Phase.LISTENING

    def _end_listening(self) -> None:
        self._endpoint = None
        pcm, self._pcm = bytes(self._pcm), bytearray()
        speech, self._speech = self._speech, None
        eos = time.monotonic()
        self._respond(lambda p: p.run_turn(pcm, speech), turn_id=self._turn_id, end_of_speech=eos)

    # --- responses ------------------------------------------------------------------------

    def _respond(self, work, *, turn_id: str, end_of_speech: float | None = None) -> None:  # type: ignore[no-untyped-def]
        response_id = self._next_response
        self._next_response += 1
        turn = Turn(
            device_id=self.device_id,
            session_id=self.session_id,
            turn_id=turn_id,
            language=self.language,
            persona=self.persona,
        )
        lead = self.context.settings.downlink_lead_ms / 1000
        if self.dialect is not None:
            downlink = Downlink(
                self.send,
                response_id,
                turn_id,
                lead=lead,
                raw=True,
                sample_rate=self.dialect.sample_rate,
                frame_ms=self.dialect.frame_ms,
            )
        else:
            downlink = Downlink(self.send, response_id, turn_id, lead=lead)
        pipeline = Pipeline(
            self.context, turn, downlink, on_alert=self._alert, end_of_speech=end_of_speech
        )
        self.phase = Phase.RESPONDING
        self._response_id = response_id
        self._downlink = downlink
        self._task = asyncio.create_task(
            self._run_response(pipeline, work), name=f"gateway:{self.device_id}:{response_id}"
        )

    async def _run_response(self, pipeline: Pipeline, work) -> None:  # type: ignore[no-untyped-def]
        downlink = pipeline.downlink
        try:
            await work(pipeline)
            self._publish_latency(pipeline)
        except Exception as exc:  # noqa: BLE001 - one failed turn must not take the session down
            if not isinstance(exc, BackendError):
                log.debug("%s: turn traceback", self.device_id, exc_info=exc)
                exc = BackendError(f"{type(exc).__name__}: {exc}")
            log.error("%s: turn %s failed: %s", self.device_id, pipeline.turn.turn_id, exc)
            await self.send(Error(code=codes.BACKEND, message=str(exc)[:300], ref="listen"))
            await downlink.stop("error", pipeline.latency())
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                if self.phase is Phase.RESPONDING:
                    self.phase = Phase.IDLE
                    if self.xiaozhi_mode == "realtime":  # the client streams on: listen on
                        self._turn_id = uuid.uuid4().hex[:12]
                        self._start_listening()

    async def cancel_response(self, reason: str | None = None) -> None:
        """Stop the running response at once (its hooks' iterators are closed)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if self._downlink is not None:  # raw xiaozhi audio has no response id
            self._downlink.cancelled = True
        # From here on the response sends nothing: its next step raises CancelledError, and
        # its cleanup only closes iterators. So the stop can go out before it has unwound.
        task.cancel()
        if self.phase is Phase.RESPONDING:
            self.phase = Phase.IDLE
        if reason:
            await self.send(
                Tts(
                    state="stop",
                    response_id=self._response_id,
                    turn_id=self._turn_id,
                    reason=reason,
                )
            )
        # hooks get CancelledError and aclose(); one that ignores it must not stall the session
        done, _ = await asyncio.wait([task], timeout=CANCEL_GRACE)
        if not done:
            log.warning(
                "%s: response %d is slow to stop (a hook ignores cancellation)",
                self.device_id,
                self._response_id,
            )
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def _alert(self, turn: Turn, verdict: SafetyVerdict, text: str) -> None:
        category, severity = verdict.category or "unsafe", verdict.severity
        excerpt = (verdict.text or "")[:200]
        await self.send(
            Alert(
                category=category,
                severity=severity,
                message=excerpt,
                action=verdict.action,
                turn_id=turn.turn_id,
            )
        )
        log.warning(
            "%s: safety alert %s/%s (%s) in turn %s",
            turn.device_id,
            category,
            severity,
            verdict.action,
            turn.turn_id,
        )
        # the toy's own copy (via ``alert``) is the one its parents get; this one is for the cloud's side
        self.context.publish(
            SafetyAlert(
                category=category,
                severity=severity,
                excerpt=excerpt,
                action=verdict.action,
                device_id=turn.device_id,
            )
        )

    def _publish_latency(self, pipeline: Pipeline) -> None:
        lat = pipeline.latency()
        self.context.publish(
            TurnLatency(
                device_id=self.device_id,
                turn_id=pipeline.turn.turn_id,
                response_id=pipeline.downlink.response_id,
                **{k: v for k, v in lat.items() if k in TurnLatency.__dataclass_fields__},
            )
        )
