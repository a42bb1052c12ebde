"""Benchmark the gateway under a flood of unauthenticated sockets, at a 1 024-file limit.

The gateway runs as a real ``toyd cloud`` process (gateway + the echochain stand-in AI
chain) whose open-file limit is set to 1 024 (soft and hard, like systemd's default).
This script, on loopback only, keeps ``--per-kind`` sockets of each kind open at once,
each reconnecting as soon as it is dropped:

  * idle: a TCP connection that never sends a byte;
  * half-open: an HTTP upgrade request that never ends (slowloris);
  * bad login: a complete upgrade with a wrong token, answered 401, again and again.

(The attackers run in a process of their own: bench/flood_attackers.py.)

A legitimate toy connects as the toy's cloud link does (5 s per attempt, retrying after
0.5 s, 1 s, ... like its back-off; the time of every attempt counts) and completes a turn (1.3 s of
espeak-ng speech as Opus, in real time, until the reply's ``tts stop``), first on the
idle gateway, then during the flood. Figures: connect and turn times, the slowdown,
and how fast the gateway's log grew during the flood.

Run:  python -m bench gateway_flood  [--per-kind 400] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from flood_attackers import why
from table import print_table
from toyd.audio import frames
from toyd.audio.opus import OpusEncoder
from toyd.testing import espeak_pcm, free_port

FILE_LIMIT = 1024
TOKEN = "bench-flood-token"
HELLO = {
    "type": "hello",
    "version": 1,
    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 20},
}


def speech_packets() -> list[bytes]:
    encoder = OpusEncoder(bitrate=24000)
    return [encoder.encode(f) for f in frames(espeak_pcm("tell me a story"))]


# Why each failed connection attempt of the legit toy failed, and after how long.
ATTEMPT_FAILURES: list[tuple[str, float]] = []


async def toy_connect(port: int) -> tuple[object, int]:
    """Connect as the toy's cloud link does: 5 s per attempt, then back off 0.5 s doubling; within 10 s."""
    deadline, backoff, attempts = time.perf_counter() + 10, 0.5, 0
    while True:
        attempts += 1
        attempt_started = time.perf_counter()
        try:
            conn = await connect(
                f"ws://127.0.0.1:{port}",
                proxy=None,
                compression=None,
                open_timeout=5,
                additional_headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Device-Id": "toy-1",
                    "Protocol-Version": "1",
                },
            )
            return conn, attempts
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            ATTEMPT_FAILURES.append((why(exc), (time.perf_counter() - attempt_started) * 1000))
            if time.perf_counter() + backoff > deadline:
                raise
            await asyncio.sleep(backoff)
            backoff *= 2


STAGES: list[dict[str, float]] = []  # where each turn's time went (ms since it started)


async def legit_turn(port: int, packets: list[bytes]) -> tuple[float, float, int]:
    """(connect ms, connect-to-reply-end ms, connection attempts) for one toy and one turn."""
    started = time.perf_counter()
    stage: dict[str, float] = {}

    def mark(name: str) -> None:
        stage[name] = (time.perf_counter() - started) * 1000

    conn, attempts = await toy_connect(port)
    mark("open")
    try:
        await conn.send(json.dumps(HELLO))
        while json.loads(await asyncio.wait_for(conn.recv(), 10)).get("type") != "hello":
            pass
        connected = time.perf_counter()
        mark("hello")
        await conn.send(
            json.dumps({"type": "listen", "state": "start", "mode": "push_to_talk", "turn_id": "t"})
        )
        for k, packet in enumerate(packets):
            delay = connected + k * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await conn.send(packet)
        await conn.send(json.dumps({"type": "listen", "state": "stop", "turn_id": "t"}))
        mark("spoken")
        while True:
            frame = await asyncio.wait_for(conn.recv(), 30)
            stage.setdefault("first reply", (time.perf_counter() - started) * 1000)
            if (
                isinstance(frame, str)
                and json.loads(frame).get("type") == "tts"
                and '"stop"' in frame
            ):
                break
        mark("end")
        STAGES.append(stage)
        return (connected - started) * 1000, (time.perf_counter() - started) * 1000, attempts
    finally:
        await conn.close()


