"""Parent commands: the payload schema of each ``cmd/<name>`` topic and its strict parser.

Parsing is pure: bytes in, a :class:`ParsedCommand` or a :class:`CommandError` naming the
topic and the field out. The plugin then carries the command out.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from toyd import ToydError
from toyd.quiet_hours import check_hhmm, check_tz


class CommandError(ToydError):
    """A command payload was rejected; ``request_id`` is echoed when it could be read."""

    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclasses.dataclass(frozen=True)
class Field:
    """One payload field: its JSON type and bounds."""

    kind: type
    required: bool = True
    min: int | None = None
    max: int | None = None  # value for int, length for str

    def check(self, value: Any) -> str | None:
        """The problem with ``value``, or None when it is fine."""
        if self.kind is bool:
            return (
                None if isinstance(value, bool) else f"expected true or false (got {_short(value)})"
            )
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected a whole number (got {_short(value)})"
            if (self.min is not None and value < self.min) or (
                self.max is not None and value > self.max
            ):
                return f"out of range: must be between {self.min} and {self.max} (got {value})"
            return None
        if not isinstance(value, str):
            return f"expected text (got {_short(value)})"
        if self.min is not None and len(value.strip()) < self.min:
            return (
                "must not be empty" if self.min == 1 else f"must be at least {self.min} characters"
            )
        if self.max is not None and len(value) > self.max:
            return f"too long: at most {self.max} characters (got {len(value)})"
        return None


SAY_MAX_CHARS = 500

# name -> fields of its JSON object (besides the optional request_id)
COMMANDS: dict[str, dict[str, Field]] = {
    "volume": {"level": Field(int, min=0, max=100)},
    "mute": {"on": Field(bool)},
    "sleep": {"on": Field(bool)},
    "wake": {},
    "quiet_hours": {
        "start": Field(str, required=False, max=5),
        "end": Field(str, required=False, max=5),
        "tz": Field(str, required=False, max=64),
        "off": Field(bool, required=False),
    },
    "usage_limit": {"minutes": Field(int, min=0, max=1440)},
    "say": {"text": Field(str, min=1, max=SAY_MAX_CHARS)},
    "persona": {"id": Field(str, min=1, max=64)},
    "reload_config": {},
    "update": {
        "url": Field(str, min=8, max=2048),
        "sha256": Field(str, min=64, max=64),
        "version": Field(str, required=False, max=64),
    },
    "status": {},
}


@dataclasses.dataclass(frozen=True)
class ParsedCommand:
    """A command whose payload passed validation."""

    name: str
    args: dict[str, Any]
    request_id: Any = None


def parse(name: str, payload: bytes, *, max_bytes: int) -> ParsedCommand:
    """Validate one command message; raises CommandError naming the topic and field."""
    where = f"cmd/{name}"
    if len(payload) > max_bytes:
        raise CommandError(f"{where}: payload too large ({len(payload)} bytes, limit {max_bytes})")
    try:
        data = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except UnicodeDecodeError:
        raise CommandError(f"{where}: payload is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise CommandError(f"{where}: malformed JSON: {problem}") from None
    if not isinstance(data, dict):
        raise CommandError(f'{where}: payload must be a JSON object, like {{"request_id": "1"}}')
    request_id = data.pop("request_id", None)
    if request_id is not None and (
        isinstance(request_id, bool)
        or not isinstance(request_id, (str, int))
        or len(str(request_id)) > 128
    ):
        raise CommandError(
            f"{where}: request_id: expected text or a whole number, at most 128 characters"
        )
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(
            f"{where}: unknown command; known: {', '.join(sorted(COMMANDS))}", request_id
        )
    for key in data:
        if key not in spec:
            known = ", ".join(sorted(spec)) or "none besides request_id"
            raise CommandError(f"{where}: {key}: unknown field (fields: {known})", request_id)
    for key, field in spec.items():
        if key not in data:
            if field.required:
                raise CommandError(f"{where}: {key}: required field is missing", request_id)
            continue
        problem = field.check(data[key])
        if problem:
            raise CommandError(f"{where}: {key}: {problem}", request_id)
    if name == "quiet_hours":
        _check_quiet_hours(where, data, request_id)
    if name == "update":
        if not data["url"].startswith(("http://", "https://")):
            raise CommandError(f"{where}: url: expected an http:// or https:// URL", request_id)
        if any(c not in "0123456789abcdef" for c in data["sha256"].lower()):
            raise CommandError(f"{where}: sha256: expected 64 hex digits", request_id)
    return ParsedCommand(name, data, request_id)


def _check_quiet_hours(where: str, data: dict[str, Any], request_id: Any) -> None:
    if data.get("off"):
        extra = sorted(set(data) - {"off"})
        if extra:
            raise CommandError(f'{where}: {extra[0]}: not allowed with "off": true', request_id)
        return
    for key in ("start", "end"):
        if key not in data:
            raise CommandError(
                f'{where}: {key}: required field is missing (or send {{"off": true}})', request_id
            )
        try:
            check_hhmm(data[key], key)
        except ValueError as exc:
            raise CommandError(f"{where}: {key}: {exc}", request_id) from None
    if data["start"] == data["end"]:
        raise CommandError(f"{where}: end: must differ from start", request_id)
    try:
        check_tz(data.get("tz", ""))
    except ValueError as exc:
        raise CommandError(f"{where}: tz: {exc}", request_id) from None


def result(
    ok: bool,
    *,
    error: str | None = None,
    request_id: Any = None,
    data: dict[str, Any] | None = None,
) -> str:
    """The JSON answer published on ``cmd/<name>/result``."""
    out: dict[str, Any] = {"ok": ok, "error": error, "request_id": request_id}
    if data is not None:
        out["data"] = data
    return json.dumps(out, separators=(",", ":"))


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, (bytes, bytearray)) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
