"""Wake word: real openWakeWord tflite models on espeak-ng speech, in the detector and a real daemon."""

from __future__ import annotations

import asyncio

import pytest

from toyd import State, Trigger
from toyd.audio.pcm import frames
from toyd.errors import ConfigError
from toyd.events import AudioFrame, StateChanged, StateRequest, WakeWordDetected
from toyd.testing import next_event, running_daemon, wait_for
from toyd_plugins.wakeword.detector import WakeWordDetector, WakeWordModelError, WakeWordSpec
from toyd_plugins.wakeword.settings import WakeWordSettings, builtin_models_dir, model_paths
from wakeword_audio import JARVIS_VOICES, SILENCE, hey_jarvis, other_speech, white_noise

ALL_WORDS = ("hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy", "ok_nabu")


def make_detector(*names: str, **overrides: object) -> WakeWordDetector:
    models = [{"name": n, **overrides} for n in names]
    from toyd.schema import build

    settings = build(WakeWordSettings, {"models": models})
    melspec, embedding, specs = model_paths(settings, builtin_models_dir() or ".")
    return WakeWordDetector(melspec, embedding, specs)


@pytest.fixture(scope="module")
def detector() -> WakeWordDetector:
    return make_detector(*ALL_WORDS)


@pytest.mark.parametrize(("voice", "rate"), JARVIS_VOICES)
def test_hey_jarvis_triggers_only_hey_jarvis(
    detector: WakeWordDetector, voice: str, rate: int
) -> None:
    detector.reset()
    scores, hits = detector.process(
        hey_jarvis(voice, rate, "what is the weather like today") + SILENCE
    )
    assert [h.model for h in hits] == ["hey_jarvis"], (scores, hits)
    assert scores["hey_jarvis"] >= 0.9
    assert all(scores[w] < 0.5 for w in ALL_WORDS if w != "hey_jarvis"), scores


@pytest.mark.parametrize("audio", ["speech", "noise", "silence"])
def test_negative_audio_does_not_trigger(detector: WakeWordDetector, audio: str) -> None:
    pcm = {"speech": other_speech, "noise": white_noise, "silence": lambda: bytes(32000 * 5)}[
        audio
    ]()
    detector.reset()
    scores, hits = detector.process(pcm)
    assert hits == [], (scores, hits)
    assert max(scores.values()) < 0.5


def test_refractory_and_patience() -> None:
    twice = hey_jarvis() + hey_jarvis()  # two wake words ~2 s apart
    # no refractory time: every chunk at or above threshold is a trigger
    assert len(make_detector("hey_jarvis", refractory=0.0).process(twice)[1]) > 2
    hits = make_detector("hey_jarvis", refractory=1.0).process(twice)[1]
    assert len(hits) == 2 and hits[1].time - hits[0].time >= 1.0
    d = make_detector("hey_jarvis", refractory=10.0)
    assert len(d.process(twice)[1]) == 1
    # patience higher than the number of chunks the word stays above threshold: never fires
    d = make_detector("hey_jarvis", patience=25)
    scores, hits = d.process(twice)
    assert hits == [] and scores["hey_jarvis"] > 0.9


def test_stream_in_small_pieces_equals_one_call() -> None:
    pcm = hey_jarvis()
    whole = make_detector("hey_jarvis").process(pcm)
    d = make_detector("hey_jarvis")
    pieces = [d.process(f) for f in frames(pcm)]
    assert [h.time for p in pieces for h in p[1]] == [h.time for h in whole[1]]
    assert max(p[0]["hey_jarvis"] for p in pieces) == pytest.approx(
        whole[0]["hey_jarvis"], abs=1e-6
    )


def test_bad_model_files_give_clear_errors(tmp_path) -> None:
    melspec, embedding, specs = model_paths(WakeWordSettings(), tmp_path)
    with pytest.raises(WakeWordModelError, match="model file not found: .*nope.tflite"):
        WakeWordDetector(melspec, embedding, [WakeWordSpec("x", tmp_path / "nope.tflite")])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all" * 10)
    with pytest.raises(WakeWordModelError, match="junk.tflite: not a usable tflite model"):
        WakeWordDetector(melspec, embedding, [WakeWordSpec("x", junk)])
    # a real tflite file that is not a wake word classifier
    with pytest.raises(WakeWordModelError, match="not an openWakeWord classifier"):
        WakeWordDetector(melspec, embedding, [WakeWordSpec("x", embedding)])