async def loop_lag(port: int) -> dict[str, float]:
    """The gateway's event-loop lag percentiles (ms) over the last minute, from /healthz."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        return json.loads(body)["loop_lag_ms"]
    finally:
        writer.transport.abort()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (children excluded)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return len(data), data.count(b"\n")


async def run(per_kind: int, duration: float) -> int:
    packets = speech_packets()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="toyd-flood-") as tmp:
        config, log = Path(tmp) / "cloud.yaml", Path(tmp) / "cloud.log"
        config.write_text(
            yaml.safe_dump(
                {
                    "role": "cloud",
                    "device_id": "cloud",
                    "state_dir": tmp,
                    "plugins": ["gateway", "echochain"],
                    "gateway": {"port": port, "tokens": {"toy-1": TOKEN}, "alert_log": ""},
                }
            )
        )
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    "prlimit",
                    f"--nofile={FILE_LIMIT}:{FILE_LIMIT}",
                    "--",
                    sys.executable,
                    "-m",
                    "toyd",
                    "cloud",
                    "-c",
                    str(config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            for _ in range(600):
                if b"READY" in log.read_bytes():
                    break
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError("the cloud did not start: " + log.read_text()[-2000:])
            unloaded = [await legit_turn(port, packets) for _ in range(3)]
            ATTEMPT_FAILURES.clear()  # only those during the flood are figures
            bytes0, lines0 = log_size(log)
            gateway_pid = proc.pid  # prlimit execs the command: the same process
            cpu0 = cpu_seconds(gateway_pid)
            t0 = time.monotonic()
            attackers = await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__).with_name("flood_attackers.py")),
                str(port),
                str(per_kind),
                str(duration),
                stdout=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(3)  # let the flood build up
            loaded: list[tuple[float, float, int]] = []
            failures: list[str] = []
            while time.monotonic() - t0 < duration:
                try:
                    loaded.append(await legit_turn(port, packets))
                except Exception as exc:  # noqa: BLE001 - a failed turn is a figure here
                    failures.append(f"{type(exc).__name__}: {exc}"[:80])
            flood = json.loads((await asyncio.wait_for(attackers.communicate(), 60))[0])
            lag = await loop_lag(port)
            elapsed = time.monotonic() - t0
            gateway_cpu = cpu_seconds(gateway_pid) - cpu0
            bytes1, lines1 = log_size(log)
        finally:
            proc.terminate()
            proc.wait(20)
        grown = log.read_bytes()[bytes0:bytes1].decode(errors="replace")
    base_connect = statistics.median(c for c, _, _ in unloaded)
    base_turn = statistics.median(t for _, t, _ in unloaded)
    rows = [["unloaded", 3, 0, 1, base_connect, base_turn, 1.0]]
    if loaded:
        worst = max(t for _, t, _ in loaded)
        rows.append(
            [
                "flood",
                len(loaded),
                len(failures),
                max(a for _, _, a in loaded),
                statistics.median(c for c, _, _ in loaded),
                worst,
                worst / base_turn,
            ]
        )
    else:
        rows.append(["flood", 0, len(failures), 0, float("nan"), float("nan"), float("nan")])
    print_table(
        [
            "legit toy",
            "turns",
            "failed",
            "attempts (max)",
            "connect ms (median)",
            "turn ms (worst)",
            "x unloaded",
        ],
        rows,
    )
    print()
    print_table(
        ["flood", "value"],
        [
            ["sockets per kind (idle, half-open, bad login)", per_kind],
            ["attacker sockets open at once (max)", flood["max_open"]],
            ["attacker connections made", flood["connects"]],
            ["bad logins answered 401", flood["refused_401"]],
            ["attacker connections reset as they were made", flood["reset_at_connect"]],
            ["attacker connect failures", flood["connect_errors"]],
            *[[f"  {reason}", count] for reason, count in flood["errors"].items()],
            ["gateway open-file limit", FILE_LIMIT],
            ["flood seconds", round(elapsed, 1)],
            ["gateway CPU seconds during the flood", round(gateway_cpu, 1)],
            ["attackers' CPU seconds (same machine)", round(flood["cpu_s"], 1)],
            ["gateway loop lag ms, last minute (p50, p95, max)", _lag(lag)],
            ["machine load average (1 min)", round(os.getloadavg()[0], 1)],
            ["log lines during the flood", lines1 - lines0],
            ["log lines per second", round((lines1 - lines0) / elapsed, 2)],
            ["log bytes during the flood", bytes1 - bytes0],
            ["'Too many open files' in the log", grown.count("Too many open files")],
        ],
    )
    for failure in failures[:5]:
        print("failed turn:", failure)
    print("\nstages of each turn (ms since it started):")
    for stage in STAGES:
        print("  " + ", ".join(f"{name} {ms:.0f}" for name, ms in stage.items()))
    print(
        f"\nfailed connection attempts of the legit toy during the flood: {len(ATTEMPT_FAILURES)}"
    )
    by_reason = collections.defaultdict(list)
    for reason, ms in ATTEMPT_FAILURES:
        by_reason[reason].append(ms)
    for reason, times in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        print(f"  {len(times)} x {reason}, after {', '.join(f'{t:.0f}' for t in times[:8])} ms")
    print("\nlog lines during the flood (first 20):")
    for line in grown.splitlines()[:20]:
        print("  " + line[:160])
    return 0


def _lag(lag: dict[str, float]) -> str:
    return ", ".join(str(lag.get(k, "?")) for k in ("p50", "p95", "max"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--per-kind", type=int, default=400, help="sockets of each of the three kinds (default 400)"
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of flood (default 20)"
    )
    args = parser.parse_args()
    return asyncio.run(run(args.per_kind, args.duration))


if __name__ == "__main__":
    sys.exit(main())
