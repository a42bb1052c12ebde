"""Run in a subprocess by test_audio_pyaudio.py: a real daemon on PyAudio over ALSA file devices.

ALSA reads its user config once per process, so each scenario gets a fresh
interpreter whose HOME holds the .asoundrc with the test devices.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from toyd.audio.pcm import FRAME_BYTES
from toyd.errors import ToydError
from toyd.events import AudioFrame, PlaybackFinished, ReplyAudio, ReplyAudioEnd
from toyd.testing import next_event, running_daemon


async def scenario(spec: dict) -> dict:
    """Capture ``frames`` microphone frames, play ``reply``; report what happened."""
    state_dir = Path(spec["state_dir"])
    out: dict = {"frames": []}
    try:
        async with running_daemon(spec["config"], state_dir=state_dir, simulate=False) as app:
            plugin = app.host.plugins["audio"]
            out["mic"], out["speaker"] = plugin.mic.name, plugin.speaker.name
            sub = app.bus.subscribe("child", (AudioFrame,), maxsize=100000)
            frames = []
            while len(frames) < spec["frames"]:
                frames.append(await next_event(sub, AudioFrame, timeout=10))
            sub.close()
            out["frames"] = [[f.seq, f.pcm.hex()] for f in frames]
            if spec.get("reply"):
                done = app.bus.subscribe("done", (PlaybackFinished,))
                reply = Path(spec["reply"]).read_bytes()
                for i in range(0, len(reply), FRAME_BYTES):
                    app.bus.publish(ReplyAudio(response_id="r", pcm=reply[i : i + FRAME_BYTES]))
                app.bus.publish(ReplyAudioEnd(response_id="r"))
                finished = await next_event(done, PlaybackFinished, timeout=10)
                out["finished"] = [finished.response_id, finished.interrupted]
                out["frames_written"] = plugin.speaker.frames_written
                plugin.player.interrupt(
                    "test"
                )  # aborts the PortAudio stream; playback must still work after
                for i in range(0, len(reply), FRAME_BYTES):
                    app.bus.publish(ReplyAudio(response_id="r2", pcm=reply[i : i + FRAME_BYTES]))
                app.bus.publish(ReplyAudioEnd(response_id="r2"))
                finished = await next_event(done, PlaybackFinished, timeout=10)
                out["finished2"] = [finished.response_id, finished.interrupted]
    except ToydError as exc:
        out["error"] = str(exc)
    return out


if __name__ == "__main__":
    result = asyncio.run(scenario(json.loads(sys.argv[1])))
    Path(sys.argv[2]).write_text(json.dumps(result))
