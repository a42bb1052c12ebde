"""Audio benchmarks: Opus cost, idle-listening CPU, barge-in latency, the PyAudio capture path.

Run: python bench/bench_audio.py   (about half a minute; prints a table)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from table import print_table  # noqa: E402
from toyd import State  # noqa: E402
from toyd.audio.opus import OpusDecoder, OpusEncoder  # noqa: E402
from toyd.audio.pcm import FRAME_BYTES, frames  # noqa: E402
from toyd.audio.wav import write_wav
from toyd.events import AudioFrame, ButtonPressed, MicInput, ReplyAudio, SpeechEnded, StateChanged  # noqa: E402
from toyd.testing import espeak_pcm, next_event, running_daemon, wait_for  # noqa: E402

FRAME_S = 0.02


def room(seconds: float, noise: float = 100.0, seed: int = 0) -> bytes:
    """A quiet room (white noise) with one spoken sentence in it."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0, noise, int(seconds * 16000))
    talk = np.frombuffer(espeak_pcm("Can you tell me a story about a dragon?"), "<i2")
    out[16000 : 16000 + len(talk)] += talk
    return np.clip(out, -32768, 32767).astype("<i2").tobytes()


def bench_opus(seconds: float = 20.0) -> tuple[float, float]:
    """CPU seconds per audio second for Opus encode and decode (24 kbps, VOIP, 20 ms)."""
    pcm = room(seconds, noise=300)
    enc, dec = OpusEncoder(), OpusDecoder()
    t0 = time.process_time()
    packets = [enc.encode(f) for f in frames(pcm)]
    t1 = time.process_time()
    for p in packets:
        dec.decode(p)
    t2 = time.process_time()
    return (t1 - t0) / seconds, (t2 - t1) / seconds


def bench_vad_frame() -> float:
    """Microseconds per frame for the end-of-speech detector alone (webrtcvad + gate)."""
    from toyd_plugins.vad.detector import EndpointDetector
    from toyd_plugins.vad.settings import VadSettings

    pcm = room(20.0)
    det = EndpointDetector(VadSettings(max_length=120, no_speech_timeout=60), vad=None)
    chunks = list(frames(pcm))
    t0 = time.perf_counter()
    for i, f in enumerate(chunks):
        det.feed(f, i + 1)
    return (time.perf_counter() - t0) / len(chunks) * 1e6


async def bench_daemon_cpu(
    tmp: Path, listening: bool, seconds: float = 30.0, realtime: bool = False
) -> tuple[float, int]:
    """Whole-daemon CPU per audio second with audio + vad on a file microphone."""
    mic = str(write_wav(tmp / "room.wav", room(seconds)))
    state_dir = tmp / f"state-{listening}-{realtime}"
    state_dir.mkdir()
    config = {
        "role": "device",
        "plugins": ["audio", "vad"],
        "audio": {"backend": "file", "file": {"realtime": realtime}},
        "vad": {"max_length": 120, "no_speech_timeout": 60},
    }
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("bench", (AudioFrame, StateChanged), maxsize=100000)
        if listening:  # push-to-talk held down: the detector decides on every frame, no silence end
            app.bus.publish(ButtonPressed())
            await next_event(sub, StateChanged)
        vad_sub = app.host.plugins["vad"]._events
        dropped0 = vad_sub.dropped
        app.bus.publish(MicInput(path=mic))
        first = await next_event(sub, AudioFrame, where=lambda f: f.pcm != bytes(FRAME_BYTES))
        n_frames = int(seconds / FRAME_S)
        t0 = time.process_time()
        await next_event(
            sub, AudioFrame, timeout=120, where=lambda f: f.seq >= first.seq + n_frames - 1
        )
        cpu = time.process_time() - t0
        if listening:
            assert app.state is State.LISTENING, app.state
        return cpu / seconds, vad_sub.dropped - dropped0


