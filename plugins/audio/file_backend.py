"""The file/pipe sound device: a WAV or raw stream as microphone, a WAV file as speaker.

Used by ``toyd device --simulate``, the tests and demos: no sound card needed, yet the
rest of the daemon sees exactly what a real microphone and speaker would give it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from toyd.audio.pcm import FRAME_BYTES, FRAME_MS
from toyd.audio.wav import WavWriter, is_raw, read_wav
from toyd.errors import AudioFileError

from .device import Emit

log = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000
SILENCE = bytes(FRAME_BYTES)


class Pacer:
    """Waits out 20 ms per frame against a monotonic clock, without drift or bursts."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._next = time.monotonic()

    async def tick(self) -> None:
        """Sleep until the next frame is due; after a long stall, start afresh (no burst)."""
        self._next += FRAME_S
        delay = self._next - time.monotonic()
        if delay < -0.2:
            self.reset()
        elif delay > 0:
            await asyncio.sleep(delay)


class FileMicrophone:
    """Frames from a WAV, a raw file or a FIFO.

    A file is paced in real time (unless ``realtime`` is off): it stands for a
    microphone. A pipe is not paced, its writer is the clock: every whole frame waiting
    is passed on at once, so audio queued before the loop started, or behind a stall,
    is caught up instead of staying late. While the writer pauses, silence keeps
    coming at the microphone's pace, as from a real one.
    """

    name = "file"

    def __init__(
        self, path: str = "", *, fmt: str = "auto", realtime: bool = True, loop: bool = False
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.realtime = realtime
        self.loop = loop
        self._pcm = b""  # a whole file in memory (WAV or raw file)
        self._pos = 0
        self._pipe: _PipeReader | None = None
        self._pacer = Pacer()
        self._silence_due = 0.0  # pipe input: when a pausing writer gets filler silence

    async def open(self) -> None:
        """Load the configured input; an unreadable one is logged and replaced by silence."""
        if self.path:
            try:
                await self.switch(self.path, self.fmt)
            except AudioFileError as exc:
                log.error("microphone input %s; the microphone hears silence", exc)

    async def switch(self, path: str, fmt: str = "auto") -> None:
        """Read from ``path`` from now on; raises AudioFileError and keeps the old input if it is bad."""
        raw = fmt == "raw" or (fmt == "auto" and is_raw(path))
        if not path:
            await self._set(b"", None)
        elif raw and _is_stream(path):
            pipe = _PipeReader(path)
            await pipe.open()
            await self._set(b"", pipe)
        elif raw:
            data = await asyncio.to_thread(_read_raw, path)
            await self._set(data, None)
        else:
            data = await asyncio.to_thread(read_wav, path)
            await self._set(data, None)
        self.path = path
        log.info("microphone reads %s", path or "silence")

    async def _set(self, pcm: bytes, pipe: _PipeReader | None) -> None:
        old, self._pipe = self._pipe, pipe
        self._pcm, self._pos = pcm, 0
        if old is not None:
            old.close()

    def _next(self) -> tuple[bytes, bool]:
        """The next frame of a file input and whether it came from the input (False: filler silence)."""
        if self._pos >= len(self._pcm) and self.loop and self._pcm:
            self._pos = 0
        if self._pos < len(self._pcm):
            frame = self._pcm[self._pos : self._pos + FRAME_BYTES]
            self._pos += FRAME_BYTES
            return frame.ljust(FRAME_BYTES, b"\0"), True
        return SILENCE, False

    async def run(self, emit: Emit) -> None:
        """Emit frames until cancelled: the input, then silence (or the input again)."""
        self._pacer.reset()
        self._silence_due = time.monotonic() + FRAME_S
        while True:
            if self._pipe is not None:
                await self._from_pipe(self._pipe, emit)
                continue
            frame, real = self._next()
            emit(frame)
            if real and not self.realtime:
                await asyncio.sleep(0)  # let consumers run; no pacing
                self._pacer.reset()
            else:
                await self._pacer.tick()

    async def _from_pipe(self, pipe: _PipeReader, emit: Emit) -> None:
        """One step of a pipe input: a waiting frame at once, else silence when the writer is late."""
        frame = pipe.take(FRAME_BYTES)
        if frame:
            emit(frame)
            # the writer sets the pace; one frame of slack before silence fills a pause
            self._silence_due = time.monotonic() + 2 * FRAME_S
            await asyncio.sleep(0)  # let consumers run between caught-up frames
            return
        if await pipe.wait_frame(FRAME_BYTES, until=self._silence_due):
            return
        if self._pipe is pipe:
            emit(SILENCE)
            now = time.monotonic()
            self._silence_due += FRAME_S
            if self._silence_due < now - 0.2:  # after a long stall, start afresh (no burst)
                self._silence_due = now + FRAME_S

    async def close(self) -> None:
        """Close a pipe input."""
        await self._set(b"", None)


def _is_stream(path: str) -> bool:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _read_raw(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise AudioFileError(path, "no such file") from None
    except OSError as exc:
        raise AudioFileError(path, exc.strerror or str(exc)) from None
    return data[: len(data) - len(data) % 2]


class _PipeReader:
    """Reads a FIFO without blocking the loop; holding our own write end means no EOF between writers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.buffer = bytearray()
        self._fds: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived = asyncio.Event()  # set when data arrives or the pipe closes

    async def open(self) -> None:
        try:
            rfd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise AudioFileError(self.path, exc.strerror or str(exc)) from None
        self._fds = [rfd]
        with contextlib.suppress(OSError):  # character devices have no write end to hold
            self._fds.append(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(rfd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fds[0], 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            log.error("microphone pipe %s: %s", self.path, exc.strerror)
            self.close()
            return
        if (
            len(self.buffer) < 10 * 16000 * 2
        ):  # keep at most 10 s unplayed; a runaway writer must not eat memory
            self.buffer += data
        self._arrived.set()

    async def wait_frame(self, n: int, *, until: float) -> bool:
        """Wait until ``n`` bytes are waiting (True) or the monotonic time ``until`` (False)."""
        while len(self.buffer) < n:
            timeout = until - time.monotonic()
            if timeout <= 0:
                return False
            self._arrived.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
            except TimeoutError:
                return len(self.buffer) >= n
            if not self._fds:
                return False  # closed (or replaced by another input)
        return True

    def take(self, n: int) -> bytes:
        if len(self.buffer) < n:
            return b""
        chunk = bytes(self.buffer[:n])
        del self.buffer[:n]
        return chunk

    def close(self) -> None:
        if self._loop is not None and self._fds and not self._loop.is_closed():
            self._loop.remove_reader(self._fds[0])
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        self._arrived.set()  # a waiting reader moves on


class FileSpeaker:
    """Writes played frames to a 16 kHz WAV; a frame 'plays' for 20 ms when realtime."""

    name = "file"

    def __init__(self, path: str | os.PathLike[str], *, realtime: bool = True) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.frames_written = 0
        self.stopped_at = 0.0
        self._writer: WavWriter | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._min_generation = 0
        self._deadline = 0.0

    def open(self) -> None:
        """Create (truncate) the WAV file."""
        try:
            self._writer = WavWriter(self.path)
        except OSError as exc:
            raise AudioFileError(
                str(self.path), f"cannot write the speaker file: {exc.strerror or exc}"
            ) from None

    def write(self, pcm: bytes, generation: int) -> bool:
        """Append one frame unless interrupted, then wait out its playing time."""
        with self._lock:
            if generation < self._min_generation or self._writer is None:
                return False
            self._writer.write(pcm)
            self.frames_written += 1
            self._wake.clear()
        if self.realtime:
            now = time.monotonic()
            self._deadline = max(self._deadline, now) + len(pcm) / 32000
            if self._wake.wait(self._deadline - now):
                self._deadline = 0.0  # interrupted: the next response starts on a fresh clock
        return True

    def interrupt(self, generation: int) -> None:
        """No frame of an older generation is written after this returns."""
        with self._lock:
            self._min_generation = max(self._min_generation, generation)
            self.stopped_at = time.monotonic()
            self._wake.set()

    def discard(self) -> None:
        """Nothing is buffered beyond the frame being played."""

    def close(self) -> None:
        """Finish the WAV header."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
