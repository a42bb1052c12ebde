"""What the audio plugin needs from a sound device, whatever the backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Emit = Callable[[bytes], None]


class Microphone(Protocol):
    """A source of 20 ms frames of 16 kHz mono int16 PCM."""

    name: str

    async def open(self) -> None:
        """Open the device (or file); raises AudioError with a clear message."""

    async def run(self, emit: Emit) -> None:
        """Call ``emit`` with every captured frame until cancelled."""

    async def close(self) -> None:
        """Release the device."""


class AudioOutput(Protocol):
    """The loudspeaker: takes 16 kHz mono int16 PCM; blocking calls run on the speaker thread.

    Frames carry a *generation*: :meth:`interrupt` raises the lowest generation that may
    still be output, so after it returns no frame of an older generation is ever played.
    """

    name: str
    stopped_at: float

    def open(self) -> None:
        """Open the device (speaker thread)."""

    def write(self, pcm: bytes, generation: int) -> bool:
        """Play one frame, paced like hardware (speaker thread); False when it was dropped."""

    def interrupt(self, generation: int) -> None:
        """Stop output of every older generation now; thread-safe and quick (loop thread)."""

    def discard(self) -> None:
        """Throw away audio the device still holds from interrupted generations (speaker thread)."""

    def close(self) -> None:
        """Release the device (speaker thread)."""
