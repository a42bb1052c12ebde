"""The ``cloudlink`` plugin (device role): the toy's backend in the cloud, over protocol v1.

Follows the conversation state: LISTENING streams the microphone up (Opus) after a
``listen start``; leaving LISTENING for THINKING sends ``listen stop`` and arms the
reply deadline; barge-in sends ``abort``. Downlink audio becomes ``ReplyAudio`` only
for the one response the toy is waiting for, so nothing of an aborted or late reply
is ever played.
"""

from __future__ import annotations

import collections
import logging
import uuid

from toyd import App, PluginDeclaration, Service, State, credentials, hookimpl
from toyd import __version__ as toyd_version
from toyd import events as ev
from toyd.audio.opus import OpusEncoder
from toyd.protocol import Hello, Listen, Playback, Say, ServerHello

from .downlink import DownlinkReceiver
from .link import Link
from .settings import CloudLinkSettings, refuse_known_default_token

log = logging.getLogger(__name__)
LEAVES_QUIETLY = frozenset({State.SLEEPING, State.MUTED, State.ERROR, State.IDLE})


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
        self.downlink: DownlinkReceiver | None = None
        self.persona: str | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self._listening = False
        self._encoder: OpusEncoder | None = None
        self._says: collections.deque[ev.SayRequested] = collections.deque(maxlen=5)

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=CloudLinkSettings,
            summary="Cloud backend over WebSocket (protocol v1)",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: CloudLinkSettings) -> None:
        refuse_known_default_token(settings, app.config.source, simulate=app.simulate)
        if not settings.token and not credentials.token_path(app.state_dir).exists():
            log.warning(
                "cloudlink: no token configured or activated; the cloud will refuse this toy"
            )
        self.app, self.settings, self.persona = app, settings, settings.persona
        self.link = Link(settings, app.device_id, self._hello, app.state_dir)
        self.downlink = DownlinkReceiver(app, self.link, settings.reply_timeout)
        self._events = app.bus.subscribe(
            "cloudlink",
            (
                ev.StateChanged,
                ev.AudioFrame,
                ev.PlaybackFinished,
                ev.SayRequested,
                ev.PersonaSet,
                ev.OfflineAnswered,
                ev.CloudTokenStored,
            ),
            maxsize=100,
        )

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("link", self._run_link), Service("events", self._run_events)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: CloudLinkSettings) -> bool:
        old = self.settings
        if (old.url, old.token, old.ca_file) != (settings.url, settings.token, settings.ca_file):
            return False  # a new endpoint or identity: reconnect on restart
        self.settings = settings
        if self.link and self.downlink:
            self.link.settings = settings
            self.downlink.reply_timeout = settings.reply_timeout
        if settings.persona != old.persona:
            self.persona = settings.persona
        return True

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        self._events.close()
        if self.downlink:
            self.downlink.close()

    def _hello(self) -> Hello:
        return Hello(
            device_id=self.app.device_id if self.app else "",
            firmware=f"toyd {toyd_version}",
            features={"say": True, "barge_in": True, "response_ids": True},
            persona=self.persona,
            language=self.settings.language,
        )

    # --- link ---------------------------------------------------------------------------------

    async def _run_link(self) -> None:
        assert self.link and self.downlink and self.app
        app, downlink = self.app, self.downlink

        def up(hello: ServerHello) -> None:
            log.info(
                "cloud link up: session %s, config version %d",
                hello.session_id,
                hello.config_version,
            )
            downlink.session_up(hello.session_id)
            app.bus.publish(ev.CloudOnline(backend="cloudlink"))
            if self._says and app.state is State.IDLE:
                app.spawn(self._flush_says(), "cloudlink:say")

        def down(reason: str) -> None:
            self._listening = False
            downlink.session_down(reason)
            if downlink.announce_offline():
                app.bus.publish(ev.CloudOffline(backend="cloudlink", reason=reason))

        await app.ready.wait()  # the link imports the WebSocket library: not during start-up
        await self.link.run(downlink.on_frame, up, down)

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
                await self.downlink.abort("answered_locally", only_if_busy=True)  # type: ignore[union-attr]

    async def _on_audio(self, frame: ev.AudioFrame) -> None:
        if (
            not self._listening
            or self._encoder is None
            or self.link is None
            or (self.downlink and self.downlink.uplink_cut)
        ):
            return
        # encoding 20 ms takes ~0.1 ms even on a Pi Zero 2: inline beats a thread hop per frame
        packet = self._encoder.encode(frame.pcm)
        if await self.link.send(packet):
            self.frames_sent += 1
            self.bytes_sent += len(packet)

    async def _on_state(self, change: ev.StateChanged) -> None:
        assert self.link and self.downlink
        old, new = change.old, change.new
        if old is new:
            return  # the offline overlay changed
        if new is State.LISTENING:
            if old in (State.THINKING, State.SPEAKING):
                await self.downlink.abort("barge_in")
            turn_id = uuid.uuid4().hex[:12]
            self._encoder = OpusEncoder(bitrate=self.settings.bitrate)
            self._listening = self.link.online
            self.downlink.begin_turn(turn_id if self.link.online else "")
            await self.link.send(
                Listen(
                    state="start",
                    mode=listen_mode(change.cause),
                    turn_id=turn_id,  # type: ignore[arg-type]
                    persona=self.persona,
                    language=self.settings.language,
                )
            )
        elif old is State.LISTENING:
            self._listening = False
            if new is State.THINKING and self.downlink.turn_id:
                if self.downlink.turn_is_open() and await self.link.send(
                    Listen(state="stop", turn_id=self.downlink.turn_id)
                ):
                    if (
                        not self.downlink.waiting
                    ):  # else the cloud ended the turn itself (cut) and is answering
                        self.downlink.await_reply()
                else:  # the link dropped while the child was talking: the cloud cannot answer this turn
                    self.downlink.give_up("link_lost")
            else:
                await self.downlink.abort("cancelled")
        elif new in LEAVES_QUIETLY and old in (State.THINKING, State.SPEAKING):
            await self.downlink.abort(f"state_{new.value}", only_if_busy=True)
        if new is State.IDLE and self._says:
            await self._flush_says()

    async def _on_played(self, event: ev.PlaybackFinished) -> None:
        assert self.link and self.downlink
        number = self.downlink.response_number(event.response_id)
        if number is not None:
            await self.link.send(Playback(response_id=number, interrupted=event.interrupted))

    async def _flush_says(self) -> None:
        assert self.link
        if self._says and self.link.online:  # one at a time: the next waits for IDLE again
            say = self._says.popleft()
            await self.link.send(Say(text=say.text[:1000], request_id=say.request_id))
