"""The store interface and the choice of implementation by URL."""

from __future__ import annotations

import abc
import dataclasses

from toyd.errors import ToydError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreError(ToydError):
    """The store cannot be opened or used (bad URL, server unreachable, driver missing)."""


@dataclasses.dataclass(frozen=True)
class Alert:
    """One safety alert as the cloud logged it for a toy's parents."""

    device_id: str
    at: float
    category: str
    severity: str
    excerpt: str


class Store(abc.ABC):
    """Conversation memory and the alert log, shared by every gateway process that opens it.

    ``turns`` recent exchanges per toy are kept verbatim; older ones are folded into a
    running summary of at most ``summary_chars`` characters (see :func:`fold`).
    """

    def __init__(self, turns: int = 6, summary_chars: int = 600) -> None:
        self.turns = turns
        self.summary_chars = summary_chars

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the tables if they are missing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush what is pending (bounded) and disconnect."""

    @abc.abstractmethod
    async def recall(self, device_id: str) -> tuple[str, list[tuple[str, str]]]:
        """The summary and the recent ``(child, toy)`` exchanges, oldest first."""

    @abc.abstractmethod
    async def remember(self, device_id: str, child: str, toy: str) -> None:
        """Store one exchange; fold what falls out of the window into the summary."""

    @abc.abstractmethod
    async def record_alert(self, alert: Alert) -> None:
        """Append a safety alert to the log."""

    @abc.abstractmethod
    async def alerts(self, device_id: str, limit: int = 50) -> list[Alert]:
        """The newest ``limit`` alerts of a toy, oldest first."""


def fold(summary: str, exchanges: list[tuple[str, str]], limit: int) -> str:
    """Append one short line per exchange; keep only the newest ``limit`` characters, at line bounds."""
    lines = [line for line in summary.split("\n") if line]
    for child, _toy in exchanges:
        topic = " ".join(child.split())[:120]
        if topic:
            lines.append(f"The child said: {topic}")
    while lines and len("\n".join(lines)) > limit:
        lines.pop(0)
    return "\n".join(lines)


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL server rather than a SQLite file."""
    return url.startswith(POSTGRES_SCHEMES)
