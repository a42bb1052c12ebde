"""The ``xiaozhi`` plugin (device role): the toy as a xiaozhi client, in place of ``cloudlink``.

It publishes the same bus events as ``cloudlink`` (CloudOnline/Offline, Transcript,
ResponseText, ReplyAudio/End, ReplyTimeout, TurnFailed, SpeechEnded, TurnLatency), so
the LED, the offline fallback, the outbox and MQTT work unchanged. The protocol has no
turn or response ids: a reply is accepted only while the toy waits for one (after
``listen stop``, or after the server's own end of speech in auto/realtime mode), and
its audio only while it is the live reply. Downlink Opus (any rate, any frame length)
is decoded straight to the toy's 16 kHz by libopus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from toyd import App, PluginDeclaration, Service, State, hookimpl
from toyd import events as ev
from toyd.audio.opus import OpusDecoder, OpusEncoder, OpusError
from toyd.audio.pcm import FRAME_BYTES

from .link import Link
from .mcp import McpTools
from .settings import XiaozhiSettings
from .wire import XiaozhiProtocolError, parse_server

log = logging.getLogger(__name__)
PLAYABLE_IN = frozenset({State.THINKING, State.SPEAKING, State.IDLE})
LEAVES_QUIETLY = frozenset({State.SLEEPING, State.MUTED, State.ERROR, State.IDLE})
# xiaozhi emotions (the server's llm message) → an LED colour shown while the reply plays
EMOTION_RGB: dict[str, tuple[int, int, int]] = {
    "happy": (255, 200, 0),
    "laughing": (255, 200, 0),
    "funny": (255, 160, 0),
    "loving": (255, 60, 140),
    "kissy": (255, 60, 140),
    "sad": (40, 80, 255),
    "crying": (40, 80, 255),
    "angry": (255, 0, 0),
    "surprised": (200, 0, 255),
    "shocked": (200, 0, 255),
    "thinking": (0, 200, 200),
    "confused": (0, 200, 200),
    "sleepy": (60, 0, 120),
    "cool": (0, 120, 255),
    "neutral": (255, 255, 255),
}


class XiaozhiPlugin:
    """Bridges the bus and a xiaozhi server."""

    def __init__(self) -> None:
        self.settings = XiaozhiSettings()
        self.app: App | None = None
        self.link: Link | None = None
        self.mcp: McpTools | None = None
        self.volume = 100
        self.turn = 0  # number of the current turn (0: none)
        self.listening = False  # streaming the microphone up
        self.waiting = False  # the child stopped; no reply started yet
        self.live = ""  # response id whose audio is played
        self.responses = 0
        self.frames = self.bad_frames = self.stale_frames = 0
        self._encoder: OpusEncoder | None = None
        self._decoder: OpusDecoder | None = None
        self._pending = bytearray()  # microphone PCM not yet a whole uplink frame
        self._timer: asyncio.TimerHandle | None = None
        self._ended_at = 0.0  # monotonic end of speech of the turn being answered
        self._first_audio_ms = 0.0
        self._offline_announced = False

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=XiaozhiSettings,
            summary="Cloud backend: any xiaozhi WebSocket server",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: XiaozhiSettings) -> None:
        if not settings.token:
            log.info("xiaozhi: no token configured (fine for a server with auth off)")
        self.app, self.settings = app, settings
        self.link = Link(settings, app.device_id)
        self.mcp = McpTools(self._publish, self._status)
        self._events = app.bus.subscribe(
            "xiaozhi",
            (ev.StateChanged, ev.AudioFrame, ev.VolumeSet, ev.OfflineAnswered),
            maxsize=100,
        )

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("link", self._run_link), Service("events", self._run_events)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: XiaozhiSettings) -> bool:
        old = self.settings
        keep = ("url", "token", "mac", "client_id", "frame_duration")
        if any(getattr(old, k) != getattr(settings, k) for k in keep):
            return False  # a new server or identity: reconnect on restart
        self.settings = settings
        if self.link:
            self.link.settings = settings
        return True

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        self._cancel_timer()

    def _publish(self, event: ev.Event) -> None:
        if isinstance(event, ev.VolumeSet):
            self.volume = event.level  # a status asked right after must tell the new volume
        assert self.app
        self.app.bus.publish(event)

    def _status(self) -> dict[str, Any]:
        state = self.app.state if self.app else None
        return {
            "state": state.value if state else "unknown",
            "audio_speaker": {"volume": self.volume},
        }

    # --- link ---------------------------------------------------------------------------------

    async def _run_link(self) -> None:
        assert self.link and self.app
        app = self.app

        def up() -> None:
            self._offline_announced = False
            app.bus.publish(ev.CloudOnline(backend="xiaozhi"))

        def down(reason: str, quiet: bool) -> None:
            self.listening = False
            if self.live:
                self._end_live()
            if self.waiting:
                self._give_up("link_lost")
            if not quiet and not self._offline_announced:
                self._offline_announced = True
                app.bus.publish(ev.CloudOffline(backend="xiaozhi", reason=reason))

        await self.link.run(self.on_frame, up, down)

    async def on_frame(self, frame: str | bytes) -> None:
        """One frame from the server; a bad one is logged and dropped, never fatal."""
        if isinstance(frame, bytes):
            self._on_audio(frame)
            return
        try:
            msg = parse_server(frame)
        except XiaozhiProtocolError as exc:
            log.warning("xiaozhi: bad message from the server dropped: %s", exc)
            return
        handler = getattr(self, f"_on_{msg['type']}", None)
        if handler is None:
            log.debug("xiaozhi: %s message ignored", msg["type"])
            return
        await handler(msg)

    def _on_audio(self, packet: bytes) -> None:
        assert self.app
        if not self.live or self._decoder is None or self.app.state not in PLAYABLE_IN:
            self.stale_frames += 1
            return
        try:
            pcm = self._decoder.decode(packet)
        except OpusError as exc:
            self.bad_frames += 1
            log.warning("xiaozhi: undecodable audio frame dropped: %s", exc)
            return
        if not self.frames and self._ended_at:
            self._first_audio_ms = (time.monotonic() - self._ended_at) * 1000
        self.frames += 1
        for start in range(0, len(pcm), FRAME_BYTES):  # the speaker's 20 ms frames
            self.app.bus.publish(
                ev.ReplyAudio(response_id=self.live, pcm=pcm[start : start + FRAME_BYTES])
            )

    async def _on_stt(self, msg: dict[str, Any]) -> None:
        assert self.app
        if not self.turn or not (self.listening or self.waiting):
            return
        turn_id = self._turn_id()
        self.app.bus.publish(
            ev.Transcript(text=msg["text"], final=True, source="cloud", turn_id=turn_id)
        )
        if self.listening:  # auto/realtime: the server heard the end of speech first
            log.info("xiaozhi: the server ended listening (its VAD)")
            self.listening = False
            self._await_reply()
            self.app.bus.publish(ev.SpeechEnded(reason="server_vad"))

    async def _on_llm(self, msg: dict[str, Any]) -> None:
        assert self.app
        rgb = EMOTION_RGB.get(msg["emotion"])
        if rgb and (self.waiting or self.live):
            self.app.bus.publish(
                ev.LedLook(rgb=rgb, seconds=4.0, source=f"xiaozhi:{msg['emotion']}")
            )

    async def _on_tts(self, msg: dict[str, Any]) -> None:
        assert self.app
        state = msg["state"]
        if state == "start":
            if self.waiting:
                self._cancel_timer()
                self.waiting = False
                self.responses += 1
                self.live = f"xiaozhi:{self.link.session_id if self.link else ''}:{self.responses}"
                self._decoder = OpusDecoder()
                self.frames = 0
            else:
                log.info("xiaozhi: a reply the toy did not wait for is ignored")
        elif state == "sentence_start" and self.live and msg["text"]:
            self.app.bus.publish(ev.ResponseText(delta=msg["text"] + " ", turn_id=self._turn_id()))
        elif state == "stop":
            if self.live:
                self._end_live()
            elif self.waiting:  # ended before any audio: nothing to say
                self._cancel_timer()
                self.waiting = False
                self.app.bus.publish(ev.TurnFailed(reason="empty reply"))

    async def _on_mcp(self, msg: dict[str, Any]) -> None:
        assert self.mcp and self.link
        reply = self.mcp.handle(msg.get("payload"))
        if reply is not None:
            await self.link.send({"type": "mcp", "payload": reply})

    async def _on_alert(self, msg: dict[str, Any]) -> None:
        log.info("xiaozhi alert %s: %s", msg["status"], msg["message"])

    async def _on_system(self, msg: dict[str, Any]) -> None:
        log.warning(
            "xiaozhi: system command %r refused (only parents control the toy)", msg["command"]
        )

    # --- turns -----------------------------------------------------------------------------

    def _turn_id(self) -> str:
        return f"xiaozhi-{self.turn}"

    def _await_reply(self) -> None:
        assert self.app
        self.waiting = True
        self._ended_at = time.monotonic()
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(
            self.settings.reply_timeout, self._timed_out, self.turn
        )

    def _timed_out(self, turn: int) -> None:
        self._timer = None
        if self.waiting and self.turn == turn:
            log.warning(
                "xiaozhi: no reply within %.1f s; giving the turn to a local backend",
                self.settings.reply_timeout,
            )
            self._give_up("reply_timeout")
            assert self.app and self.link
            self.app.spawn(
                self.link.send({"type": "abort", "reason": "reply_timeout"}), "xiaozhi:abort"
            )

    def _give_up(self, reason: str) -> None:
        assert self.app
        self._cancel_timer()
        self.waiting = False
        self.app.bus.publish(ev.ReplyTimeout(turn_id=self._turn_id(), reason=reason))

    def _end_live(self) -> None:
        assert self.app
        live, self.live = self.live, ""
        self.app.bus.publish(ev.ResponseText(delta="", final=True, turn_id=self._turn_id()))
        self.app.bus.publish(ev.ReplyAudioEnd(response_id=live))
        if self._first_audio_ms:
            self.app.bus.publish(
                ev.TurnLatency(
                    device_id=self.app.device_id,
                    turn_id=self._turn_id(),
                    response_id=self.responses,
                    end_of_speech_to_first_audio_ms=self._first_audio_ms,
                )
            )
            self._first_audio_ms = 0.0

    async def abort(self, reason: str) -> None:
        """Stop the reply here and tell the server (barge-in, a local answer)."""
        busy = self.waiting or self.live
        self._cancel_timer()
        self.waiting, self.live = False, ""
        if busy and self.link:
            await self.link.send({"type": "abort", "reason": reason})

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- bus → server ---------------------------------------------------------------------------

    async def _run_events(self) -> None:
        async for event in self._events:
            if isinstance(event, ev.AudioFrame):
                await self._on_mic(event.pcm)
            elif isinstance(event, ev.StateChanged):
                await self._on_state(event)
            elif isinstance(event, ev.VolumeSet):
                self.volume = event.level
            elif isinstance(event, ev.OfflineAnswered):
                await self.abort("answered_locally")

    async def _on_mic(self, pcm: bytes) -> None:
        if not self.listening or self._encoder is None or self.link is None:
            return
        self._pending += pcm
        size = self._encoder.frame_bytes
        while len(self._pending) >= size:
            chunk, self._pending = bytes(self._pending[:size]), self._pending[size:]
            await self.link.send(self._encoder.encode(chunk))

    async def _on_state(self, change: ev.StateChanged) -> None:
        assert self.link
        old, new = change.old, change.new
        if old is new:
            return
        if new is State.LISTENING:
            if old in (State.THINKING, State.SPEAKING):
                await self.abort("wake_word_detected")  # the firmware's reason for a barge-in
            self.turn += 1
            self._pending.clear()
            s = self.settings
            self._encoder = OpusEncoder(bitrate=s.bitrate, frame_ms=s.frame_duration)
            if s.wake_word_detect and change.cause.startswith("wake_word"):
                await self.link.send({"type": "listen", "state": "detect", "text": s.wake_text})
            self.listening = await self.link.send(
                {"type": "listen", "state": "start", "mode": s.listen_mode}
            )
        elif old is State.LISTENING:
            was_listening, self.listening = self.listening, False
            if new is State.THINKING and was_listening:
                if await self.link.send({"type": "listen", "state": "stop"}):
                    self._await_reply()
                else:
                    self._give_up("link_lost")
            elif new is State.THINKING and not (self.waiting or self.live):
                self._give_up("offline")  # opened offline: the cloud cannot answer it
            elif new is not State.THINKING:
                await self.abort("cancelled")
        elif new in LEAVES_QUIETLY and old in (State.THINKING, State.SPEAKING):
            if self.waiting or self.live:
                await self.abort(f"state_{new.value}")
