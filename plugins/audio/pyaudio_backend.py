"""A real sound card through PyAudio/PortAudio: device by name or index, rate probing, resampling.

Every blocking PortAudio call runs on the device's own thread (never on the event
loop). Cards that cannot do 16 kHz mono (most USB cards and HATs want 44.1/48 kHz,
some only stereo) are opened at a rate and channel count they take, and soxr
converts on the fly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Executor
from typing import Any

import numpy as np

from toyd.audio.pcm import FRAME_BYTES, FRAME_MS, SAMPLE_RATE
from toyd.errors import AudioError

from .device import Emit
from .settings import PyAudioSettings

log = logging.getLogger(__name__)

PROBE_RATES = (SAMPLE_RATE, 48000, 44100, 32000, 22050, 8000)


class PortAudio:
    """One PortAudio session shared by the microphone and the speaker (blocking constructor)."""

    def __init__(self) -> None:
        import pyaudio

        self.pyaudio = pyaudio
        self.pa = pyaudio.PyAudio()
        self._lock = threading.Lock()
        self._users = 0

    def devices(self) -> list[dict[str, Any]]:
        """Every device PortAudio sees, with its index, name and channel counts."""
        return [self.pa.get_device_info_by_index(i) for i in range(self.pa.get_device_count())]

    def find(self, spec: str | int | None, kind: str) -> dict[str, Any]:
        """The device for ``spec`` (name substring, index or None = default); AudioError lists the choices."""
        key = "maxInputChannels" if kind == "input" else "maxOutputChannels"
        candidates = [d for d in self.devices() if d[key] > 0]
        listing = "; ".join(f"{d['index']}: {d['name']}" for d in candidates) or "none"
        if spec is None:
            try:
                return (
                    self.pa.get_default_input_device_info()
                    if kind == "input"
                    else self.pa.get_default_output_device_info()
                )
            except OSError:
                raise AudioError(
                    f"no default {kind} device; set audio.pyaudio.{kind}_device "
                    f"to one of: {listing}"
                ) from None
        if isinstance(spec, int):
            for d in candidates:
                if d["index"] == spec:
                    return d
            raise AudioError(
                f"audio.pyaudio.{kind}_device: no {kind} device with index {spec}; "
                f"available: {listing}"
            )
        matches = [d for d in candidates if spec.lower() in d["name"].lower()]
        exact = [d for d in matches if d["name"].lower() == spec.lower()]
        if not matches:
            raise AudioError(
                f"audio.pyaudio.{kind}_device: no {kind} device whose name contains "
                f"{spec!r}; available: {listing}"
            )
        if len(matches) > 1 and not exact:
            log.info(
                "%s device %r matches %s; using %r",
                kind,
                spec,
                [d["name"] for d in matches],
                matches[0]["name"],
            )
        return (exact or matches)[0]

    def probe(
        self, device: dict[str, Any], kind: str, rate: int | None, channels: int | None
    ) -> tuple[int, int]:
        """A (rate, channels) the device accepts for int16, preferring 16 kHz mono."""
        rates = (rate,) if rate else PROBE_RATES
        channel_options = (channels,) if channels else (1, 2)
        for ch in channel_options:
            for r in rates:
                kwargs = {
                    f"{kind}_device": device["index"],
                    f"{kind}_channels": ch,
                    f"{kind}_format": self.pyaudio.paInt16,
                }
                try:
                    if self.pa.is_format_supported(r, **kwargs):
                        return r, ch
                except ValueError:
                    continue
        raise AudioError(
            f"{kind} device {device['name']!r} takes none of the rates {list(rates)} "
            f"with {list(channel_options)} channels of 16-bit audio"
        )

    def microphone(self, settings: PyAudioSettings, executor: Executor) -> PyAudioMicrophone:
        """A microphone that reads on ``executor``'s thread."""
        return PyAudioMicrophone(self, settings, executor)

    def speaker(self, settings: PyAudioSettings) -> PyAudioSpeaker:
        """A speaker whose blocking calls the player runs on its speaker thread."""
        return PyAudioSpeaker(self, settings)

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        """Terminate PortAudio when its last user closed."""
        with self._lock:
            self._users -= 1
            if self._users <= 0:
                self.pa.terminate()


def _suggested_latency(device: dict[str, Any], kind: str, which: str) -> float:
    side = "Input" if kind == "input" else "Output"
    return (
        float(device.get(f"default{'Low' if which == 'low' else 'High'}{side}Latency", 0.0)) or 0.05
    )


