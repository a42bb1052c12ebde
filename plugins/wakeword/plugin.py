"""Listens for wake words in the microphone stream and publishes ``WakeWordDetected``.

Inference runs on one dedicated worker thread (tflite interpreters are not thread-safe),
never on the event loop. Audio is only scored while a wake word can do something:
IDLE and THINKING (barge-in), and SPEAKING when ``barge_in`` is on; during LISTENING the
turn is already open, and SLEEPING, MUTED and ERROR ignore it. After a pause the detector
starts from silence, so stale audio never triggers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path
from typing import Any

from toyd import App, CliCommand, PluginDeclaration, Service, State, hookimpl
from toyd.events import AudioFrame, StateChanged, WakeWordDetected

from .settings import WakeWordSettings, model_paths

log = logging.getLogger(__name__)

CHUNK_BYTES = 2560  # 80 ms of 16 kHz int16: the detector's step (kept here so import stays cheap)
QUEUE_FRAMES = 250  # 5 s of 20 ms frames may wait; older audio is dropped if inference lags


def active_states(barge_in: bool) -> frozenset[State]:
    """States in which a wake word is listened for."""
    states = {State.IDLE, State.THINKING}
    if barge_in:
        states.add(State.SPEAKING)
    return frozenset(states)


def config_dir(app: App) -> Path:
    """Folder of the config file (relative model paths start there), else the working dir."""
    source = Path(app.config.source)
    return source.parent if source.is_file() else Path.cwd()


class WakeWordPlugin:
    """Owns the detector, its worker thread and the audio subscription."""

    def __init__(self) -> None:
        self.settings = WakeWordSettings()
        self.detector: Any = None
        self.state = State.IDLE
        self.detections = 0
        self.chunks_scored = 0  # 80 ms chunks run through the models (stats, tests)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._buffer = bytearray()
        self._needs_reset = False

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=WakeWordSettings,
            summary="Wake word detection (openWakeWord models, tflite)",
        )

    @hookimpl
    def toyd_cli_commands(self) -> list[CliCommand]:
        from .cli import COMMAND

        return [COMMAND]

    @hookimpl
    async def toyd_startup(self, app: App, settings: WakeWordSettings) -> None:
        self.app, self.settings = app, settings
        self.state = app.state or State.IDLE
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wakeword")
        try:
            self.detector = await self._in_worker(self._load, settings, config_dir(app))
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._events = app.bus.subscribe(
            "wakeword", (AudioFrame, StateChanged), maxsize=QUEUE_FRAMES
        )
        self.state = (
            app.state or State.IDLE
        )  # as of the subscription: later changes arrive as events
        log.info(
            "wake word listening for %s",
            ", ".join(f"{m.name} (threshold {m.threshold:g})" for m in settings.models),
        )

    @staticmethod
    def _load(settings: WakeWordSettings, base: Path) -> Any:
        from .detector import WakeWordDetector

        melspec, embedding, specs = model_paths(settings, base)
        return WakeWordDetector(melspec, embedding, specs, threads=settings.threads)

    async def _in_worker(self, func: Any, *args: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("detect", self._run)]

    @property
    def active(self) -> bool:
        return self.state in active_states(self.settings.barge_in)

    async def _run(self) -> None:
        async for event in self._events:
            if isinstance(event, StateChanged):
                was = self.active
                self.state = event.new
                if was and not self.active:
                    self._buffer.clear()
                    self._needs_reset = True
                continue
            assert isinstance(event, AudioFrame)
            if not self.active:
                continue
            if len(event.pcm) % 2:  # half a sample would misalign every later sample
                log.warning(
                    "dropped a malformed audio frame (seq %d, %d bytes: not whole 16-bit samples)",
                    event.seq,
                    len(event.pcm),
                )
                continue
            self._buffer += event.pcm
            if len(self._buffer) >= CHUNK_BYTES:
                pcm, self._buffer = bytes(self._buffer), bytearray()
                await self._score(pcm)

    async def _score(self, pcm: bytes) -> None:
        reset, self._needs_reset = self._needs_reset, False
        _, detections = await self._in_worker(self._step, pcm, reset)
        self.chunks_scored += len(pcm) // CHUNK_BYTES
        for hit in detections:
            if not self.active:  # the state moved on while the chunk was scored
                break
            self.detections += 1
            log.info("wake word %s (score %.2f)", hit.model, hit.score)
            self.app.bus.publish(WakeWordDetected(model=hit.model, score=hit.score))

    def _step(self, pcm: bytes, reset: bool) -> Any:
        """Worker thread: one detector call (a reset first after a pause)."""
        if reset:
            self.detector.reset()
        return self.detector.process(pcm)

    @hookimpl
    async def toyd_reconfigure(self, app: App, settings: WakeWordSettings) -> bool:
        melspec, embedding, specs = model_paths(settings, config_dir(app))
        old_melspec, old_embedding, _ = model_paths(self.settings, config_dir(app))
        if (melspec, embedding, settings.threads) != (
            old_melspec,
            old_embedding,
            self.settings.threads,
        ):
            return False
        if not await self._in_worker(self.detector.update_specs, specs):
            return False  # other model files: loaded at the next start
        self.settings = settings
        return True

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        events = getattr(self, "_events", None)
        if events is not None:
            events.close()
        if self._executor is not None:
            # a chunk being scored finishes on its own; nothing waits for it
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
