"""Benchmark the cloud gateway: many toys on one gateway process, per-frame overhead, bandwidth, pacing.

The gateway runs as a real ``toyd cloud`` process (gateway + the echochain stand-in AI
chain, so the figures are the gateway's own cost); this script is the fleet of toys,
in a separate process. It connects ``--idle`` toys that only say hello, and
``--streaming`` toys that talk turn after turn in real time (real speech from
espeak-ng, Opus 24 kbps, 20 ms frames) and play the echoed reply.

Figures:
  * gateway overhead per turn: end of speech → first reply frame minus time in hooks
    (from ``tts stop.latency``);
  * per-frame overhead: round trip of a ``ping`` queued behind the audio frames of a
    streaming toy (every frame waits in the same queue);
  * uplink bandwidth: Opus payload + WebSocket framing per second of audio;
  * downlink lead: how far ahead of its play time each reply frame arrived;
  * gateway CPU and memory (RSS), from /proc.

Run:  python bench/bench_gateway.py [--idle 500] [--streaming 20] [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from websockets.asyncio.client import connect

from toyd.audio import frames
from toyd.audio.opus import OpusEncoder
from toyd.protocol import unpack_audio
from toyd.testing import espeak_pcm, free_port

HELLO = {
    "type": "hello",
    "version": 1,
    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 20},
}
FRAME_S = 0.02


def ws_client_overhead(payload: int) -> int:
    """Bytes a client adds to a binary frame: header + 4-byte mask (RFC 6455)."""
    return (2 if payload < 126 else 4 if payload < 65536 else 10) + 4


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Stats:
    def __init__(self) -> None:
        self.turn_overhead: list[float] = []
        self.e2fa: list[float] = []
        self.ping_rtt: list[float] = []
        self.idle_ping_rtt: list[float] = []
        self.leads: list[float] = []  # device buffer when each frame arrived, ms
        self.underruns = 0
        self.underrun_ms = 0.0
        self.up_payload = 0
        self.up_framing = 0
        self.up_frames = 0
        self.turns = 0
        self.errors: list[str] = []
        self.down_frames = 0
        self.client_lag: list[float] = []
        self.abort_ms: list[float] = []  # abort sent -> "tts stop aborted" received
        self.stale_after_abort = 0  # frames of an aborted response after its stop (must be 0)


def headers(i: int) -> dict[str, str]:
    return {
        "Authorization": f"Bearer bench-token-{i:05d}",
        "Device-Id": f"toy-{i:05d}",
        "Protocol-Version": "1",
    }


async def open_toy(port: int, i: int):  # type: ignore[no-untyped-def]
    conn = await connect(
        f"ws://127.0.0.1:{port}",
        additional_headers=headers(i),
        proxy=None,
        compression=None,
        open_timeout=30,
        max_size=2**16,
    )
    await conn.send(json.dumps(HELLO))
    reply = json.loads(await asyncio.wait_for(conn.recv(), 30))
    assert reply["type"] == "hello", reply
    return conn


async def idle_toy(port: int, i: int, stop: asyncio.Event, stats: Stats, sample: bool) -> None:
    conn = await open_toy(port, i)
    try:
        while not stop.is_set():
            if sample:
                sent = time.perf_counter()
                await conn.send(json.dumps({"type": "ping", "id": i}))
                while json.loads(await conn.recv()).get("type") != "pong":
                    pass
                stats.idle_ping_rtt.append((time.perf_counter() - sent) * 1000)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
    finally:
        await conn.close()


async def streaming_toy(
    port: int, i: int, packets: list[bytes], stop: asyncio.Event, stats: Stats, offset: float
) -> None:
    conn = await open_toy(port, i)
    await asyncio.sleep(offset)  # children do not all stop talking at the same millisecond
    pings: dict[int, float] = {}
    turn_done = asyncio.Event()
    turn_no = [0]  # every third turn the child interrupts the reply after 10 frames

    async def reader() -> None:
        # a device that plays each frame as soon as the previous one ends: its buffer is
        # play_end - arrival; a frame arriving after play_end is an underrun (a gap)
        play_end: float | None = None
        frames_in_turn = 0
        aborted: tuple[int, float] | None = None  # (response id, when the abort went out)
        dead: set[int] = set()
        async for frame in conn:
            now = time.perf_counter()
            if isinstance(frame, bytes):
                packet = unpack_audio(frame)
                if packet.response_id in dead:
                    stats.stale_after_abort += 1
                    continue
                frames_in_turn += 1
                if turn_no[0] % 3 == 0 and frames_in_turn == 10 and aborted is None:
                    aborted = (packet.response_id, time.perf_counter())
                    await conn.send(
                        json.dumps(
                            {
                                "type": "abort",
                                "reason": "barge_in",
                                "response_id": packet.response_id,
                            }
                        )
                    )
                if play_end is None:
                    play_end = now
                elif now > play_end:
                    stats.underruns += 1
                    stats.underrun_ms += (now - play_end) * 1000
                    play_end = now
                else:
                    stats.leads.append((play_end - now) * 1000)
                play_end += FRAME_S
                stats.down_frames += 1
                continue
            msg = json.loads(frame)
            kind = msg.get("type")
            if kind == "pong" and msg.get("id") in pings:
                stats.ping_rtt.append((now - pings.pop(msg["id"])) * 1000)
            elif kind == "tts" and msg.get("state") == "stop":
                lat = msg.get("latency") or {}
                frames_in_turn = 0
                if (
                    msg.get("reason") == "aborted"
                    and aborted
                    and msg.get("response_id") == aborted[0]
                ):
                    stats.abort_ms.append((now - aborted[1]) * 1000)
                    dead.add(aborted[0])
                    aborted = None
                    stats.turns += 1
                elif msg.get("reason") == "done" and lat:
                    stats.turn_overhead.append(lat["overhead_ms"])
                    stats.e2fa.append(lat["end_of_speech_to_first_audio_ms"])
                    stats.turns += 1
                else:
                    stats.errors.append(f"tts stop {msg.get('reason')}")
                play_end = None
                turn_done.set()
            elif kind == "error":
                stats.errors.append(msg.get("code", "?"))

    read_task = asyncio.create_task(reader())
    ping_id = i * 1_000_000
    try:
        turn = 0
        while not stop.is_set():
            turn += 1
            turn_no[0] = turn
            turn_done.clear()
            await conn.send(
                json.dumps(
                    {
                        "type": "listen",
                        "state": "start",
                        "mode": "push_to_talk",
                        "turn_id": f"{i}-{turn}",
                    }
                )
            )
            start = time.perf_counter()
            for k, packet in enumerate(packets):
                # real time, like a microphone: frame k leaves at start + k * 20 ms
                delay = start + k * FRAME_S - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await conn.send(packet)
                stats.up_payload += len(packet)
                stats.up_framing += ws_client_overhead(len(packet))
                stats.up_frames += 1
                if k % 25 == 0:  # a ping rides behind the audio every 0.5 s
                    ping_id += 1
                    pings[ping_id] = time.perf_counter()
                    await conn.send(json.dumps({"type": "ping", "id": ping_id}))
            await conn.send(
                json.dumps({"type": "listen", "state": "stop", "turn_id": f"{i}-{turn}"})
            )
            await asyncio.wait_for(turn_done.wait(), 30)
            await conn.send(json.dumps({"type": "playback", "state": "done", "response_id": 0}))
    finally:
        read_task.cancel()
        await asyncio.gather(read_task, return_exceptions=True)
        await conn.close()


async def client_lag(stop: asyncio.Event, stats: Stats) -> None:
    """This process's own event-loop lag: late wake-ups here look like late frames."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.05)
        stats.client_lag.append((time.perf_counter() - before - 0.05) * 1000)


