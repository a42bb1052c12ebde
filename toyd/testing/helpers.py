"""Real components for tests: a private Mosquitto, espeak-ng speech, a running daemon."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..app import App
from ..config import validate
from ..daemon import Daemon
from ..registry import Registry

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def start_mosquitto(
    port: int | None = None, extra_conf: str = ""
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run a private Mosquitto on 127.0.0.1:``port`` until the block ends."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="toyd-mqtt-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra_conf}\n"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _wait_port(port, proc)
            yield proc, port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"mosquitto did not listen on {port} within {timeout} s")


def espeak_pcm(
    text: str, *, voice: str = "en-us", rate: int = 150, pitch: int = 50, sample_rate: int = 16000
) -> bytes:
    """Speak ``text`` with espeak-ng; 16-bit mono PCM at ``sample_rate`` (resampled by sox)."""
    from ..audio import espeak

    wav = espeak.speak_wav(text, espeak.Voice(name=voice, rate=rate, pitch=pitch))
    out = subprocess.run(
        [
            "sox",
            "-t",
            "wav",
            "-",
            "-t",
            "raw",
            "-r",
            str(sample_rate),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-",
        ],
        input=wav,
        check=True,
        capture_output=True,
    )
    return out.stdout


async def wait_for(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Poll ``predicate`` until it returns something truthy; bounded by ``timeout``."""

    async def poll() -> T:
        while not (value := predicate()):
            await asyncio.sleep(interval)
        return value

    return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def running_daemon(
    config: Mapping[str, Any],
    *,
    state_dir: Path,
    extra_plugins: Mapping[str, Callable[[], Any]] | None = None,
    simulate: bool = True,
    entry_points: bool = True,
) -> AsyncIterator[App]:
    """Start a real daemon from a config mapping; stop it when the block ends."""
    registry = Registry(extra_plugins, entry_points=entry_points)
    data = {"state_dir": str(state_dir), **config}
    cfg = validate(data, registry.schema, source="<test>", known_plugins=registry.names)
    daemon = Daemon(cfg, registry=registry, simulate=simulate)
    try:
        app = await daemon.start()
    except BaseException:
        await daemon.stop()  # release what started (the outbox thread, plugins) before re-raising
        raise
    try:
        yield app
    finally:
        await daemon.stop()


async def next_event(
    sub: Any, kind: type[T], timeout: float = 5.0, where: Callable[[T], bool] = lambda e: True
) -> T:
    """The next event of ``kind`` (matching ``where``) from a subscription, bounded."""

    async def find() -> T:
        while True:
            event = await sub.get()
            if isinstance(event, kind) and where(event):
                return event

    return await asyncio.wait_for(find(), timeout)


Predicate = Callable[[], Awaitable[bool]]
