"""Error codes of protocol v1 (the ``code`` of an ``error`` message) and close codes.

Codes are stable strings: clients switch on them, humans read ``message``.
"""

from __future__ import annotations

# --- error message codes ------------------------------------------------------------------
BAD_JSON = "bad_json"  # text frame is not a JSON object
UNKNOWN_TYPE = "unknown_type"  # ``type`` missing or not known in this direction
BAD_MESSAGE = "bad_message"  # a field is missing or has the wrong type/value
TOO_LARGE = "too_large"  # frame or text over the limit (docs/protocol.md "Limits")
NOT_READY = "not_ready"  # a message other than hello before the handshake finished
UNSUPPORTED_VERSION = "unsupported_version"  # protocol version not served
UNSUPPORTED_AUDIO = "unsupported_audio"  # audio_params not served
UNEXPECTED_AUDIO = "unexpected_audio"  # binary frame while not listening
BAD_AUDIO = "bad_audio"  # binary frame is not a decodable Opus packet
AUDIO_TOO_LONG = "audio_too_long"  # listened longer than the limit; treated as listen stop
RATE_LIMITED = "rate_limited"  # too many frames or messages per second; excess dropped
BUSY = "busy"  # e.g. ``say`` while a turn is running
BACKEND = "backend"  # the AI chain failed for this turn (the toy may answer locally)

ALL = (
    BAD_JSON,
    UNKNOWN_TYPE,
    BAD_MESSAGE,
    TOO_LARGE,
    NOT_READY,
    UNSUPPORTED_VERSION,
    UNSUPPORTED_AUDIO,
    UNEXPECTED_AUDIO,
    BAD_AUDIO,
    AUDIO_TOO_LONG,
    RATE_LIMITED,
    BUSY,
    BACKEND,
)

# --- WebSocket close codes ----------------------------------------------------------------
CLOSE_GOING_AWAY = 1001  # server shutting down: reconnect with backoff
CLOSE_POLICY = 1008  # hello timeout, too many errors
CLOSE_TOO_BIG = 1009  # frame over the hard limit (closed by the WebSocket layer)
CLOSE_REPLACED = 4000  # a newer connection of the same device took over this session
CLOSE_REVOKED = 4001  # the toy's token was revoked: it must get a new one (activation)
