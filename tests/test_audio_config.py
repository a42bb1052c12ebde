"""Config of the audio and vad plugins: strict validation, live changes, the example config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toyd.audio.pcm import FRAME_BYTES
from toyd.audio.wav import read_wav
from toyd.config import load_file, validate
from toyd.errors import ConfigError
from toyd.events import PlaybackFinished, ReplyAudio, ReplyAudioEnd
from toyd.registry import Registry
from toyd.testing import next_event, running_daemon

ROOT = Path(__file__).resolve().parent.parent


def cfg(state_dir: Path, audio: dict, vad: dict | None = None) -> dict:
    return {
        "role": "device",
        "state_dir": str(state_dir),
        "plugins": ["audio", "vad"],
        "audio": {"backend": "file", "file": {"output_realtime": False}, **audio},
        "vad": vad or {},
    }


def build(data: dict):
    registry = Registry()
    return validate(data, registry.schema, source="<push>", known_plugins=registry.names)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"audio": {"volume": 150}}, "audio.volume: out of range: must be between 0 and 100"),
        ({"audio": {"backend": "alsa"}}, "audio.backend: not an allowed value"),
        ({"audio": {"pyaudio": {"input_device": [1]}}}, "audio.pyaudio.input_device"),
        ({"audio": {"file": {"at_end": "repeat"}}}, "audio.file.at_end: not an allowed value"),
        ({"vad": {"aggressiveness": 4}}, "vad.aggressiveness: out of range"),
        (
            {"vad": {"silence_timeout": 5, "max_length": 4}},
            "max_length must be longer than silence_timeout",
        ),
    ],
)
def test_bad_values_are_named(section: dict, problem: str, tmp_path: Path) -> None:
    data = {"role": "device", "state_dir": str(tmp_path), "plugins": ["audio", "vad"], **section}
    with pytest.raises(ConfigError) as err:
        build(data)
    assert problem in str(err.value)


def test_example_config_enables_audio_and_vad() -> None:
    registry = Registry()
    config = load_file(ROOT / "config" / "toyd.yaml", registry.schema, registry.names)
    assert {"audio", "vad"} <= set(config.core.plugins)
    assert config.section("audio").backend == "pyaudio"  # --simulate switches to the file device


async def test_reconfigure_volume_live_and_devices_on_restart(state_dir: Path) -> None:
    level = np.full(FRAME_BYTES // 2, 8000, "<i2").tobytes()
    async with running_daemon(cfg(state_dir, {"volume": 100}), state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (PlaybackFinished,))
        restart = await app.apply_config(
            build(
                cfg(
                    state_dir,
                    {"volume": 50, "prebuffer_ms": 100},
                    {"silence_timeout": 1.2, "aggressiveness": 3},
                )
            )
        )
        assert restart == []  # volume, jitter buffer and every vad key apply live
        assert app.host.plugins["vad"].settings.silence_timeout == 1.2
        app.bus.publish(ReplyAudio(response_id="r", pcm=level))
        app.bus.publish(ReplyAudioEnd(response_id="r"))
        await next_event(sub, PlaybackFinished)
        restart = await app.apply_config(
            build(cfg(state_dir, {"volume": 50, "file": {"output": "other.wav"}}))
        )
        assert restart == ["audio"]  # a device change needs a restart
    assert set(np.frombuffer(read_wav(state_dir / "speaker.wav"), "<i2").tolist()) == {2000}
    assert not (state_dir / "other.wav").exists()
