"""Device benchmarks: wake word inference per 80 ms chunk, idle-listening CPU and RSS of a real toy.

Run: python bench/bench_device.py [--seconds 20]

* inference: the wake word pipeline (melspectrogram + embedding + N word models) on real
  espeak-ng speech, timed per 80 ms chunk in this process;
* CPU and RSS: a real ``toyd device --simulate`` process with the example config's device
  plugins (file microphone paced in real time, button, LED, wake word), idle, hearing
  speech and noise without the wake word; CPU-seconds it used per second of audio, and
  its resident memory. The same daemon without the wake word is the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from table import print_table  # noqa: E402
from toyd.audio.wav import write_wav

GOAL_CPU = 0.07  # CPU-s per audio second
GOAL_RSS = 100.0  # MB


def speech_and_noise(seconds: float) -> bytes:
    """Ordinary speech (no wake word) alternating with room noise, ``seconds`` long."""
    from toyd.testing import espeak_pcm

    talk = espeak_pcm("can you tell me a story about a dragon and a princess who lived in a castle")
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(16000 * 2) * 800).astype("<i2").tobytes()
    piece = talk + noise
    reps = int(seconds * 32000 / len(piece)) + 1
    return (piece * reps)[: int(seconds * 32000) // 2 * 2]


def bench_inference(models: list[str], chunks: int = 500) -> tuple[float, float]:
    """Mean and p95 milliseconds per 80 ms chunk for ``models``."""
    from toyd.schema import build
    from toyd_plugins.wakeword.detector import CHUNK_BYTES, WakeWordDetector
    from toyd_plugins.wakeword.settings import WakeWordSettings, model_paths

    settings = build(WakeWordSettings, {"models": [{"name": m} for m in models]})
    melspec, embedding, specs = model_paths(settings, Path.cwd())
    detector = WakeWordDetector(melspec, embedding, specs)
    pcm = speech_and_noise(chunks * 0.08)
    detector.process(pcm[: CHUNK_BYTES * 20])  # warm up
    times = []
    for i in range(chunks):
        chunk = pcm[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]
        t = time.perf_counter()
        detector.process(chunk)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.fmean(times), times[int(len(times) * 0.95)]


async def _button_latency(presses: int, state_dir: Path) -> tuple[list[float], list[float]]:
    from toyd import State, Trigger, gpio
    from toyd.events import ButtonPressed, StateChanged, StateRequest
    from toyd.testing import next_event, running_daemon, wait_for

    config = {
        "role": "device",
        "plugins": ["button", "led"],
        "button": {"bounce_time": None, "hold_action": "none"},
    }
    to_event, to_led = [], []
    async with running_daemon(config, state_dir=state_dir) as app:
        pin, blue = gpio.current().pin(17), gpio.current().pin(24)
        sub = app.bus.subscribe("bench", (ButtonPressed, StateChanged))
        for _ in range(presses):
            t = time.perf_counter()
            pin.drive_low()  # what the GPIO edge thread does on real hardware
            await next_event(sub, ButtonPressed)
            to_event.append((time.perf_counter() - t) * 1000)
            await wait_for(
                lambda: blue.state > 0.5, timeout=5, interval=0
            )  # listening: blue at 0.6
            to_led.append((time.perf_counter() - t) * 1000)
            pin.drive_high()
            app.bus.publish(StateRequest(trigger=Trigger.CANCEL))
            await next_event(sub, StateChanged, where=lambda e: e.new is State.IDLE)
            await wait_for(lambda: blue.state < 0.5, timeout=5, interval=0)
    return to_event, to_led


def bench_button(presses: int = 200) -> tuple[float, float, float, float]:
    """Median and p95 ms from a button edge to ButtonPressed on the bus, and to the LED turning blue."""
    import asyncio

    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp:
        to_event, to_led = asyncio.run(_button_latency(presses, Path(tmp)))
    to_event.sort()
    to_led.sort()
    p95 = int(presses * 0.95)
    return statistics.median(to_event), to_event[p95], statistics.median(to_led), to_led[p95]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def bench_daemon(
    plugins: list[str], wav: Path, seconds: float, tmp: Path
) -> tuple[float, float, float]:
    """CPU-s per audio second, RSS and peak RSS (MB) of ``toyd device --simulate`` while idle."""
    config = {
        "role": "device",
        "device_id": "bench",
        "log_level": "warning",
        "plugins": plugins,
        "audio": {"file": {"input": str(wav), "realtime": True, "at_end": "loop"}},
    }
    path = tmp / f"toyd-{len(plugins)}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toyd",
            "device",
            "--simulate",
            "-c",
            str(path),
            "--state-dir",
            str(tmp / f"state-{len(plugins)}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = tmp / f"state-{len(plugins)}" / "status.json"
        deadline = time.monotonic() + 60
        while not status.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"toyd did not start: {proc.stderr.read() if proc.stderr else ''}"
                )
            time.sleep(0.1)
        time.sleep(2.0)  # let start-up work settle
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
        rss, hwm = _rss_mb(proc.pid)
        state = json.loads(status.read_text())["state"]
        if state != "idle":
            raise RuntimeError(f"the toy left idle during the benchmark ({state}): a false wake?")
        return (cpu1 - cpu0) / (t1 - t0), rss, hwm
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    """Print the device benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="audio seconds measured per daemon run"
    )
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    mean1, p95_1 = bench_inference(["hey_jarvis"])
    rows.append(
        ("wake word inference per 80 ms chunk, 1 model", f"{mean1:.2f} ms (p95 {p95_1:.2f})", "-")
    )
    mean5, p95_5 = bench_inference(["hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy", "ok_nabu"])
    rows.append(
        ("wake word inference per 80 ms chunk, 5 models", f"{mean5:.2f} ms (p95 {p95_5:.2f})", "-")
    )
    ev50, ev95, led50, led95 = bench_button()
    rows.append(("button edge -> ButtonPressed on the bus", f"{ev50:.2f} ms (p95 {ev95:.2f})", "-"))
    rows.append(("button edge -> LED shows listening", f"{led50:.2f} ms (p95 {led95:.2f})", "-"))
    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmpdir:
        tmp = Path(tmpdir)
        wav = tmp / "room.wav"
        write_wav(wav, speech_and_noise(30))
        base = ["statusfile", "audio", "button", "led"]
        cpu0, rss0, hwm0 = bench_daemon(base, wav, args.seconds, tmp)
        cpu1, rss1, hwm1 = bench_daemon([*base, "wakeword"], wav, args.seconds, tmp)
    rows.append(("device idle listening CPU, no wake word", f"{cpu0:.3f} CPU-s/s", "-"))
    rows.append(
        (
            "device idle listening CPU, wake word (1 model)",
            f"{cpu1:.3f} CPU-s/s",
            f"<= {GOAL_CPU} {'ok' if cpu1 <= GOAL_CPU else 'MISSED'}",
        )
    )
    rows.append(("device RSS, no wake word", f"{rss0:.1f} MB (peak {hwm0:.1f})", "-"))
    rows.append(
        (
            "device RSS, wake word loaded",
            f"{rss1:.1f} MB (peak {hwm1:.1f})",
            f"<= {GOAL_RSS:g} MB {'ok' if hwm1 <= GOAL_RSS else 'MISSED'}",
        )
    )
    print_table(("benchmark", "result", "goal"), rows)
    print(f"({args.seconds:g} s of real-time audio per daemon; {os.cpu_count()} CPUs, shared)")


if __name__ == "__main__":
    main()
