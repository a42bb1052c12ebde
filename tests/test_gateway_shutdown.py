"""Stopping the cloud while a toy is connected: the bounded shutdown still closes the SQLite
files it opened, even when closing the toy's connection takes longer than the shutdown may."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from linkkit import TOKEN, cloud_config
from toyd.store import StoreError
from toyd.testing import free_port, running_daemon


async def silent_toy(port: int) -> asyncio.StreamWriter:
    """A toy that opens its WebSocket and then never reads, so it never answers the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Device-Id: toy-1\r\nProtocol-Version: 1\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return writer


async def test_a_toy_that_never_answers_the_close_leaves_no_store_open(tmp_path: Path) -> None:
    port = free_port()
    # the gateway waits up to 2 s for a toy's close (close_timeout): longer than this shutdown
    config = cloud_config(port) | {"shutdown_timeout": 0.5}
    async with running_daemon(config, state_dir=tmp_path) as app:
        alert_log = app.host.plugins["gateway"].alert_log
        assert alert_log is not None  # the default: gateway_alerts.sqlite in the state directory
        writer = await silent_toy(port)
    try:
        with pytest.raises(StoreError, match="not open"):
            await alert_log.alerts("toy-1")
    finally:
        writer.transport.abort()
