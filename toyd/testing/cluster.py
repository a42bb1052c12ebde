"""A cloud bigger than one process, for tests and benchmarks: gateways behind a real HAProxy.

Starts N ``toyd cloud`` processes and Debian's ``haproxy`` with the project's example
config (``config/haproxy/haproxy.cfg``, its ports rewritten to free ones), all on loopback.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .helpers import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "haproxy" / "haproxy.cfg"


def haproxy_binary() -> str | None:
    """Debian's haproxy, if installed."""
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )


def render_haproxy(
    template: str, front_port: int, gateway_ports: list[int], admin_socket: Path
) -> str:
    """The example config with this run's ports: one ``server`` line per gateway."""
    text = re.sub(r"(?m)^(\s*bind )127\.0\.0\.1:\d+", rf"\g<1>127.0.0.1:{front_port}", template)
    text = re.sub(r"(?m)^\s*stats socket \S+", f"    stats socket {admin_socket}", text)
    text = re.sub(r"(?m)^\s*log stdout.*\n", "", text)
    servers = "".join(
        f"    server gw{i + 1} 127.0.0.1:{port} check\n" for i, port in enumerate(gateway_ports)
    )
    text = re.sub(r"(?m)(^\s*server gw\d+ .*\n)+", servers, text)
    return text


SPEECH_EXAMPLE = EXAMPLE.with_name("speech.cfg")


def render_speech_pool(template: str, pools: dict[str, tuple[int, list[int]]]) -> str:
    """The speech-pool example with this run's ports: ``{"stt": (front, [server ports]), ...}``.

    A section of the template not named in ``pools`` is left out.
    """
    head, *sections = re.split(r"(?m)^(?=listen )", template)
    out = [head]
    for section in sections:
        name = section.split()[1]
        if name not in pools:
            continue
        front, ports = pools[name]
        section = re.sub(r"(?m)^(\s*bind )\S+", rf"\g<1>127.0.0.1:{front}", section)
        servers = "".join(
            f"    server {name}{i + 1} 127.0.0.1:{port} check\n" for i, port in enumerate(ports)
        )
        out.append(re.sub(r"(?m)(^\s*server .*\n)+", servers, section))
    return "".join(out)


def start_haproxy(
    config: str, root: Path, port: int, timeout: float = 20.0
) -> subprocess.Popen[bytes]:
    """Run Debian's haproxy in the foreground with ``config``; returns once ``port`` listens."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed (apt-get install haproxy)")
    # two descriptors a proxied connection: the global maxconn must fit this machine's file limit
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1_000_000
    config = re.sub(
        r"(?m)^(global\n(?:\s+.*\n)*?\s*maxconn )\d+",
        rf"\g<1>{max(100, (limit - 100) // 2)}",
        config,
    )
    path = root / f"haproxy-{port}.cfg"
    path.write_text(config)
    log = open(root / f"haproxy-{port}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([binary, "-db", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with {proc.returncode}; see {root}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"haproxy did not listen on {port} within {timeout} s")


class Cluster:
    """``n`` gateway processes behind HAProxy; :meth:`kill` and :meth:`start_gateway` for failure tests."""

    def __init__(
        self,
        root: Path,
        n: int,
        sections: dict[str, Any],
        plugins: list[str],
        gateway: dict[str, Any],
        log_level: str = "info",
    ) -> None:
        self.root, self.n, self.log_level = root, n, log_level
        self.sections, self.plugins, self.gateway = sections, plugins, gateway
        self.ports = [free_port() for _ in range(n)]
        self.front_port = free_port()
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n
        self.haproxy: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.front_port}"

    def config(self, i: int) -> Path:
        cfg = {
            "role": "cloud",
            "device_id": f"gw{i + 1}",
            "plugins": self.plugins,
            "state_dir": str(self.root / f"gw{i + 1}"),
            "log_level": self.log_level,
            "gateway": {
                "host": "127.0.0.1",
                "port": self.ports[i],
                "trusted_proxies": ["127.0.0.1"],
                "public_url": self.url,
                **self.gateway,
            },
            **self.sections,
        }
        path = self.root / f"gw{i + 1}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start_gateway(self, i: int, timeout: float = 60.0) -> None:
        """Start (or restart) gateway ``i`` and wait until its /healthz answers."""
        log = open(self.root / f"gw{i + 1}.log", "ab")  # noqa: SIM115 - handed to the child
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "toyd", "cloud", "-c", str(self.config(i))],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_health(self.ports[i], self.procs[i], timeout)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(self.n):
            self.start_gateway(i)
        config = render_haproxy(
            EXAMPLE.read_text(), self.front_port, self.ports, self.root / "admin.sock"
        )
        self.haproxy = start_haproxy(config, self.root, self.front_port)
        self._wait_health(self.front_port, self.haproxy, 20)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Kill gateway ``i`` (SIGKILL: no goodbye to its toys)."""
        proc = self.procs[i]
        if proc is not None:
            proc.send_signal(sig)
            proc.wait(20)
            self.procs[i] = None

    def health(self, port: int) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return json.load(answer)

    def sessions(self) -> list[int]:
        """Connected toys per running gateway (0 for a dead one)."""
        counts = []
        for i, port in enumerate(self.ports):
            try:
                counts.append(int(self.health(port)["sessions"]) if self.procs[i] else 0)
            except OSError:
                counts.append(0)
        return counts

    def stop(self) -> None:
        for i in range(self.n):
            self.kill(i, signal.SIGTERM)
        if self.haproxy is not None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
            self.haproxy = None

    def _wait_health(self, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"process on port {port} exited with {proc.returncode}; see {self.root}"
                )
            try:
                self.health(port)
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(
            f"nothing answered /healthz on port {port} within {timeout} s; see {self.root}"
        )
