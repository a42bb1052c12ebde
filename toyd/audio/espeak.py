"""espeak-ng, run from one place for every caller (the tts_espeak plugin, the demo, tests).

The text always goes on stdin, never on the command line: a reply such as
"-5 degrees outside" or "-f/etc/hostname" is text to speak, not an option. Every way the
program can fail (missing, killed, hung, no audio) ends in one :class:`BackendError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import struct
import subprocess
from collections.abc import AsyncGenerator

from ..errors import BackendError
from .pcm import SAMPLE_RATE

BINARY = "espeak-ng"


@dataclasses.dataclass(frozen=True)
class Voice:
    """How espeak-ng speaks: voice name (``en-us+f3``, ``ko``), words per minute, pitch, loudness."""

    name: str = "en-us"
    rate: int = 150
    pitch: int = 50
    amplitude: int = 100


def command(voice: Voice, binary: str = BINARY) -> list[str]:
    """The argv that reads text from stdin and writes a WAV stream to stdout."""
    return [
        binary,
        "--stdout",
        "-v",
        voice.name,
        "-s",
        str(voice.rate),
        "-p",
        str(voice.pitch),
        "-a",
        str(voice.amplitude),
    ]


def find(binary: str = BINARY) -> str:
    """The program's path, or a BackendError that says how to install it."""
    path = shutil.which(binary)
    if path is None:
        raise BackendError(f"{binary} is not installed (apt-get install espeak-ng)")
    return path


def speak_wav(text: str, voice: Voice, *, binary: str = BINARY, timeout: float = 30.0) -> bytes:
    """The WAV espeak-ng writes for ``text`` (its own rate, blocking)."""
    argv = command(voice, find(binary))
    try:
        done = subprocess.run(
            argv,
            input=text.encode("utf-8") + b"\n",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackendError(f"espeak-ng took longer than {timeout:g} s") from None
    except OSError as exc:
        raise BackendError(f"cannot run {binary}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise BackendError(
            f"espeak-ng exited with {done.returncode} for voice {voice.name!r}: "
            f"{done.stderr.decode(errors='replace').strip()[:200]}"
        )
    return done.stdout


def speak(text: str, voice: Voice, *, binary: str = BINARY, timeout: float = 30.0) -> bytes:
    """``text`` as 16 kHz mono int16 PCM (blocking; run it in an executor)."""
    from ..errors import AudioFileError
    from .wav import read_wav_bytes

    try:
        return read_wav_bytes(
            speak_wav(text, voice, binary=binary, timeout=timeout), source="espeak-ng"
        )
    except AudioFileError as exc:
        raise BackendError(
            f"espeak-ng wrote no usable audio for voice {voice.name!r}: {exc}"
        ) from None


async def stream(
    text: str,
    voice: Voice,
    *,
    binary: str = BINARY,
    timeout: float = 15.0,
    sample_rate: int = SAMPLE_RATE,
) -> AsyncGenerator[bytes, None]:
    """``text`` as mono int16 chunks at ``sample_rate`` while espeak-ng writes them.

    Closing the generator (barge-in) kills the process; ``timeout`` bounds the whole sentence.
    """
    import numpy as np
    import soxr

    try:
        proc = await asyncio.create_subprocess_exec(
            *command(voice, binary),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise BackendError(f"cannot run {binary}: {exc.strerror or exc}") from None
    assert proc.stdin and proc.stdout
    try:
        try:
            proc.stdin.write(text.encode("utf-8") + b"\n")
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died at once: the missing header below says so
        in_rate = await asyncio.wait_for(_read_wav_header(proc.stdout), timeout)
        resampler = (
            soxr.ResampleStream(in_rate, sample_rate, 1, dtype="int16")
            if in_rate != sample_rate
            else None
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        carry = b""
        while True:
            chunk = await asyncio.wait_for(
                proc.stdout.read(8192), max(deadline - loop.time(), 0.01)
            )
            last = not chunk
            data = carry + chunk
            carry = data[len(data) // 2 * 2 :]
            samples = np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)
            out = resampler.resample_chunk(samples, last=last) if resampler else samples
            if len(out):
                yield out.tobytes()
            if last:
                break
        code = await asyncio.wait_for(proc.wait(), 2)
        if code != 0:
            err = (await proc.stderr.read()).decode(errors="replace").strip() if proc.stderr else ""
            raise BackendError(
                f"espeak-ng exited with {code} for voice {voice.name!r}: {err[:200]}"
            )
    except TimeoutError:
        raise BackendError(f"espeak-ng took longer than {timeout:g} s for one sentence") from None
    finally:
        await _reap(proc)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill it if still running and read its pipes to the end, so their transports close now
    (a reply cut short by a barge-in leaves audio unread)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                await asyncio.wait_for(pipe.read(), 2)


async def _read_wav_header(stream: asyncio.StreamReader) -> int:
    """Skip the RIFF header espeak-ng writes (sizes unknown while streaming); returns the rate."""
    try:
        riff = await stream.readexactly(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise BackendError("espeak-ng did not write a WAV stream")
        rate = 22050
        while True:
            chunk_id, size = struct.unpack("<4sI", await stream.readexactly(8))
            if chunk_id == b"data":
                return rate
            body = await stream.readexactly(size)
            if chunk_id == b"fmt ":
                channels, rate = struct.unpack("<HI", body[2:8])
                if channels != 1:
                    raise BackendError(f"espeak-ng wrote {channels} channels, expected 1")
    except asyncio.IncompleteReadError:
        raise BackendError("espeak-ng ended before writing any audio (bad voice name?)") from None
