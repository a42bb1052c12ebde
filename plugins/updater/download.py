"""Resumable, checksummed download of an update bundle (toyd's own HTTP client).

The file grows as ``<sha256>.part`` in the download folder; a later attempt for the same
bundle asks for the rest (``Range: bytes=N-``) and keeps what it had if the server answers
``206``. The SHA-256 covers the whole file, old part and new; a mismatch deletes it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from toyd.errors import BackendError
from toyd.httpclient import error_text, request

CHUNK = 256 * 1024
TIMEOUT = 30.0


class ChecksumError(BackendError):
    """The downloaded bytes are not the announced bundle."""


def _hash_file(path: Path) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
                size += len(block)
    except FileNotFoundError:
        pass
    return digest, size


async def fetch(
    url: str,
    sha256: str,
    folder: Path,
    *,
    max_bytes: int,
    run_blocking: Callable,  # type: ignore[type-arg]
    progress: Callable[[int, int], None],
) -> Path:
    """The verified bundle file (downloaded, or resumed); ``progress(done, total)`` as it goes."""
    final = folder / f"{sha256}.raucb"
    if final.exists():
        return final
    part = folder / f"{sha256}.part"
    digest, have = await run_blocking(_hash_file, part)
    headers = {"Range": f"bytes={have}-"} if have else {}
    async with await request("GET", url, headers=headers, timeout=TIMEOUT) as response:
        if response.status == 416 and have:  # nothing left to fetch: the part is complete
            total = have
        elif response.status in (200, 206):
            if response.status == 200 and have:  # the server cannot resume: start over
                digest, have = hashlib.sha256(), 0
            length = int(response.headers.get("content-length", "0") or 0)
            total = have + length if length else 0
            if total > max_bytes:
                raise BackendError(f"bundle is {total} bytes, more than the limit {max_bytes}")
            fd = os.open(
                part, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if have else os.O_TRUNC), 0o600
            )
            try:
                async for block in response.iter_bytes(CHUNK):
                    have += len(block)
                    if have > max_bytes:
                        raise BackendError(f"bundle is more than the limit of {max_bytes} bytes")
                    digest.update(block)
                    await run_blocking(os.write, fd, block)
                    progress(have, total)
                await run_blocking(os.fsync, fd)
            finally:
                os.close(fd)
        else:
            raise BackendError(f"download failed: {await error_text(response)}")
    if digest.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch: got {digest.hexdigest()[:16]}…, expected {sha256[:16]}…"
        )
    os.replace(part, final)
    return final
