"""The ``audio`` plugin: microphone frames out, reply audio in, barge-in, volume."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from pathlib import Path

from toyd import App, CliCommand, PluginDeclaration, Service, State, Subscription, hookimpl
from toyd.errors import AudioError
from toyd.events import AudioFrame, MicInput, ReplyAudio, ReplyAudioEnd, StateChanged, VolumeSet

from .device import AudioOutput, Microphone
from .file_backend import FileMicrophone, FileSpeaker
from .player import Player
from .settings import LIVE_KEYS, AudioSettings

log = logging.getLogger(__name__)


class AudioPlugin:
    """Owns the microphone, the speaker thread and the player."""

    def __init__(self) -> None:
        self.settings = AudioSettings()
        self.backend = "file"
        self.mic: Microphone | None = None
        self.speaker: AudioOutput | None = None
        self.player: Player | None = None
        self.seq = 0
        self._app: App | None = None
        self._muted = False
        self._executors: list[concurrent.futures.ThreadPoolExecutor] = []
        self._events: Subscription | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=AudioSettings,
            summary="Microphone and speaker (PyAudio, or file/pipe for --simulate)",
        )

    @hookimpl
    def toyd_cli_commands(self) -> list[CliCommand]:
        from .cli import COMMAND

        return [COMMAND]

    @hookimpl
    async def toyd_startup(self, app: App, settings: AudioSettings) -> None:
        self._app, self.settings = app, settings
        self.backend = "file" if app.simulate else settings.backend
        speaker_thread = self._executor("toyd-speaker")
        if self.backend == "file":
            fs = settings.file
            self.mic = FileMicrophone(
                fs.input, fmt=fs.input_format, realtime=fs.realtime, loop=fs.at_end == "loop"
            )
            self.speaker = FileSpeaker(
                _resolve(app.state_dir, fs.output), realtime=fs.output_realtime
            )
        else:
            from .pyaudio_backend import PortAudio

            portaudio = await app.run_blocking(PortAudio)
            self.mic = portaudio.microphone(settings.pyaudio, self._executor("toyd-mic"))
            self.speaker = portaudio.speaker(settings.pyaudio)
        await self.mic.open()
        await asyncio.get_running_loop().run_in_executor(speaker_thread, self.speaker.open)
        self.player = Player(
            app.bus,
            self.speaker,
            speaker_thread,
            volume=settings.volume,
            prebuffer_frames=settings.prebuffer_frames,
            stall_timeout=settings.stall_timeout,
            state=app.state or State.IDLE,
        )
        self._muted = app.state is State.MUTED
        self._events = app.bus.subscribe(
            "audio", (ReplyAudio, ReplyAudioEnd, StateChanged, VolumeSet, MicInput), maxsize=8192
        )
        log.info(
            "audio: %s backend (microphone %s, speaker %s), volume %d",
            self.backend,
            self.mic.name,
            self.speaker.name,
            settings.volume,
        )

    def _executor(self, name: str) -> concurrent.futures.ThreadPoolExecutor:
        """A dedicated thread per device, so model inference on the shared pool never delays audio."""
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._executors.append(executor)
        return executor

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        assert self.player is not None
        return [
            Service("capture", self._capture),
            Service("playback", self.player.run),
            Service("events", self._run_events),
        ]

    async def _capture(self) -> None:
        assert self.mic is not None
        await self.mic.run(self._emit)

    def _emit(self, pcm: bytes) -> None:
        """Publish one captured frame; a muted toy hears nothing unless configured otherwise."""
        self.seq += 1
        if self._muted and not self.settings.capture_when_muted:
            return
        assert self._app is not None
        self._app.bus.publish(AudioFrame(pcm=pcm, seq=self.seq))

    async def _run_events(self) -> None:
        assert self.player is not None and self._events is not None
        player = self.player
        async for event in self._events:
            if isinstance(event, ReplyAudio):
                player.on_audio(event)
            elif isinstance(event, ReplyAudioEnd):
                player.on_end(event)
            elif isinstance(event, StateChanged):
                self._muted = event.new is State.MUTED
                player.on_state(event)
            elif isinstance(event, VolumeSet):
                self.set_volume(event.level)
            elif isinstance(event, MicInput):
                await self._switch_input(event)

    def set_volume(self, level: int) -> None:
        """Apply a volume 0-100 from the next frame on; out-of-range levels are clamped."""
        assert self.player is not None
        clamped = min(100, max(0, int(level)))
        if clamped != level:
            log.warning("volume %r out of range 0-100; using %d", level, clamped)
        self.player.volume = clamped
        log.info("volume %d", clamped)

    async def _switch_input(self, event: MicInput) -> None:
        if not isinstance(self.mic, FileMicrophone):
            log.warning(
                "MicInput %s ignored: the %s microphone is a real device", event.path, self.backend
            )
            return
        try:
            await self.mic.switch(event.path, event.format)
        except AudioError as exc:
            log.error("microphone input %s; keeping the previous input", exc)

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: AudioSettings) -> bool:
        old, self.settings = self.settings, settings
        assert self.player is not None
        self.player.prebuffer_frames = settings.prebuffer_frames
        self.player.stall_timeout = settings.stall_timeout
        if settings.volume != old.volume:
            self.set_volume(settings.volume)
        # devices and backend are opened once: any other change needs a restart
        return dataclasses.replace(settings, **{k: getattr(old, k) for k in LIVE_KEYS}) == old

    @hookimpl
    async def toyd_shutdown(self, app: App) -> None:
        if self._events is not None:
            self._events.close()
        if self.mic is not None:
            await self.mic.close()
        loop = asyncio.get_running_loop()
        if self.speaker is not None and self._executors:
            try:
                await loop.run_in_executor(self._executors[0], self.speaker.close)
            except AudioError as exc:
                log.error("closing the speaker: %s", exc)
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors.clear()


def _resolve(state_dir: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else state_dir / p
