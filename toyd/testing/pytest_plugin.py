"""pytest fixtures for toyd and its plugins (installed as the ``toyd`` pytest plugin)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .helpers import start_mosquitto


@pytest.fixture
def mosquitto() -> Iterator[int]:
    """A private Mosquitto broker on a free loopback port; yields the port."""
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    with start_mosquitto() as (_, port):
        yield port


@pytest.fixture
def state_dir(tmp_path):  # type: ignore[no-untyped-def]
    """A fresh state directory for one daemon."""
    path = tmp_path / "state"
    path.mkdir()
    return path
