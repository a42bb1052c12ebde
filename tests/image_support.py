"""Helpers of the SD image tests: where the image tools are, a build config, a build run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "image"
sys.path.insert(0, str(IMAGE))  # the build's own package, toyd_image

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def write_config(tmp_path: Path, **changes: object) -> Path:
    """A build config like image/build.yaml with absolute paths and some keys changed."""
    data = yaml.safe_load((IMAGE / "build.yaml").read_text())
    data.update(
        packages=str(IMAGE / "packages.txt"),
        hooks=str(IMAGE / "hooks"),
        toyd_config=str(REPO / "config/toyd.yaml"),
    )
    data.update(changes)
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_build(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(IMAGE / "build.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def small_disk(tmp_path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MB for out-of-space tests (needs root; skips where it cannot mount)."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(small)],
        capture_output=True,
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield small
    finally:
        subprocess.run(["umount", str(small)], check=True)
