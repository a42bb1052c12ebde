"""Flood defence over real sockets: junk connections are bounded and quiet, a real toy still gets in."""

from __future__ import annotations

import asyncio
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from linkkit import RawToy, cloud, speech
from toyd.testing import wait_for

DROPPED = "dropped connections that had not authenticated"
REFUSED = "refused connections: bad credentials"


async def bad_login(port: int) -> None:
    with pytest.raises(InvalidStatus):
        await connect(
            f"ws://127.0.0.1:{port}",
            proxy=None,
            open_timeout=5,
            additional_headers={"Authorization": "Bearer wrong-token-1", "Device-Id": "toy-1"},
        )


async def test_junk_connections_are_bounded_and_a_toy_still_talks(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, "toyd_plugins.gateway")
    async with cloud(tmp_path, max_unauthenticated=8) as (app, port):
        gateway = app.host.plugins["gateway"].gateway
        gateway.waiting.grace = (
            0.0  # no grace: each newcomer pushes the oldest out (deterministic here)
        )
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
        await wait_for(lambda: len(gateway.waiting) == 8)
        for _ in range(30):
            await bad_login(port)
        toy = await RawToy(port).connect()  # a real toy pushes the oldest junk out and gets in
        await toy.talk(speech())
        messages, audio = await toy.response()
        assert messages[-1]["type"] == "tts" and messages[-1]["reason"] == "done" and audio
        await toy.close()
        dropped = 0
        for reader, writer in idle:  # all but the newest few were closed by the gateway
            dropped += await asyncio.wait_for(reader.read(1), 5) == b""
            writer.close()
        assert dropped >= 22
        gateway.summary.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert sum(DROPPED in line for line in lines) <= 2, lines
    assert sum(REFUSED in line for line in lines) <= 2, lines
    assert any(REFUSED in line and "29 more" in line for line in lines), lines


async def test_newcomers_are_dropped_while_everyone_waiting_is_within_grace(tmp_path) -> None:
    async with cloud(tmp_path, max_unauthenticated=8) as (app, port):
        gateway = app.host.plugins["gateway"].gateway
        gateway.waiting.grace = 60.0
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        await wait_for(lambda: len(gateway.waiting) == 8)
        late_reader, late_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(late_reader.read(1), 5) == b""  # dropped, the first 8 kept
        assert len(gateway.waiting) == 8
        for _, writer in [*idle, (late_reader, late_writer)]:
            writer.close()


async def test_out_of_files_on_accept_is_one_summary_not_a_traceback_each(tmp_path, caplog) -> None:
    async with cloud(tmp_path) as (app, port):
        loop = asyncio.get_running_loop()
        for _ in range(500):
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files"),
                }
            )
        app.host.plugins["gateway"].gateway.summary.flush()
    lines = [r for r in caplog.records if "out of files" in r.getMessage()]
    assert len(lines) == 2 and "499 more" in lines[1].getMessage()
    assert not any(r.exc_info for r in caplog.records)