def test_config_rejects_unknown_builtin_and_duplicates() -> None:
    from toyd.schema import build

    with pytest.raises(
        ConfigError, match=r"wakeword.models\[0\]: no built-in model named 'hey_teddy'"
    ):
        build(WakeWordSettings, {"models": [{"name": "hey_teddy"}]}, path="wakeword")
    with pytest.raises(ConfigError, match="same name"):
        build(WakeWordSettings, {"models": [{"name": "alexa"}, {"name": "alexa"}]}, path="wakeword")
    with pytest.raises(ConfigError, match=r"threshold: out of range"):
        build(WakeWordSettings, {"models": [{"name": "alexa", "threshold": 1.5}]}, path="wakeword")


# --- in a real daemon: AudioFrame events in, WakeWordDetected + state out ------------------------


async def feed(app, pcm: bytes, *, frames_per_tick: int = 4, tick: float = 0.02) -> None:
    """Publish PCM as 20 ms AudioFrames at 4x real time, like a fast microphone."""
    for seq, frame in enumerate(frames(pcm)):
        app.bus.publish(AudioFrame(pcm=frame, seq=seq))
        if seq % frames_per_tick == frames_per_tick - 1:
            await asyncio.sleep(tick)


async def test_wake_word_moves_idle_to_listening(state_dir) -> None:
    async with running_daemon(
        {"role": "device", "plugins": ["wakeword"]}, state_dir=state_dir
    ) as app:
        sub = app.bus.subscribe("test", (WakeWordDetected, StateChanged))
        await feed(app, other_speech()[: 32000 * 2] + hey_jarvis())
        hit = await next_event(sub, WakeWordDetected, timeout=15)
        assert hit.model == "hey_jarvis" and hit.score >= 0.5
        change = await next_event(sub, StateChanged, timeout=5)
        assert (change.old, change.new, change.cause) == (
            State.IDLE,
            State.LISTENING,
            "wake_word:hey_jarvis",
        )


async def test_malformed_frames_are_dropped_not_fatal(state_dir, caplog) -> None:
    async with running_daemon(
        {"role": "device", "plugins": ["wakeword"]}, state_dir=state_dir
    ) as app:
        sub = app.bus.subscribe("test", (WakeWordDetected,))
        app.bus.publish(AudioFrame(pcm=b"\x01\x02\x03", seq=99))
        await feed(app, hey_jarvis())
        assert (await next_event(sub, WakeWordDetected, timeout=15)).model == "hey_jarvis"
        assert "dropped a malformed audio frame (seq 99, 3 bytes" in caplog.text


async def test_paused_while_sleeping_and_speaking_then_resumes(state_dir) -> None:
    async with running_daemon(
        {"role": "device", "plugins": ["wakeword"]}, state_dir=state_dir
    ) as app:
        plugin = app.host.plugins["wakeword"]
        sub = app.bus.subscribe("test", (WakeWordDetected, StateChanged))
        app.bus.publish(StateRequest(trigger=Trigger.SLEEP))
        await wait_for(lambda: plugin.state is State.SLEEPING, timeout=5)
        await feed(app, hey_jarvis())
        app.bus.publish(StateRequest(trigger=Trigger.WAKE))
        # events are handled in order: once the plugin sees IDLE, every sleeping frame was skipped
        await wait_for(lambda: plugin.state is State.IDLE, timeout=10)
        assert plugin.chunks_scored == 0 and plugin.detections == 0
        await feed(app, hey_jarvis())
        await next_event(sub, WakeWordDetected, timeout=15)
        assert plugin.chunks_scored > 0


