"""Logging: journald-friendly under systemd, timestamped on a terminal."""

from __future__ import annotations

import logging
import sys

from .systemd import under_systemd

# sd-daemon(3) priority prefixes, which journald turns into log levels.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>" + super().format(record)


def setup(level: str = "info", *, journal: bool | None = None) -> None:
    """Configure the ``toyd`` and ``toyd_plugins`` loggers (never the root logger's level)."""
    journal = under_systemd() if journal is None else journal
    handler = logging.StreamHandler(sys.stderr)
    if journal:
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"
            )
        )
    for name in ("toyd", "toyd_plugins"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
