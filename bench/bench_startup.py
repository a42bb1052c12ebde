"""Start-up benchmark: start → READY, RSS and SIGTERM → exit of `toyd device --simulate`,
and wake latency of a toy whose microphone is a FIFO.

- start → READY (sd_notify), RSS at READY, SIGTERM → exit, with the example device
  config (`config/toyd.yaml`) unless a config file is given;
- `toyd --version`: what the command line costs before it does anything;
- wake latency: end of "hey jarvis" written into the FIFO → the daemon logs the wake
  word. The writer is a real-time producer (20 ms a frame, like `arecord`). "queued"
  starts writing as soon as the microphone opens the FIFO (audio waits while the other
  plugins start); "after READY" starts writing once the daemon is ready.

Bytecode is cached as on an installed toy (pip compiles it at install): the runs drop
PYTHONDONTWRITEBYTECODE and one warm-up run per tree writes the .pyc files first.

`--baseline REV` measures the git revision REV as well (a temporary worktree, imported
through PYTHONPATH), run by run interleaved with this tree, so machine load hits both
alike: `python bench/bench_startup.py --baseline 6cb4860` gives the before/after table.
Both trees then run the same config, one both understand: the given config without the
plugins REV does not have for the device role (`toyd plugins` of each tree) and
their sections. The
table's heading names the plugins left out; both trees' `toyd check-config` must accept
the result, else the benchmark stops and says why.

Goals: start → READY ≤ 0.5 s with config/toyd.yaml; SIGTERM → exit ≤ 2 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from table import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
WAKE_RUNS = int(os.environ.get("BENCH_WAKE_RUNS", "3"))
FRAME = 640  # 20 ms of 16 kHz s16le
DEVICE = ["device", "--simulate"]


@dataclasses.dataclass
class Tree:
    """A toyd source tree to run: this one, or a baseline revision."""

    label: str
    env: dict[str, str]

    def popen(
        self, args: list[str], tmp: Path, env: dict[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        # cwd is a scratch directory, so neither tree shadows the other through sys.path[0]
        command = [sys.executable, "-m", "toyd", *args]
        return subprocess.Popen(command, cwd=tmp, env={**self.env, **(env or {})}, **kwargs)  # type: ignore[call-overload]


def baseline_tree(rev: str, tmp: Path) -> Tree:
    """REV checked out in a worktree, importable ahead of the installed (editable) tree."""
    src = tmp / f"baseline-{rev}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(src), rev], check=True
    )
    path = tmp / "baseline-path"
    path.mkdir()
    # setup.py installs plugins/ as toyd_plugins
    (path / "toyd_plugins").symlink_to(src / "plugins")
    # REV's own plugin list: entry points are found first on PYTHONPATH, so the installed
    # tree's list (plugins REV does not have) stays out of its registry
    meta = path / "toyd-0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: toyd\nVersion: 0\n")
    groups = pyproject(rev)["project"]["entry-points"]
    (meta / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items())
            for group, eps in groups.items()
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = f"{path}{os.pathsep}{src}"
    return Tree(f"baseline {rev}", env)


def pyproject(rev: str) -> dict[str, Any]:
    """REV's pyproject.toml."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:pyproject.toml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tomllib.loads(text)


