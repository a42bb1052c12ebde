"""The ``audio`` config section: backend, devices, jitter buffer, volume."""

from __future__ import annotations

import dataclasses
from typing import Literal

from toyd import setting


@dataclasses.dataclass(frozen=True)
class FileBackendSettings:
    """The file/pipe sound device (``--simulate``, tests, demos): a WAV in, a WAV out."""

    input: str = setting(
        "",
        doc="Microphone source: a WAV file (any rate/width/channels), a raw 16 kHz "
        "mono s16le file or FIFO (.raw/.pcm or a pipe); empty = silence. "
        "Relative paths are relative to the working directory.",
    )
    input_format: Literal["auto", "wav", "raw"] = setting(
        "auto", doc="How to read `input`: auto looks at the name and the file type."
    )
    realtime: bool = setting(
        True,
        doc="Pace the microphone like real hardware (20 ms per frame); false = "
        "as fast as possible (tests, benchmarks). Silence after the end is "
        "always paced.",
    )
    at_end: Literal["silence", "loop"] = setting(
        "silence", doc="What the microphone does after the input ends."
    )
    output: str = setting(
        "speaker.wav",
        doc="Speaker WAV file (16 kHz mono int16), relative to state_dir "
        "or absolute; rewritten at each start.",
    )
    output_realtime: bool = setting(
        True,
        doc="Pace the speaker like real hardware (a frame takes 20 ms to "
        "play); false = write as fast as frames arrive.",
    )


@dataclasses.dataclass(frozen=True)
class PyAudioSettings:
    """A real sound card through PortAudio (ALSA on a Pi)."""

    input_device: str | int | None = setting(
        None,
        doc="Microphone: a part of the device name (see "
        "`arecord -L`, e.g. 'seeed' or 'USB'), an index, or "
        "null for the system default.",
    )
    output_device: str | int | None = setting(
        None, doc="Speaker: a part of the device name, an index, or null for the system default."
    )
    input_rate: int | None = setting(
        None,
        doc="Capture rate; null = 16000 if the card takes it, else "
        "the first supported of 48000, 44100, 32000, 22050, 8000.",
        min=8000,
        max=192000,
    )
    output_rate: int | None = setting(
        None, doc="Playback rate; null = probed like input_rate.", min=8000, max=192000
    )
    input_channels: int | None = setting(
        None,
        doc="Channels to open the microphone with; null = 1 if "
        "supported, else 2 (e.g. ReSpeaker 2-mic HAT).",
        min=1,
        max=16,
    )
    input_channel: int = setting(
        0, doc="Which captured channel is the microphone (0-based).", min=0, max=15
    )
    output_channels: int | None = setting(
        None,
        doc="Channels to open the speaker with; null = 1 if "
        "supported, else 2 (mono is copied to both).",
        min=1,
        max=8,
    )
    latency: Literal["low", "high"] = setting(
        "low",
        doc="PortAudio's suggested latency: low stops "
        "playback fastest on barge-in; high survives a busy CPU.",
    )


@dataclasses.dataclass(frozen=True)
class AudioSettings:
    """Settings of the ``audio`` section."""

    backend: Literal["pyaudio", "file"] = setting(
        "pyaudio",
        doc="pyaudio = a real sound card; file = "
        "the file/pipe device. --simulate always "
        "uses file.",
    )
    volume: int = setting(
        70, doc="Speaker volume 0-100 at start (parents change it live).", min=0, max=100
    )
    prebuffer_ms: int = setting(
        60,
        doc="Jitter buffer: reply audio collected before playback starts "
        "(and after an underrun), in ms.",
        min=0,
        max=2000,
    )
    stall_timeout: float = setting(
        3.0,
        doc="Seconds without new reply audio (and no end marker) after "
        "which a response counts as finished.",
        min=0.1,
        max=60,
    )
    capture_when_muted: bool = setting(
        False,
        doc="Publish microphone audio while the toy is MUTED (false: a muted toy hears nothing).",
    )
    pyaudio: PyAudioSettings = setting(factory=PyAudioSettings, doc="The sound card backend.")
    file: FileBackendSettings = setting(factory=FileBackendSettings, doc="The file/pipe backend.")

    @property
    def prebuffer_frames(self) -> int:
        """Whole 20 ms frames in the jitter buffer (at least one)."""
        return max(1, -(-self.prebuffer_ms // 20))


# Settings that can change while running; anything else reopens devices on restart.
LIVE_KEYS = ("volume", "prebuffer_ms", "stall_timeout", "capture_when_muted")
