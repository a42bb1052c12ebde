"""The state directory: one place for SQLite files and runtime state."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .errors import StateDirError


def resolve(configured: str, override: str | None = None) -> Path:
    """Pick the state directory: CLI flag, then systemd's ``STATE_DIRECTORY``, then config."""
    chosen = override or os.environ.get("STATE_DIRECTORY", "").split(":")[0] or configured
    return Path(chosen).expanduser()


def prepare(path: Path) -> Path:
    """Create ``path`` (mode 0750) if needed and check it is writable."""
    try:
        path.mkdir(mode=0o750, parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StateDirError(
            f"state directory {str(path)!r} is not usable: {exc.strerror}; "
            "set state_dir in the config or pass --state-dir"
        ) from None
    return path


_write_lock = threading.Lock()


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader or a power cut never sees half a file.

    Writes run in executor threads; one may still be running when its task is cancelled
    (shutdown) and a final write starts: the lock keeps them in order, one at a time.
    """
    with _write_lock:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