def device_plugins(tree: Tree, tmp: Path) -> set[str]:
    """The plugins ``tree`` has for the device role, from its `toyd plugins` table."""
    out = subprocess.run(
        [sys.executable, "-m", "toyd", "plugins"],
        cwd=tmp,
        env=tree.env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    return {row[0] for row in rows if len(row) > 2 and "device" in row[2].split(",")}


def shared_config(config: Path, known: set[str], tmp: Path) -> tuple[Path, list[str]]:
    """``config`` without the plugins outside ``known`` and their sections; and those left out."""
    data = yaml.safe_load(config.read_text())
    dropped = [name for name in data.get("plugins", []) if name not in known]
    data["plugins"] = [name for name in data.get("plugins", []) if name in known]
    for name in dropped:
        data.pop(name, None)
    shared = tmp / "shared.yaml"
    shared.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return shared, dropped


def check_config(tree: Tree, config: Path, tmp: Path) -> str | None:
    """None if ``tree`` accepts ``config``, else what `toyd check-config` said."""
    proc = tree.popen(
        ["check-config", str(config)], tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = proc.communicate(timeout=60)
    return None if proc.returncode == 0 else out.decode(errors="replace").strip()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process used so far: load-independent."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM → exit, seconds."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - started


def startup_run(tree: Tree, config: Path, tmp: Path) -> tuple[float, float, float, float]:
    sock_path = tmp / "notify.sock"
    sock_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(60)
        started = time.monotonic()
        proc = tree.popen(
            DEVICE + ["-c", str(config), "--state-dir", str(tmp / "state")],
            tmp,
            env={"NOTIFY_SOCKET": str(sock_path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            try:
                while b"READY=1" not in sock.recv(4096):
                    pass
            except TimeoutError:
                raise SystemExit(f"{tree.label}: no READY within 60 s with {config}") from None
            ready = time.monotonic() - started
            cpu = cpu_s(proc.pid)
            time.sleep(0.5)  # settle: lazy allocations after READY count too
            rss = rss_mb(proc.pid)
        finally:
            took = stop(proc)
    return ready, cpu, rss, took


def version_run(tree: Tree, tmp: Path) -> float:
    started = time.monotonic()
    proc = tree.popen(["--version"], tmp, stdout=subprocess.DEVNULL)
    proc.wait(60)
    return time.monotonic() - started


def wake_audio() -> tuple[bytes, int]:
    """0.5 s silence, "hey jarvis", 1.5 s silence; and the byte offset where the voice ends."""
    import numpy as np

    from toyd.testing import espeak_pcm

    speech = espeak_pcm("hey jarvis", voice="en-us", rate=150)
    loud = np.flatnonzero(np.abs(np.frombuffer(speech, "<i2")) > 500)
    voice_end = 2 * (int(loud[-1]) + 1) if len(loud) else len(speech)  # espeak pads with quiet
    speech += bytes(-len(speech) % FRAME)
    lead, tail = bytes(16000), bytes(48000)
    return lead + speech + tail, len(lead) + voice_end


WAKE_CONFIG = """\
role: device
device_id: bench-toy
plugins: [audio, vad, wakeword]
audio:
  backend: file
  file: {{input: {fifo}, input_format: raw}}
"""


class LogWatch:
    """Reads the daemon's stderr; remembers when a line containing ``needle`` arrived."""

    def __init__(self, stream: object, needle: bytes) -> None:
        self.needle = needle
        self.seen_at: float | None = None
        self.seen = threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            if self.seen_at is None and self.needle in line:
                self.seen_at = time.monotonic()
                self.seen.set()


def wake_run(
    tree: Tree, tmp: Path, audio: bytes, speech_end: int, *, after_ready: bool
) -> float | None:
    """Seconds from the end of the wake word in the FIFO to the daemon's "wake word" log line.

    None when the daemon did not hear it (on a loaded machine the writer can fall behind
    real time, and silence then fills the gap in the middle of the words).
    """
    fifo = tmp / "mic"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    config = tmp / "wake.yaml"
    config.write_text(WAKE_CONFIG.format(fifo=fifo))
    sock_path = tmp / "notify.sock"
    sock_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(60)
        proc = tree.popen(
            DEVICE + ["-c", str(config), "--state-dir", str(tmp / "state")],
            tmp,
            env={"NOTIFY_SOCKET": str(sock_path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        watch = LogWatch(proc.stderr, b"wake word hey_jarvis")
        try:
            if after_ready:
                while b"READY=1" not in sock.recv(4096):
                    pass
            # the open returns once the microphone holds the read end
            with open(fifo, "wb", buffering=0) as pipe:
                end_written = _write_realtime(pipe, audio, speech_end)
            watch.seen.wait(10)
        finally:
            stop(proc)
    return None if watch.seen_at is None else watch.seen_at - end_written


def _write_realtime(pipe: object, audio: bytes, speech_end: int) -> float:
    """Write 20 ms a frame on the clock; returns when the end of the speech was written."""
    start = time.monotonic()
    end_written = 0.0
    for i, pos in enumerate(range(0, len(audio), FRAME)):
        delay = start + i * FRAME / 32000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pipe.write(audio[pos : pos + FRAME])  # type: ignore[attr-defined]
        if pos < speech_end <= pos + FRAME:
            end_written = time.monotonic()
    return end_written


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", nargs="?", type=Path, default=ROOT / "config" / "toyd.yaml")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure this git revision, interleaved; both trees run the config "
        "without the plugins REV does not have for the device role",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as name:
        tmp = Path(name)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        trees = [Tree("this tree", env)]
        config, dropped = args.config, []
        if args.baseline:
            trees.insert(0, baseline_tree(args.baseline, tmp))
            known = set.intersection(*(device_plugins(tree, tmp) for tree in trees))
            config, dropped = shared_config(args.config, known, tmp)
        try:
            for tree in trees:
                error = check_config(tree, config, tmp)
                if error:
                    print(f"{tree.label} does not accept the shared config:\n{error}")
                    return 1
            rows = measure(trees, config, tmp)
        finally:
            if args.baseline:
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(ROOT),
                        "worktree",
                        "remove",
                        "--force",
                        str(tmp / f"baseline-{args.baseline}"),
                    ],
                    check=False,
                )
    shown = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
    if dropped:
        shown = f"{shown} without {', '.join(dropped)} ({args.baseline} has no such device plugin)"
    print(
        f"toyd device --simulate -c {shown}: {RUNS} runs; "
        f"wake latency: {WAKE_RUNS} runs per case; medians"
    )
    print_table(["measure", *(t.label for t in trees), "goal"], rows)
    return 0


def measure(trees: list[Tree], config: Path, tmp: Path) -> list[list[object]]:
    results: dict[str, dict[str, list[float]]] = {t.label: {} for t in trees}

    def add(tree: Tree, key: str, value: float) -> None:
        results[tree.label].setdefault(key, []).append(value)

    audio, speech_end = wake_audio()
    for tree in trees:
        startup_run(tree, config, tmp)  # warm-up: writes the bytecode caches
    for _ in range(RUNS):
        for tree in trees:
            ready, cpu, rss, took = startup_run(tree, config, tmp)
            add(tree, "ready", ready)
            add(tree, "cpu", cpu)
            add(tree, "rss", rss)
            add(tree, "stop", took)
            add(tree, "version", version_run(tree, tmp))
    for _ in range(WAKE_RUNS):
        for tree in trees:
            for key, after_ready in (("wake_queued", False), ("wake_ready", True)):
                latency = wake_run(tree, tmp, audio, speech_end, after_ready=after_ready)
                if latency is None:
                    add(tree, "wake_missed", 1)
                else:
                    add(tree, key, latency * 1000)
    labels = [
        ("ready", "start -> READY (s)", "<= 0.5 s"),
        ("cpu", "CPU used to READY (s)", "-"),
        ("rss", "RSS at READY (MB)", "-"),
        ("stop", "SIGTERM -> exit (s)", "<= 2 s"),
        ("version", "toyd --version (s)", "-"),
        ("wake_queued", "wake latency, audio queued at start (ms)", "-"),
        ("wake_ready", "wake latency, audio after READY (ms)", "-"),
    ]
    rows: list[list[object]] = [
        [label, *(statistics.median(results[t.label].get(key, [math.nan])) for t in trees), goal]
        for key, label, goal in labels
    ]
    missed = [len(results[t.label].get("wake_missed", [])) for t in trees]
    rows.append(["wake words missed", *missed, "0"])
    return rows


if __name__ == "__main__":
    sys.exit(main())