class PyAudioMicrophone:
    """Blocking reads of 20 ms on the microphone thread, converted to 16 kHz mono frames."""

    def __init__(self, portaudio: PortAudio, settings: PyAudioSettings, executor: Executor) -> None:
        self.portaudio = portaudio
        self.settings = settings
        self.executor = executor
        self.name = "pyaudio"
        self.rate = SAMPLE_RATE
        self.channels = 1
        self._stream: Any = None
        self._resampler: Any = None
        self._pending = b""

    async def open(self) -> None:
        """Choose and open the capture device on the microphone thread."""
        await asyncio.get_running_loop().run_in_executor(self.executor, self._open)

    def _open(self) -> None:
        s, pa = self.settings, self.portaudio
        device = pa.find(s.input_device, "input")
        self.rate, self.channels = pa.probe(device, "input", s.input_rate, s.input_channels)
        if s.input_channel >= self.channels:
            raise AudioError(
                f"audio.pyaudio.input_channel is {s.input_channel} but {device['name']!r} "
                f"is opened with {self.channels} channel(s)"
            )
        self.block = self.rate * FRAME_MS // 1000
        try:
            self._stream = pa.pa.open(
                rate=self.rate,
                channels=self.channels,
                format=pa.pyaudio.paInt16,
                input=True,
                input_device_index=device["index"],
                frames_per_buffer=self.block,
            )
        except OSError as exc:
            raise AudioError(
                f"cannot open input device {device['name']!r} at {self.rate} Hz: {exc}"
            ) from None
        pa.acquire()
        if self.rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="int16")
        self.name = f"pyaudio:{device['name']}@{self.rate}Hz/{self.channels}ch"
        log.info("microphone: %s (device %d)", self.name, device["index"])

    def _read(self) -> bytes:
        """One block from the card as 16 kHz mono PCM (blocking; microphone thread)."""
        data = self._stream.read(self.block, exception_on_overflow=False)
        samples = np.frombuffer(data, "<i2")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels)[:, self.settings.input_channel]
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(np.ascontiguousarray(samples))
        return np.ascontiguousarray(samples, "<i2").tobytes()

    async def run(self, emit: Emit) -> None:
        """Read until cancelled; emit whole 20 ms frames."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.run_in_executor(self.executor, self._read)
            except OSError as exc:
                raise AudioError(f"microphone read failed: {exc}") from None
            self._pending += data
            while len(self._pending) >= FRAME_BYTES:
                emit(self._pending[:FRAME_BYTES])
                self._pending = self._pending[FRAME_BYTES:]

    async def close(self) -> None:
        """Close the stream on the microphone thread."""
        if self._stream is not None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._close)

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
            self.portaudio.release()


class PyAudioSpeaker:
    """Blocking 20 ms writes; an interrupt aborts the stream so buffered audio is thrown away."""

    def __init__(self, portaudio: PortAudio, settings: PyAudioSettings) -> None:
        self.portaudio = portaudio
        self.settings = settings
        self.name = "pyaudio"
        self.rate = SAMPLE_RATE
        self.channels = 1
        self.stopped_at = 0.0
        self.frames_written = 0
        self._stream: Any = None
        self._resampler: Any = None
        self._min_generation = 0
        self._dirty = False  # the device may hold audio written since the last discard

    def open(self) -> None:
        """Choose and open the playback device (speaker thread)."""
        s, pa = self.settings, self.portaudio
        device = pa.find(s.output_device, "output")
        self.rate, self.channels = pa.probe(device, "output", s.output_rate, s.output_channels)
        try:
            self._stream = pa.pa.open(
                rate=self.rate,
                channels=self.channels,
                format=pa.pyaudio.paInt16,
                output=True,
                output_device_index=device["index"],
                frames_per_buffer=self.rate * FRAME_MS // 1000,
            )
        except OSError as exc:
            raise AudioError(
                f"cannot open output device {device['name']!r} at {self.rate} Hz: {exc}"
            ) from None
        pa.acquire()
        self._new_resampler()
        self.name = f"pyaudio:{device['name']}@{self.rate}Hz/{self.channels}ch"
        log.info("speaker: %s (device %d)", self.name, device["index"])

    def _new_resampler(self) -> None:
        if self.rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(SAMPLE_RATE, self.rate, 1, dtype="int16")

    def write(self, pcm: bytes, generation: int) -> bool:
        """Play one frame (blocks while the device buffer is full)."""
        if generation < self._min_generation or self._stream is None:
            return False
        samples = np.frombuffer(pcm, "<i2")
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        if self.channels > 1:
            samples = np.repeat(samples, self.channels)
        try:
            self._stream.write(
                np.ascontiguousarray(samples, "<i2").tobytes(), exception_on_underflow=False
            )
        except OSError as exc:
            raise AudioError(f"speaker write failed: {exc}") from None
        self._dirty = True
        self.frames_written += 1
        if generation < self._min_generation:  # interrupted while this frame was being written
            self.discard()
        return True

    def interrupt(self, generation: int) -> None:
        """Refuse older generations from now on; :meth:`discard` then empties the device buffer."""
        self._min_generation = max(self._min_generation, generation)
        self.stopped_at = time.monotonic()

    def discard(self) -> None:
        """Abort the stream (drops what PortAudio holds) and restart it, empty (speaker thread)."""
        if self._stream is None or not self._dirty:
            return
        self._dirty = False
        pa = self.portaudio.pyaudio
        try:
            # PyAudio has no public abort (stop_stream() would play the buffer out first), and its
            # start_stream() skips a stream it believes running: use the C module for both
            pa.pa.abort_stream(self._stream._stream)
            pa.pa.start_stream(self._stream._stream)
        except OSError as exc:
            raise AudioError(f"speaker abort failed: {exc}") from None
        self._new_resampler()

    def close(self) -> None:
        """Close the stream (speaker thread)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
            self.portaudio.release()
