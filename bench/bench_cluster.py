"""Benchmark the cloud beyond one process: toys behind HAProxy across several gateways.

Everything runs on loopback: a private PostgreSQL (the alert log), N ``toyd cloud``
gateway processes with the echo chain, and Debian's HAProxy with the example config
(config/haproxy/haproxy.cfg). This process is the fleet: it connects ``--toys`` idle toys,
then ``--turns`` of them talk at the same moment (real speech, Opus, real time), then one
gateway is killed and its toys reconnect the way toyd's cloud link does (0.5 s doubling,
±25 % jitter). The same fleet against one gateway without HAProxy is the baseline.

Figures: gateway overhead per turn (end of speech → first reply frame minus time in the
AI hooks, from ``tts stop.latency``) p50/p95; end of speech → first audio; reconnect time
after a kill p50/p95/max; gateway CPU per connected idle toy; RSS per gateway.

Run:  python -m bench cluster   (or bench/bench_cluster.py --toys 2000 --turns 40 --gateways 3)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import headers, pct, proc_stats  # noqa: E402
from table import print_table  # noqa: E402
from toyd.asyncutil import backoff_delays  # noqa: E402
from toyd.audio import frames  # noqa: E402
from toyd.audio.opus import OpusEncoder  # noqa: E402
from toyd.testing import espeak_pcm  # noqa: E402
from toyd.testing.cluster import Cluster, haproxy_binary  # noqa: E402
from toyd.testing.postgres import postgres_bindir, start_postgres  # noqa: E402

HELLO = {
    "type": "hello",
    "version": 1,
    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 20},
}
FRAME_S = 0.02
IDLE_S = 10.0


class Toy:
    """One toy's connection; reconnects like the cloud link when it drops."""

    def __init__(self, url: str, i: int) -> None:
        self.url, self.i = url, i
        self.conn = None
        self.dropped_at: float | None = None
        self.reconnect_s: float | None = None

    async def open(self) -> None:
        self.conn = await connect(
            self.url,
            additional_headers=headers(self.i),
            proxy=None,
            compression=None,
            open_timeout=30,
            max_size=2**16,
        )
        await self.conn.send(json.dumps(HELLO))
        while True:
            msg = json.loads(await asyncio.wait_for(self.conn.recv(), 30))
            if msg.get("type") == "hello":
                return

    async def stay(self, stop: asyncio.Event) -> None:
        """Read until the link drops, then reconnect with backoff (measured)."""
        while not stop.is_set():
            try:
                async for frame in self.conn:
                    if self.turn is not None:
                        self.turn(frame)
            except Exception:  # noqa: BLE001 - any drop: reconnect like the cloud link
                pass
            if stop.is_set():
                return
            self.dropped_at = time.perf_counter()
            for delay in backoff_delays(0.5, 30.0):
                await asyncio.sleep(delay)
                try:
                    await self.open()
                    self.reconnect_s = time.perf_counter() - self.dropped_at
                    break
                except Exception:  # noqa: BLE001 - try again after the next delay
                    continue

    turn = None


async def talk(toy: Toy, packets: list[bytes], n: int) -> dict:
    """One push-to-talk turn in real time; returns the server's latency report."""
    done: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    def on_frame(frame: str | bytes) -> None:
        if isinstance(frame, str):
            msg = json.loads(frame)
            if msg.get("type") == "tts" and msg.get("state") == "stop" and not done.done():
                done.set_result(msg)

    toy.turn = on_frame
    turn_id = f"b{n}"
    await toy.conn.send(
        json.dumps({"type": "listen", "state": "start", "mode": "push_to_talk", "turn_id": turn_id})
    )
    start = time.perf_counter()
    for k, packet in enumerate(packets):
        delay = start + k * FRAME_S - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await toy.conn.send(packet)
    await toy.conn.send(json.dumps({"type": "listen", "state": "stop", "turn_id": turn_id}))
    stop = await asyncio.wait_for(done, 60)
    toy.turn = None
    await toy.conn.send(
        json.dumps({"type": "playback", "state": "done", "response_id": stop.get("response_id", 0)})
    )
    return stop.get("latency") or {}