async def bench_barge_in(tmp: Path, rounds: int = 20) -> tuple[list[float], list[float]]:
    """StateChanged → speaker stopped, and button press → speaker stopped, in ms."""
    state_dir = tmp / "state-barge"
    state_dir.mkdir()
    config = {"role": "device", "plugins": ["audio"], "audio": {"backend": "file"}}
    reply = (
        np.random.default_rng(1).integers(-9000, 9000, FRAME_BYTES // 2, dtype=np.int16).tobytes()
    )
    from_state, from_press = [], []
    async with running_daemon(config, state_dir=state_dir) as app:
        speaker = app.host.plugins["audio"].speaker
        sub = app.bus.subscribe("bench", (StateChanged,), maxsize=100000)
        for i in range(rounds):
            app.bus.publish(ButtonPressed())
            await next_event(sub, StateChanged, where=lambda e: e.new is State.LISTENING)
            app.bus.publish(SpeechEnded())
            await next_event(sub, StateChanged, where=lambda e: e.new is State.THINKING)
            for _ in range(100):
                app.bus.publish(ReplyAudio(response_id=f"r{i}", pcm=reply))
            await next_event(sub, StateChanged, where=lambda e: e.new is State.SPEAKING)
            start = speaker.frames_written
            await wait_for(lambda: speaker.frames_written >= start + 5 + i % 3)
            await asyncio.sleep(
                (i % 5) * 0.004
            )  # land the press at different points inside a frame
            press = ButtonPressed()
            app.bus.publish(press)
            changed = await next_event(sub, StateChanged, where=lambda e: e.new is State.LISTENING)
            await wait_for(lambda: speaker.stopped_at >= changed.at)
            from_state.append((speaker.stopped_at - changed.at) * 1000)
            from_press.append((speaker.stopped_at - press.at) * 1000)
            app.bus.publish(SpeechEnded(reason="too_short"))
            await next_event(sub, StateChanged, where=lambda e: e.new is State.IDLE)
    return from_state, from_press


ALSA_CHILD = r"""
import json, sys, time
import numpy as np, pyaudio, soxr
pa = pyaudio.PyAudio()
idx = next(i for i in range(pa.get_device_count()) if pa.get_device_info_by_index(i)["name"] == "toydmic")
out = {}
for rate in (16000, 48000):
    s = pa.open(rate=rate, channels=1, format=pyaudio.paInt16, input=True, input_device_index=idx,
                frames_per_buffer=rate // 50)
    rs = soxr.ResampleStream(rate, 16000, 1, dtype="int16") if rate != 16000 else None
    n = 1500
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        x = np.frombuffer(s.read(rate // 50, exception_on_overflow=False), "<i2")
        if rs is not None:
            x = rs.resample_chunk(x)
    out[rate] = [n * 0.02 / (time.perf_counter() - t0), (time.process_time() - c0) / (n * 0.02)]
    s.close()
print(json.dumps(out))
"""


def bench_alsa(tmp: Path) -> dict[str, list[float]]:
    """PyAudio reading an ALSA file device: speed vs real time and CPU per audio second."""
    home = tmp / "home"
    home.mkdir()
    infile = tmp / "mic.raw"
    infile.write_bytes(bytes(48000 * 2 * 40))
    (home / ".asoundrc").write_text(
        f'pcm.toydmic {{ type file slave.pcm "toydsink" file "/dev/null" '
        f'infile "{infile}" format "raw" }}\npcm.toydsink {{ type null }}\n'
    )
    env = {**os.environ, "HOME": str(home), "JACK_NO_START_SERVER": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", ALSA_CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    """Run every benchmark and print one table."""
    rows: list[tuple[str, str, str]] = []
    enc, dec = bench_opus()
    rows.append(("Opus encode, 24 kbps VOIP", f"{enc:.4f} CPU-s/s", ""))
    rows.append(("Opus decode", f"{dec:.4f} CPU-s/s", ""))
    rows.append(("Opus encode+decode", f"{enc + dec:.4f} CPU-s/s", ""))
    rows.append(("VAD detector alone", f"{bench_vad_frame():.1f} us/frame", "per 20 ms frame"))
    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for listening in (False, True):
            cpu, dropped = asyncio.run(bench_daemon_cpu(tmp, listening))
            label = "LISTENING (VAD deciding)" if listening else "IDLE (VAD adapting)"
            rows.append(
                (
                    f"daemon audio+vad, {label}",
                    f"{cpu:.4f} CPU-s/s",
                    f"file mic, realtime off; {dropped} frames dropped",
                )
            )
        cpu, dropped = asyncio.run(bench_daemon_cpu(tmp, True, seconds=6.0, realtime=True))
        rows.append(
            (
                "daemon audio+vad, LISTENING, paced mic",
                f"{cpu:.4f} CPU-s/s",
                f"file mic in real time (6 s); {dropped} frames dropped",
            )
        )
        from_state, from_press = asyncio.run(bench_barge_in(tmp))
        rows.append(
            (
                "barge-in StateChanged -> speaker stopped",
                f"median {statistics.median(from_state):.2f} ms",
                f"p95 {pct(from_state, 0.95):.2f}, max {max(from_state):.2f} ms (goal <= 30)",
            )
        )
        rows.append(
            (
                "barge-in button press -> speaker stopped",
                f"median {statistics.median(from_press):.2f} ms",
                f"p95 {pct(from_press, 0.95):.2f}, max {max(from_press):.2f} ms (goal <= 30)",
            )
        )
        for rate, (speed, cpu) in bench_alsa(tmp).items():
            extra = " + soxr to 16 kHz" if rate != "16000" else ""
            rows.append(
                (
                    f"PyAudio capture via ALSA file, {rate} Hz{extra}",
                    f"{cpu:.4f} CPU-s/s",
                    f"{speed:.0f}x real time",
                )
            )
    print_table(("benchmark", "result", "notes"), rows)


if __name__ == "__main__":
    main()
