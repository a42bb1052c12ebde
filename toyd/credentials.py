"""The toy's cloud token, as issued by activation: one file in the state directory, mode 0600.

cloudlink reads it when its config sets no token; the activation plugin writes it once a
parent has claimed the toy and deletes it when the cloud refuses it (revoked).
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_FILE = "cloud_token"
MAX_TOKEN = 512


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def read_token(state_dir: Path) -> str:
    """The stored token, or "" when there is none (or it is unreadable or malformed)."""
    try:
        text = token_path(state_dir).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if 0 < len(text) <= MAX_TOKEN and text.isprintable() and " " not in text else ""


def write_token(state_dir: Path, token: str) -> Path:
    """Store ``token`` atomically, readable by this user only (created 0600, never wider)."""
    path = token_path(state_dir)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def delete_token(state_dir: Path) -> bool:
    """Forget the token (the cloud revoked it); True if there was one."""
    try:
        token_path(state_dir).unlink()
        return True
    except FileNotFoundError:
        return False