def get_health(port: int) -> dict:
    """The gateway's own figures (GET /healthz)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def start_gateway(port: int, toys: int, lead_ms: int, tmp: Path) -> subprocess.Popen[bytes]:
    config = {
        "role": "cloud",
        "device_id": "bench-cloud",
        "state_dir": str(tmp / "state"),
        "log_level": "warning",
        "plugins": ["gateway", "echochain"],
        "gateway": {
            "port": port,
            "max_sessions": toys + 10,
            "downlink_lead_ms": lead_ms,
            "tokens": {f"toy-{i:05d}": f"bench-token-{i:05d}" for i in range(toys)},
        },
    }
    path = tmp / "cloud.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp / "gateway.log").open("wb")  # a pipe nobody reads would block the gateway once full
    proc = subprocess.Popen([sys.executable, "-m", "toyd", "cloud", "-c", str(path)], stderr=log)
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited: {(tmp / 'gateway.log').read_text()}")
        time.sleep(0.1)
    raise SystemExit("gateway did not start")


async def run(args: argparse.Namespace) -> None:
    pcm = espeak_pcm(
        "Hello little bear, can you tell me a story about the moon and the stars tonight?"
    )
    encoder = OpusEncoder(bitrate=24000)
    packets = [encoder.encode(f) for f in frames(pcm)]
    total = args.idle + args.streaming
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp:
        proc = start_gateway(port, total, args.lead_ms, Path(tmp))
        try:
            base_cpu, base_rss = proc_stats(proc.pid)
            stats, stop = Stats(), asyncio.Event()
            connected = time.perf_counter()
            semaphore = asyncio.Semaphore(50)

            async def spawn_idle(i: int) -> asyncio.Task[None]:
                async with semaphore:
                    conn_task = asyncio.create_task(
                        idle_toy(port, i, stop, stats, sample=i % 25 == 0)
                    )
                    await asyncio.sleep(0.005)
                    return conn_task

            idle_tasks = [await t for t in [spawn_idle(i) for i in range(args.idle)]]
            await asyncio.sleep(2.0)
            connect_s = time.perf_counter() - connected
            _, idle_rss = proc_stats(proc.pid)
            cpu0, _ = proc_stats(proc.pid)
            t0 = time.perf_counter()
            lag_task = asyncio.create_task(client_lag(stop, stats))
            turn_s = 2 * len(packets) * FRAME_S  # talking + listening to the echo
            offsets = [
                0.0 if args.sync else i * turn_s / max(args.streaming, 1)
                for i in range(args.streaming)
            ]
            streamers = [
                asyncio.create_task(
                    streaming_toy(port, args.idle + i, packets, stop, stats, offsets[i])
                )
                for i in range(args.streaming)
            ]
            await asyncio.sleep(args.duration)
            stop.set()
            await asyncio.gather(*streamers, lag_task, return_exceptions=True)
            elapsed = time.perf_counter() - t0
            cpu1, rss1 = proc_stats(proc.pid)
            health = await asyncio.to_thread(get_health, port)
            await asyncio.gather(*idle_tasks, return_exceptions=True)
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.log:  # type: ignore[attr-defined]
                proc.log.close()  # type: ignore[attr-defined]

    audio_s = stats.up_frames * FRAME_S
    up_kbps = (
        (stats.up_payload + stats.up_framing) * 8 / audio_s / 1000 if audio_s else float("nan")
    )
    payload_kbps = stats.up_payload * 8 / audio_s / 1000 if audio_s else float("nan")
    tcp_kbps = (
        (stats.up_payload + stats.up_framing + 52 * stats.up_frames) * 8 / audio_s / 1000
        if audio_s
        else float("nan")
    )
    cpu_pct = (cpu1 - cpu0) / elapsed * 100
    rows = [
        ("toys connected (idle + streaming)", f"{args.idle} + {args.streaming}", "500 + 20"),
        ("turns completed / errors", f"{stats.turns} / {len(stats.errors)}", "errors 0"),
        (
            "gateway: handling one frame p50 / p95 (ms)",
            f"{health['frame_ms']['p50']:.2f} / {health['frame_ms']['p95']:.2f}",
            "",
        ),
        (
            "gateway: event-loop lag p50 / p95 / max (ms)",
            f"{health['loop_lag_ms']['p50']:.1f} / {health['loop_lag_ms']['p95']:.1f} / {health['loop_lag_ms']['max']:.0f}",
            "",
        ),
        (
            "gateway overhead per frame p95 (handling + loop lag, ms)",
            f"{health['frame_ms']['p95'] + health['loop_lag_ms']['p95']:.1f}",
            "<= 50",
        ),
        (
            "end to end: ping behind audio p50 / p95 (ms)",
            f"{pct(stats.ping_rtt, 50):.1f} / {pct(stats.ping_rtt, 95):.1f}",
            "",
        ),
        (
            "idle toys: ping p50 / p95 (ms)",
            f"{pct(stats.idle_ping_rtt, 50):.1f} / {pct(stats.idle_ping_rtt, 95):.1f}",
            "",
        ),
        (
            "turn overhead (e2fa - hooks) p50 / p95 (ms)",
            f"{pct(stats.turn_overhead, 50):.1f} / {pct(stats.turn_overhead, 95):.1f}",
            "",
        ),
        (
            "end of speech -> first audio p50 / p95 (ms)",
            f"{pct(stats.e2fa, 50):.1f} / {pct(stats.e2fa, 95):.1f}",
            "",
        ),
        (
            "abort -> 'tts stop aborted' at the toy p50 / p95 (ms)",
            f"{pct(stats.abort_ms, 50):.1f} / {pct(stats.abort_ms, 95):.1f} (n={len(stats.abort_ms)})",
            "<= 20 (a frame)",
        ),
        ("frames of an aborted response after its stop", f"{stats.stale_after_abort}", "0"),
        ("uplink Opus payload (kbps)", f"{payload_kbps:.1f}", ""),
        ("uplink incl. WebSocket framing (kbps)", f"{up_kbps:.1f}", "<= 32"),
        ("uplink incl. TCP/IPv4 headers, 1 frame/segment (kbps)", f"{tcp_kbps:.1f}", ""),
        (
            "downlink: device buffer on arrival p50 / p95 / max (ms)",
            f"{pct(stats.leads, 50):.0f} / {pct(stats.leads, 95):.0f} / {max(stats.leads, default=float('nan')):.0f}",
            f"~{args.lead_ms}",
        ),
        (
            "downlink: underruns per minute of reply audio",
            f"{stats.underruns / max(stats.down_frames * FRAME_S / 60, 1e-9):.1f}",
            "",
        ),
        (
            "downlink: underrun time (% of reply audio)",
            f"{stats.underrun_ms / max(stats.down_frames * FRAME_S * 1000, 1e-9) * 100:.2f}",
            "",
        ),
        (
            "toy fleet (this process): event-loop lag p50 / p95 / max (ms)",
            f"{pct(stats.client_lag, 50):.1f} / {pct(stats.client_lag, 95):.1f} / {max(stats.client_lag, default=float('nan')):.0f}",
            "",
        ),
        ("downlink frames received", f"{stats.down_frames}", ""),
        ("gateway CPU while streaming (% of one core)", f"{cpu_pct:.0f}", ""),
        (
            "gateway RSS: start / idle toys / streaming (MiB)",
            f"{base_rss / 2**20:.0f} / {idle_rss / 2**20:.0f} / {rss1 / 2**20:.0f}",
            "",
        ),
        ("RSS per idle toy (KiB)", f"{(idle_rss - base_rss) / max(args.idle, 1) / 1024:.0f}", ""),
        ("time to connect the idle toys (s)", f"{connect_s:.1f}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"\ntoyd gateway benchmark: {args.duration:.0f} s of streaming, downlink lead {args.lead_ms} ms, "
        f"turns {'in step' if args.sync else 'staggered'}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'metric':<{width}}  {'value':>22}  goal")
    print(f"{'-' * width}  {'-' * 22}  ----------")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>22}  {goal}")
    if stats.errors:
        print("errors:", ", ".join(sorted(set(stats.errors))))


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--idle", type=int, default=500, help="toys that connect and stay idle (default 500)"
    )
    parser.add_argument(
        "--streaming", type=int, default=20, help="toys talking turn after turn (default 20)"
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of streaming (default 30)"
    )
    parser.add_argument(
        "--sync", action="store_true", help="all streaming toys end their turns at the same moment"
    )
    parser.add_argument(
        "--lead-ms", type=int, default=250, help="gateway downlink_lead_ms (default 250)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
