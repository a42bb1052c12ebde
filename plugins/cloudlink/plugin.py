"""The ``cloudlink`` plugin (device role): the toy's backend in the cloud, over protocol v1.

Follows the conversation state: LISTENING streams the microphone up (Opus) after a
``listen start``; leaving LISTENING for THINKING sends ``listen stop`` and arms the
reply deadline; barge-in sends ``abort``. Downlink audio becomes ``ReplyAudio`` only
for the one response the toy is waiting for, so nothing of an aborted or late reply
is ever played.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import uuid

from toyd import App, PluginDeclaration, Service, State, credentials, hookimpl, setting
from toyd import __version__ as toyd_version
from toyd import events as ev
from toyd.audio.opus import DEFAULT_BITRATE, OpusEncoder
from toyd.protocol import Hello, Listen, Playback, Say, ServerHello

from .downlink import Receiver
from .link import Link

log = logging.getLogger(__name__)
LEAVES_QUIETLY = frozenset({State.SLEEPING, State.MUTED, State.ERROR, State.IDLE})


@dataclasses.dataclass(frozen=True)
class CloudLinkSettings:
    """Settings of the ``cloudlink`` section."""

    url: str = setting("ws://127.0.0.1:8765", doc="Gateway URL, ws:// or wss://.")
    token: str = setting("", doc="This toy's token; use {$env: NAME} or {$file: PATH}.")
    ca_file: str | None = setting(None, doc="PEM CA bundle that signed the gateway's certificate (wss://); unset = system CAs.")
    connect_timeout: float = setting(5.0, min=0.5, max=60, doc="Seconds to open the connection.")
    hello_timeout: float = setting(10.0, min=0.5, max=60, doc="Seconds to wait for the server's hello.")
    reply_timeout: float = setting(6.0, min=0.5, max=60, doc="Seconds after the child stops talking for the reply to start; then ReplyTimeout (local answer).")
    backoff_initial: float = setting(0.5, min=0.05, max=60, doc="First reconnect delay, seconds (doubles up to backoff_max, ±25% jitter).")
    backoff_max: float = setting(30.0, min=0.1, max=600, doc="Longest reconnect delay, seconds.")
    bitrate: int = setting(DEFAULT_BITRATE, min=6000, max=64000, doc="Uplink Opus bitrate, bits per second.")
    persona: str | None = setting(None, doc="Persona id sent with every turn (a PersonaSet command overrides it).")
    language: str | None = setting(None, doc="Language of the child (en, ko, ...); unset = the cloud detects it.")

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss:// (got {self.url!r})")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be at least backoff_initial")


def listen_mode(cause: str) -> str:
    """Protocol listen mode from what opened the turn."""
    if cause.startswith("wake_word"):
        return "wake_word"
    if cause == "ButtonPressed":
        return "push_to_talk"
    return "auto"


class CloudLinkPlugin:
    """Bridges the bus and the cloud link."""

    def __init__(self) -> None:
        self.settings = CloudLinkSettings()
        self.app: App | None = None
        self.link: Link | None = None
        self.receiver: Receiver | None = None
        self.persona: str | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self._listening = False
        self._encoder: OpusEncoder | None = None
        self._says: collections.deque[ev.SayRequested] = collections.deque(maxlen=5)

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("device",), settings=CloudLinkSettings,
                                 summary="Cloud backend over WebSocket (protocol v1)")

    @hookimpl
    def toyd_startup(self, app: App, settings: CloudLinkSettings) -> None:
        if not settings.token and not credentials.token_path(app.state_dir).exists():
            log.warning("cloudlink: no token configured or activated; the cloud will refuse this toy")
        self.app, self.settings, self.persona = app, settings, settings.persona
        self.link = Link(settings, app.device_id, self._hello, app.state_dir)
        self.receiver = Receiver(app, self.link, settings.reply_timeout)
        self._events = app.bus.subscribe("cloudlink", (ev.StateChanged, ev.AudioFrame, ev.PlaybackFinished,
                                                       ev.SayRequested, ev.PersonaSet, ev.OfflineAnswered,
                                                       ev.CloudTokenStored),
                                          maxsize=100)

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("link", self._run_link), Service("events", self._run_events)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: CloudLinkSettings) -> bool:
        old = self.settings
        if (old.url, old.token, old.ca_file) != (settings.url, settings.token, settings.ca_file):
            return False  # a new endpoint or identity: reconnect on restart
        self.settings = settings
        if self.link and self.receiver:
            self.link.settings = settings
            self.receiver.reply_timeout = settings.reply_timeout
        if settings.persona != old.persona:
            self.persona = settings.persona
        return True

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        if self.receiver:
            self.receiver.close()

    def _hello(self) -> Hello:
        return Hello(device_id=self.app.device_id if self.app else "", firmware=f"toyd {toyd_version}",
                     features={"say": True, "barge_in": True, "response_ids": True},
                     persona=self.persona, language=self.settings.language)

    # --- link ---------------------------------------------------------------------------------

    async def _run_link(self) -> None:
        assert self.link and self.receiver and self.app
        app, receiver = self.app, self.receiver

        def up(hello: ServerHello) -> None:
            log.info("cloud link up: session %s, config version %d", hello.session_id, hello.config_version)
            receiver.session_up(hello.session_id)
            app.bus.publish(ev.CloudOnline(backend="cloudlink"))
            if self._says and app.state is State.IDLE:
                app.spawn(self._flush_says(), "cloudlink:say")

        def down(reason: str) -> None:
            self._listening = False
            receiver.session_down(reason)
            if receiver.announce_offline():
                app.bus.publish(ev.CloudOffline(backend="cloudlink", reason=reason))

        await self.link.run(receiver.on_frame, up, down)

    # --- bus → cloud ---------------------------------------------------------------------------

    async def _run_events(self) -> None:
        async for event in self._events:
            if isinstance(event, ev.AudioFrame):
                await self._on_audio(event)
            elif isinstance(event, ev.StateChanged):
                await self._on_state(event)
            elif isinstance(event, ev.PlaybackFinished):
                await self._on_played(event)
            elif isinstance(event, ev.SayRequested):
                self._says.append(event)
                if self.app and self.app.state is State.IDLE:
                    await self._flush_says()
            elif isinstance(event, ev.CloudTokenStored):
                self.link.wake.set()  # type: ignore[union-attr]  # activation finished: connect now
            elif isinstance(event, ev.PersonaSet):
                self.persona = event.persona or None
            elif isinstance(event, ev.OfflineAnswered):
                # the toy answered this turn itself (hot cache, offline): the cloud must not answer too
                await self.receiver.abort("answered_locally", only_if_busy=True)  # type: ignore[union-attr]

    async def _on_audio(self, frame: ev.AudioFrame) -> None:
        if not self._listening or self._encoder is None or self.link is None or (self.receiver and self.receiver.uplink_cut):
            return
        # encoding 20 ms takes ~0.1 ms even on a Pi Zero 2: inline beats a thread hop per frame
        packet = self._encoder.encode(frame.pcm)
        if await self.link.send(packet):
            self.frames_sent += 1
            self.bytes_sent += len(packet)

    async def _on_state(self, change: ev.StateChanged) -> None:
        assert self.link and self.receiver
        old, new = change.old, change.new
        if old is new:
            return  # the offline overlay changed
        if new is State.LISTENING:
            if old in (State.THINKING, State.SPEAKING):
                await self.receiver.abort("barge_in")
            turn_id = uuid.uuid4().hex[:12]
            self._encoder = OpusEncoder(bitrate=self.settings.bitrate)
            self._listening = self.link.online
            self.receiver.begin_turn(turn_id if self.link.online else "")
            await self.link.send(Listen(state="start", mode=listen_mode(change.cause), turn_id=turn_id,  # type: ignore[arg-type]
                                        persona=self.persona, language=self.settings.language))
        elif old is State.LISTENING:
            self._listening = False
            if new is State.THINKING and self.receiver.turn_id:
                if self.receiver.turn_is_open() and await self.link.send(Listen(state="stop", turn_id=self.receiver.turn_id)):
                    if not self.receiver.waiting:  # else the cloud ended the turn itself (cut) and is answering
                        self.receiver.await_reply()
                else:  # the link dropped while the child was talking: the cloud cannot answer this turn
                    self.receiver.give_up("link_lost")
            else:
                await self.receiver.abort("cancelled")
        elif new in LEAVES_QUIETLY and old in (State.THINKING, State.SPEAKING):
            await self.receiver.abort(f"state_{new.value}", only_if_busy=True)
        if new is State.IDLE and self._says:
            await self._flush_says()

    async def _on_played(self, event: ev.PlaybackFinished) -> None:
        assert self.link and self.receiver
        number = self.receiver.response_number(event.response_id)
        if number is not None:
            await self.link.send(Playback(response_id=number, interrupted=event.interrupted))

    async def _flush_says(self) -> None:
        assert self.link
        if self._says and self.link.online:  # one at a time: the next waits for IDLE again
            say = self._says.popleft()
            await self.link.send(Say(text=say.text[:1000], request_id=say.request_id))
