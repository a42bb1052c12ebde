"""A whole spoken clip from the ``toyd_synthesize`` hook (the device's cache and offline switch)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .audio import FRAME_BYTES
from .errors import BackendError

if TYPE_CHECKING:
    from .app import App
    from .turn import Turn


async def synthesize(app: App, turn: Turn, text: str, *, timeout: float = 60.0) -> bytes:
    """``text`` spoken as 16 kHz mono int16 PCM, padded to whole 20 ms frames.

    Any failure (no speech plugin enabled, the program failed, too slow, wrong chunks) is
    one :class:`BackendError`, so a caller keeps its text and goes on without audio.
    """
    try:
        async with asyncio.timeout(timeout):
            stream = await app.host.call_first("toyd_synthesize", turn=turn, text=text)
            if stream is None:
                raise BackendError(
                    "no text-to-speech plugin is enabled (add tts_espeak to plugins)"
                )
            chunks, iterator = [], stream.__aiter__()
            try:
                async for chunk in iterator:
                    if not isinstance(chunk, (bytes, bytearray, memoryview)):
                        raise BackendError(
                            f"toyd_synthesize yielded {type(chunk).__name__}, not PCM bytes"
                        )
                    chunks.append(bytes(chunk))
            finally:
                if hasattr(iterator, "aclose"):  # stops the engine at once on timeout or cancel
                    await iterator.aclose()
    except TimeoutError:
        raise BackendError(
            f"speaking {len(text)} characters took longer than {timeout:g} s"
        ) from None
    except (asyncio.CancelledError, BackendError):
        raise
    except Exception as exc:  # noqa: BLE001 - a faulty speech plugin costs the audio, not the caller
        raise BackendError(f"toyd_synthesize failed: {type(exc).__name__}: {exc}") from None
    pcm = b"".join(chunks)
    return pcm + bytes(-len(pcm) % FRAME_BYTES)
