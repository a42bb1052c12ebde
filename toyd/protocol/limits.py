"""Size, rate and time limits of protocol v1 (shared so both sides agree)."""

from __future__ import annotations

PROTOCOL_VERSION = 1
MAX_TEXT_FRAME = 4096  # bytes of one JSON text frame
MAX_TEXT_CHARS = 1000  # characters of any text field (say, stt, llm, alert)
MAX_AUDIO_FRAME = 1500  # bytes of one uplink Opus packet (a 20 ms packet is ~60-160)
MAX_WS_FRAME = 65536  # hard WebSocket limit: bigger frames close the connection (1009)
HELLO_TIMEOUT = 10.0  # seconds each side waits for the other's hello
UPLINK_FPS = 50  # steady uplink audio frames per second (20 ms frames)
UPLINK_BURST = 100  # extra frames a device may send at once (a reconnect flushes a buffer)
MESSAGES_PER_SECOND = 20  # steady control messages per second
MESSAGES_BURST = 40
MAX_LISTEN_SECONDS = 30.0  # longest utterance; longer is cut (audio_too_long) and answered
CUT_GRACE = 3.0  # seconds after a cut in which the toy's in-flight audio is dropped silently
MAX_ERRORS = 50  # protocol errors in one connection before it is closed (1008)
KEEPALIVE_INTERVAL = 20.0  # seconds between WebSocket pings (both sides)
KEEPALIVE_TIMEOUT = 20.0  # seconds without pong before the link counts as dead


def as_dict() -> dict[str, float]:
    """The limits a server announces in its hello."""
    return {
        "max_text_frame": MAX_TEXT_FRAME,
        "max_text_chars": MAX_TEXT_CHARS,
        "max_audio_frame": MAX_AUDIO_FRAME,
        "uplink_fps": UPLINK_FPS,
        "messages_per_second": MESSAGES_PER_SECOND,
        "max_listen_seconds": MAX_LISTEN_SECONDS,
    }
