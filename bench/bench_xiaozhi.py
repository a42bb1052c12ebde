"""Benchmark the xiaozhi protocol both ways: end of speech → first reply audio.

1. A real xiaozhi client (xiaozhi-sdk 0.5.1, its own 16 kHz test WAV, 60 ms frames,
   manual mode) on toyd's gateway (Whisper tiny.en, the local chat stand-in at 50 ms to
   the first token, espeak-ng): from ``listen stop`` to the first Opus frame at the client.
2. toyd's toy (the ``xiaozhi`` device plugin) on a real xiaozhi-esp32-server, when one
   runs (``--server ws://127.0.0.1:8000/xiaozhi/v1/``; see docs/backends.md for running it
   on loopback with bench/xiaozhi_stub.py as its ASR/LLM/TTS): from ``listen stop`` to
   the first decoded reply frame, as the plugin's TurnLatency reports it.

Run: python bench/bench_xiaozhi.py [--turns 10] [--server URL]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.table import print_table  # noqa: E402
from toyd import State
from toyd import events as ev
from toyd.audio import frames
from toyd.testing import espeak_pcm, free_port, next_event, running_daemon, wait_for
from toyd.testing.standin import StandIn

MAC, TOKEN = "02:00:00:00:00:10", "bench-token"


def sdk_wav() -> bytes:
    with wave.open(
        str(importlib.resources.files("xiaozhi_sdk") / "file" / "audio" / "test_16k.wav")
    ) as wav:
        return wav.readframes(wav.getnframes())


async def sdk_on_gateway(turns: int) -> list[float]:
    from xiaozhi_sdk import XiaoZhiWebsocket

    class Client(XiaoZhiWebsocket):  # type: ignore[misc]
        first_audio: float | None = None
        stopped: asyncio.Event

        async def _handle_websocket_message(self, message: Any) -> None:
            if isinstance(message, bytes) and self.first_audio is None:
                self.first_audio = time.monotonic()
            await super()._handle_websocket_message(message)

    async def on_message(msg: dict[str, Any]) -> None:
        if msg.get("type") == "tts" and msg.get("state") == "stop":
            client.stopped.set()

    port, pcm, out = free_port(), sdk_wav(), []
    async with StandIn() as llm:
        llm.default.reply = "Hello! I am Pip, your friend."
        llm.default.first_token_delay = 0.05
        cloud = {
            "role": "cloud",
            "device_id": "cloud",
            "log_level": "error",
            "startup_timeout": 60,
            "plugins": ["gateway", "stt_whisper", "llm", "tts_espeak"],
            "gateway": {"port": port, "tokens": {MAC: TOKEN}},
            "llm": {"base_url": llm.url + "/v1", "model": "stand-in", "memory": False},
        }
        with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp:
            async with running_daemon(cloud, state_dir=Path(tmp)):
                client = Client(
                    on_message,
                    url=f"ws://127.0.0.1:{port}/",
                    audio_sample_rate=16000,
                    audio_frame_duration=60,
                )
                client.mode, client.websocket_token = "manual", TOKEN
                await client.init_connection(MAC)
                try:
                    for i in range(turns + 1):
                        client.first_audio, client.stopped = None, asyncio.Event()
                        await client.websocket.send(
                            '{"type": "listen", "state": "start", "mode": "manual"}'
                        )
                        for start in range(0, len(pcm) - 1919, 1920):
                            await client.send_audio(pcm[start : start + 1920])
                            await asyncio.sleep(0.06)  # real time, like a microphone
                        await client.websocket.send('{"type": "listen", "state": "stop"}')
                        eos = time.monotonic()
                        await asyncio.wait_for(client.stopped.wait(), 60)
                        if i and client.first_audio:  # the first turn warms up
                            out.append((client.first_audio - eos) * 1000)
                finally:
                    await client.close()
    return out


async def toy_on_xiaozhi_server(url: str, turns: int) -> tuple[list[float], list[str]]:
    pcm = espeak_pcm("tell me a story about a dragon")
    toy = {
        "role": "device",
        "device_id": "bench-toy",
        "log_level": "error",
        "plugins": ["xiaozhi"],
        "xiaozhi": {"url": url, "reply_timeout": 30},
    }
    out, heard = [], []
    with tempfile.TemporaryDirectory(prefix="toyd-bench-") as tmp:
        async with running_daemon(toy, state_dir=Path(tmp)) as app:
            sub = app.bus.subscribe("bench", maxsize=100000)
            await next_event(sub, ev.CloudOnline, timeout=15)
            for _ in range(turns + 1):
                app.bus.publish(ev.ButtonPressed())
                await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
                for seq, frame in enumerate(frames(pcm + bytes(6400))):
                    app.bus.publish(ev.AudioFrame(pcm=frame, seq=seq))
                    await asyncio.sleep(0.02)
                app.bus.publish(ev.SpeechEnded(reason="silence"))
                heard.append((await next_event(sub, ev.Transcript, timeout=60)).text)
                first = await next_event(sub, ev.ReplyAudio, timeout=60)
                app.bus.publish(ev.PlaybackStarted(response_id=first.response_id))
                latency = await next_event(sub, ev.TurnLatency, timeout=60)
                app.bus.publish(ev.PlaybackFinished(response_id=first.response_id))
                await wait_for(lambda: app.state is State.IDLE, timeout=10)
                out.append(latency.end_of_speech_to_first_audio_ms)
    return out[1:], heard


def row(name: str, values: list[float]) -> tuple[object, ...]:
    if not values:
        return (name, 0, "-", "-", "-")
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered) + 0.5) - 1)]
    return (
        name,
        len(values),
        round(statistics.median(values), 1),
        round(p95, 1),
        round(max(values), 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--server", default="", help="a running xiaozhi-esp32-server's WebSocket URL"
    )
    args = parser.parse_args()
    rows = [row("xiaozhi-sdk 0.5.1 → toyd gateway", asyncio.run(sdk_on_gateway(args.turns)))]
    if args.server:
        values, heard = asyncio.run(toy_on_xiaozhi_server(args.server, args.turns))
        rows.append(row("toyd toy → xiaozhi-esp32-server", values))
        print(f"the server heard: {heard[-1]!r}")
    else:
        rows.append(("toyd toy → xiaozhi-esp32-server", 0, "not run: no --server", "", ""))
    print(f"bench_xiaozhi: end of speech → first reply audio, {args.turns} turns each (+1 warm-up)")
    print_table(("client → server", "n", "p50 ms", "p95 ms", "max ms"), rows)


if __name__ == "__main__":
    main()
