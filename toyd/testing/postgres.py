"""A private PostgreSQL server for tests: its own data directory and a free loopback port.

Uses the server binaries of Debian's ``postgresql`` package. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` user (which that package creates).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .helpers import free_port


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


class PrivatePostgres:
    """One throw-away cluster; :meth:`stop` and :meth:`start` simulate a server restart."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self.data = root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        # exec'd as that user directly (no runuser in between), so signals reach the server
        self._as_user: dict[str, str] = (
            {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if self._as_user:
            shutil.chown(self.root, "postgres")
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            **self._as_user,
        )

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - kept open for the server's life
        self.proc = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=log,
            cwd=self.root,
            **self._as_user,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.proc.returncode}: {self.log_tail()}"
                )
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"postgres did not accept connections within {timeout} s: {self.log_tail()}"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (SIGINT, clean) or ``immediate`` (SIGQUIT, like a crash)."""
        if self.proc is None:
            return
        self.proc.send_signal({"fast": 2, "immediate": 3}[mode])
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-400:] if path.exists() else ""


@contextlib.contextmanager
def start_postgres() -> Iterator[PrivatePostgres]:
    """Run a private PostgreSQL on a free loopback port until the block ends."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    with tempfile.TemporaryDirectory(prefix="toyd-pg-") as tmp:
        server = PrivatePostgres(bindir, Path(tmp), free_port())
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop()