async def test_barge_in_setting_decides_listening_while_speaking(state_dir) -> None:
    from toyd.events import ButtonPressed, PlaybackStarted, SpeechEnded

    config = {"role": "device", "plugins": ["wakeword"], "wakeword": {"barge_in": True}}
    async with running_daemon(config, state_dir=state_dir) as app:
        plugin = app.host.plugins["wakeword"]
        sub = app.bus.subscribe("test", (StateChanged,))
        for event in (ButtonPressed(), SpeechEnded(), PlaybackStarted(response_id="r1")):
            app.bus.publish(event)
        await next_event(sub, StateChanged, timeout=5, where=lambda e: e.new is State.SPEAKING)
        await feed(app, hey_jarvis())
        change = await next_event(sub, StateChanged, timeout=15)
        assert (change.old, change.new) == (State.SPEAKING, State.LISTENING)  # barge-in by voice
        assert plugin.detections == 1


async def test_hook_toyd_reconfigure_wakeword(state_dir) -> None:
    from toyd.config import validate

    async with running_daemon(
        {"role": "device", "plugins": ["wakeword"]}, state_dir=state_dir
    ) as app:
        plugin = app.host.plugins["wakeword"]
        registry_schema = lambda name: WakeWordSettings if name == "wakeword" else None  # noqa: E731
        stricter = validate(
            {
                "role": "device",
                "plugins": ["wakeword"],
                "state_dir": str(state_dir),
                "wakeword": {"models": [{"name": "hey_jarvis", "threshold": 0.999}]},
            },
            registry_schema,
        )
        assert await app.apply_config(stricter) == []
        assert plugin.detector.words[0].spec.threshold == 0.999
        other = validate(
            {
                "role": "device",
                "plugins": ["wakeword"],
                "state_dir": str(state_dir),
                "wakeword": {"models": [{"name": "alexa"}]},
            },
            registry_schema,
        )
        assert await app.apply_config(other) == [
            "wakeword"
        ]  # new model files load at the next start


async def test_missing_model_file_stops_startup_with_one_line(state_dir, tmp_path) -> None:
    from toyd.errors import PluginError

    config = {
        "role": "device",
        "plugins": ["wakeword"],
        "wakeword": {"models": [{"name": "hey_teddy", "path": str(tmp_path / "hey_teddy.tflite")}]},
    }
    with pytest.raises(
        PluginError,
        match=r"plugin 'wakeword': failed to start: WakeWordModelError: "
        r"model file not found: .*hey_teddy.tflite",
    ):
        async with running_daemon(config, state_dir=state_dir):
            pass


async def test_own_model_by_path(state_dir) -> None:
    """A maker's model is any openWakeWord .tflite file; here a copy of a built-in one under a new name."""
    import shutil

    own = state_dir / "hey_buddy.tflite"
    shutil.copy(builtin_models_dir() / "hey_jarvis_v0.1.tflite", own)
    config = {
        "role": "device",
        "plugins": ["wakeword"],
        "wakeword": {"models": [{"name": "hey_buddy", "path": str(own), "threshold": 0.6}]},
    }
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("test", (WakeWordDetected,))
        await feed(app, hey_jarvis())
        hit = await next_event(sub, WakeWordDetected, timeout=15)
        assert hit.model == "hey_buddy" and hit.score >= 0.6


def test_built_in_models_are_found_first_in_models_dir(tmp_path):
    """The SD image installs the model files into a folder; that folder wins over the package."""
    from toyd.schema import build
    from toyd_plugins.wakeword.settings import (
        BUILTIN_FILES,
        WakeWordSettings,
        builtin_models_dir,
        model_paths,
    )

    for key in ("melspec", "embedding", "hey_jarvis"):
        (tmp_path / BUILTIN_FILES[key]).write_bytes(
            (builtin_models_dir() / BUILTIN_FILES[key]).read_bytes()
        )
    settings = build(WakeWordSettings, {"models_dir": str(tmp_path)})
    melspec, embedding, specs = model_paths(settings, tmp_path)
    assert melspec.parent == embedding.parent == specs[0].path.parent == tmp_path
    default = build(WakeWordSettings, {"models_dir": str(tmp_path / "absent")})
    assert model_paths(default, tmp_path)[0].parent == builtin_models_dir()
