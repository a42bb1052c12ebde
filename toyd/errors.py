"""The exception tree, written out in one place.

User-facing errors carry one clear sentence; tracebacks belong in debug logs only.
"""

from __future__ import annotations


class ToydError(Exception):
    """Root of every error toyd raises on purpose."""


class ConfigError(ToydError):
    """A config value is missing, malformed or out of range.

    Carries where it came from so the message can name the file and line (YAML on
    disk) or the topic (config pushed over MQTT), the dotted key path, the bad value
    and a hint.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str = "<config>",
        line: int | None = None,
        path: str = "",
        value: object = None,
        hint: str = "",
        has_value: bool = False,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.path = path
        self.value = value
        self.has_value = has_value
        self.hint = hint
        super().__init__(self.message)

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    @property
    def message(self) -> str:
        text = f"{self.location}: "
        if self.path:
            text += f"{self.path}: "
        text += self.problem
        if self.has_value:
            text += f" (got {_short(self.value)})"
        if self.hint:
            text += f"; hint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, object]:
        """The error as JSON-friendly fields, for MQTT error events."""
        return {
            "source": self.source,
            "line": self.line,
            "path": self.path,
            "problem": self.problem,
            "hint": self.hint,
        }


class PluginError(ToydError):
    """A plugin could not be found, loaded or started."""

    def __init__(self, plugin: str, problem: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {problem}")


class StateDirError(ToydError):
    """The state directory cannot be created or written."""


class ProtocolError(ToydError):
    """A device ↔ cloud message broke protocol v1; ``code`` is its error code (docs/protocol.md)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BackendError(ToydError):
    """A cloud AI backend (speech recognition, language model, speech synthesis) failed.

    The message names the backend (URL or engine) and what went wrong in one sentence.
    The gateway raises it too when the AI chain cannot answer a turn (no plugin
    answered, a hook failed or timed out).
    """


class BackendBusy(BackendError):
    """A backend's bounded queue is full: the request was refused instead of waiting forever."""


class AudioError(ToydError):
    """An audio device could not be opened or used."""


class GpioError(ToydError):
    """No usable GPIO: not a Raspberry Pi, missing pin library, or a pin taken or missing."""


class AudioFileError(AudioError):
    """An audio file is missing, unreadable or not a format toyd can convert."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}")
