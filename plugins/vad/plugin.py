"""The ``vad`` plugin: while LISTENING, decide when the child has finished talking."""

from __future__ import annotations

import logging

from toyd import App, PluginDeclaration, Service, State, Subscription, hookimpl
from toyd.audio.pcm import FRAME_BYTES, SAMPLE_RATE
from toyd.events import (
    AudioFrame,
    ButtonPressed,
    ButtonReleased,
    SpeechEnded,
    SpeechStarted,
    StateChanged,
)

from .detector import Decision, EndpointDetector, Mode, new_vad
from .settings import VadSettings

log = logging.getLogger(__name__)


class VadPlugin:
    """Publishes SpeechStarted and SpeechEnded(reason) for each listening session."""

    def __init__(self) -> None:
        self.settings = VadSettings()
        self.detector: EndpointDetector | None = None
        self._button_down = False
        self._app: App | None = None
        self._events: Subscription | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=VadSettings,
            summary="End of speech: silence, max length, push-to-talk release (webrtcvad)",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: VadSettings) -> None:
        self._app, self.settings = app, settings
        # one classifier hears the room all the time, so its noise model is settled when listening starts
        self._vad = new_vad(settings.aggressiveness)
        # audio frames are droppable: if the loop stalls, old frames go first (seq gaps still count as time)
        self._events = app.bus.subscribe(
            "vad", (StateChanged, AudioFrame, ButtonPressed, ButtonReleased), maxsize=500
        )

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("endpoint", self._run)]

    async def _run(self) -> None:
        assert self._events is not None
        async for event in self._events:
            if isinstance(event, AudioFrame):
                if self.detector is not None:
                    self._apply(self.detector.feed(event.pcm, event.seq))
                elif len(event.pcm) == FRAME_BYTES:
                    self._vad.is_speech(event.pcm, SAMPLE_RATE)
            elif isinstance(event, StateChanged):
                self._on_state(event)
            elif isinstance(event, ButtonPressed):
                self._button_down = True
            elif isinstance(event, ButtonReleased):
                self._button_down = False
                if self.detector is not None and self.detector.mode is Mode.PUSH_TO_TALK:
                    self._apply(self.detector.release())

    def _on_state(self, event: StateChanged) -> None:
        if event.new is not State.LISTENING:
            self.detector = None
            return
        if event.old is State.LISTENING:
            return  # only the offline overlay changed
        mode = Mode.PUSH_TO_TALK if event.cause == ButtonPressed.__name__ else Mode.AUTO
        self.detector = EndpointDetector(self.settings, mode, self._vad)
        log.debug("listening (%s)", mode.value)
        if mode is Mode.PUSH_TO_TALK and not self._button_down:
            self._apply(self.detector.release())  # released before the state machine caught up

    def _apply(self, decisions: list[Decision]) -> None:
        assert self._app is not None
        for d in decisions:
            if d.kind == "started":
                log.debug("speech started at %.2f s", d.at)
                self._app.bus.publish(SpeechStarted())
            else:
                log.info("speech ended: %s after %.2f s of audio", d.reason, d.at)
                self._app.bus.publish(SpeechEnded(reason=d.reason))
                self.detector = None

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: VadSettings) -> bool:
        if settings.aggressiveness != self.settings.aggressiveness:
            self._vad.set_mode(settings.aggressiveness)
        self.settings = settings  # from the next listening session on
        return True

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        if self._events is not None:
            self._events.close()
