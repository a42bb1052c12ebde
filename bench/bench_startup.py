"""Start-up benchmark: `toyd device --simulate` start → READY (sd_notify), RSS at READY, SIGTERM → exit.

Goal (issue: core): start → READY ≤ 2 s on this machine; stop on SIGTERM within 2 s.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from table import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_run(config: Path, tmp: Path) -> tuple[float, float, float]:
    sock_path = tmp / "notify.sock"
    sock_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "toyd", "device", "--simulate", "-c", str(config),
                                 "--state-dir", str(tmp / "state")], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            ready = time.monotonic() - started
            time.sleep(0.5)  # settle: lazy allocations after READY count too
            rss = rss_mb(proc.pid)
            stop_started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            stop = time.monotonic() - stop_started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return ready, rss, stop


def main() -> int:
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "config" / "toyd.yaml"
    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp:
        runs = [one_run(config, Path(tmp)) for _ in range(RUNS)]
    ready, rss, stop = zip(*runs)
    print(f"toyd device --simulate -c {config.relative_to(ROOT) if config.is_relative_to(ROOT) else config}, {RUNS} runs")
    print_table(
        ["measure", "median", "max", "goal"],
        [
            ["start -> READY (s)", statistics.median(ready), max(ready), "<= 2 s"],
            ["RSS at READY (MB)", statistics.median(rss), max(rss), "-"],
            ["SIGTERM -> exit (s)", statistics.median(stop), max(stop), "<= 2 s"],
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