async def fleet_run(
    url: str, toys: int, turns: int, pids: list[int], packets: list[bytes], kill=None
) -> dict:  # type: ignore[no-untyped-def]
    fleet = [Toy(url, i) for i in range(toys)]
    started = time.perf_counter()
    for chunk in range(0, toys, 100):  # 100 handshakes at a time, like toys waking up over a minute
        await asyncio.gather(*(toy.open() for toy in fleet[chunk : chunk + 100]))
    connect_s = time.perf_counter() - started
    stop = asyncio.Event()
    readers = [asyncio.create_task(toy.stay(stop)) for toy in fleet]
    try:
        before = [proc_stats(pid)[0] for pid in pids]
        await asyncio.sleep(IDLE_S)
        idle_cpu = sum(proc_stats(pid)[0] - b for pid, b in zip(pids, before)) / IDLE_S
        rss = max(proc_stats(pid)[1] for pid in pids)
        step = max(1, toys // turns)
        reports = await asyncio.gather(*(talk(fleet[k * step], packets, k) for k in range(turns)))
        result = {
            "connect_s": connect_s,
            "idle_cpu": idle_cpu,
            "rss": rss,
            "overhead": [r["overhead_ms"] for r in reports if "overhead_ms" in r],
            "e2fa": [r["end_of_speech_to_first_audio_ms"] for r in reports if r],
        }
        if kill is not None:
            victims = await kill()
            deadline = time.perf_counter() + 60
            while time.perf_counter() < deadline:
                dropped = [t for t in fleet if t.dropped_at is not None]
                if len(dropped) >= victims and all(t.reconnect_s is not None for t in dropped):
                    break
                await asyncio.sleep(0.2)
            result["reconnect"] = [t.reconnect_s for t in fleet if t.reconnect_s is not None]
            result["dropped"] = sum(1 for t in fleet if t.dropped_at is not None)
        return result
    finally:
        stop.set()
        for toy in fleet:
            await toy.conn.close()
        await asyncio.gather(*readers, return_exceptions=True)


async def run(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pcm = espeak_pcm("Hello little bear, can you tell me a story about the moon?")
    encoder = OpusEncoder(bitrate=24000)
    packets = [encoder.encode(f) for f in frames(pcm)]
    gateway = {
        "max_sessions": args.toys + 10,
        "tokens": {f"toy-{i:05d}": f"bench-token-{i:05d}" for i in range(args.toys)},
    }
    rows = []
    with start_postgres() as pg, tempfile.TemporaryDirectory(prefix="toyd-bench-cluster-") as tmp:
        for label, n, proxied in (
            ("1 gateway, direct", 1, False),
            (f"{args.gateways} gateways + HAProxy", args.gateways, True),
        ):
            cluster = Cluster(
                Path(tmp) / label.split()[0],
                n,
                plugins=["gateway", "echochain"],
                gateway={**gateway, "alert_log": pg.url},
                sections={},
                log_level="warning",
            )
            cluster.root.mkdir(parents=True, exist_ok=True)
            if proxied:
                await asyncio.to_thread(cluster.start)
                url = cluster.url
            else:
                await asyncio.to_thread(cluster.start_gateway, 0)
                url = f"ws://127.0.0.1:{cluster.ports[0]}"
            pids = [p.pid for p in cluster.procs if p]

            async def kill() -> int:
                counts = await asyncio.to_thread(cluster.sessions)
                await asyncio.to_thread(cluster.kill, 0, signal.SIGKILL)
                return counts[0]

            try:
                print(f"{label}: {args.toys} toys, {args.turns} simultaneous turns ...", flush=True)
                r = await fleet_run(
                    url, args.toys, args.turns, pids, packets, kill if proxied else None
                )
            finally:
                await asyncio.to_thread(cluster.stop)
            rec = r.get("reconnect", [])
            rows.append(
                [
                    label,
                    args.toys,
                    round(r["connect_s"], 1),
                    pct(r["overhead"], 50),
                    pct(r["overhead"], 95),
                    pct(r["e2fa"], 50),
                    pct(r["e2fa"], 95),
                    round(r["idle_cpu"] / args.toys * 1e6, 1),
                    round(r["rss"] / 2**20, 1),
                    f"{len(rec)}/{r.get('dropped', 0)}" if proxied else "-",
                    pct(rec, 50) if rec else "-",
                    pct(rec, 95) if rec else "-",
                    max(rec) if rec else "-",
                ]
            )
    print()
    print_table(
        [
            "setup",
            "toys",
            "connect s",
            "overhead p50 ms",
            "overhead p95 ms",
            "eos→audio p50 ms",
            "eos→audio p95 ms",
            "idle CPU µs/s/toy",
            "RSS MB/gw",
            "reconnected",
            "reconnect p50 s",
            "reconnect p95 s",
            "reconnect max s",
        ],
        rows,
    )
    print(
        "\ngoals: overhead p95 ≤ 50 ms, reconnect p95 ≤ 5 s. Loopback only; the fleet shares the 2 cores."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--toys", type=int, default=2000, help="connected toys (default 2000)")
    parser.add_argument(
        "--turns", type=int, default=40, help="toys that talk at the same moment (default 40)"
    )
    parser.add_argument(
        "--gateways", type=int, default=3, help="gateway processes behind HAProxy (default 3)"
    )
    args = parser.parse_args()
    if haproxy_binary() is None or postgres_bindir() is None:
        raise SystemExit(
            "needs Debian's haproxy and postgresql: apt-get install haproxy postgresql"
        )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
