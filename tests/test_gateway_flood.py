"""Flood defence over real sockets: junk connections are bounded and quiet, a real toy still gets in."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from linkkit import TOKEN, RawToy, cloud, speech
from toyd.testing import free_port, wait_for

DROPPED = "dropped connections that had not authenticated"
REFUSED = "refused connections: bad credentials"


async def dropped(reader: asyncio.StreamReader) -> bool:
    """Whether the gateway closed this junk connection (a reset counts: closed at once)."""
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionResetError:
        return True


async def talks(toy: RawToy) -> None:
    """One turn, answered to its end."""
    await toy.talk(speech())
    messages, audio = await toy.response()
    assert messages[-1]["type"] == "tts" and messages[-1]["reason"] == "done" and audio


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
        await talks(toy)
        await toy.close()
        closed = 0
        for reader, writer in idle:  # all but the newest few were closed by the gateway
            closed += await dropped(reader)
            writer.close()
        assert closed >= 22
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
        assert await dropped(late_reader)  # a silent newcomer goes, the first 8 are kept
        assert len(gateway.waiting) == 8
        for _, writer in [*idle, (late_reader, late_writer)]:
            writer.close()


async def test_a_toy_gets_in_at_once_while_fresh_junk_holds_every_place(tmp_path) -> None:
    """Idle and half-open sockets within their grace fill the waiting room; a toy's whole request still wins."""
    async with cloud(tmp_path, max_unauthenticated=8) as (app, port):
        gateway = app.host.plugins["gateway"].gateway
        gateway.waiting.grace = 60.0
        junk = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        for _, writer in junk[4:]:  # half-open: an upgrade request that never ends
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        await wait_for(lambda: len(gateway.waiting) == 8)
        toy = await RawToy(port).connect()  # one attempt: the toy's connect does not retry
        await talks(toy)
        await toy.close()
        assert await dropped(junk[0][0])  # the oldest silent one made room
        assert len(gateway.waiting) <= 8
        for _, writer in junk:
            writer.close()


async def test_silent_sockets_beyond_the_limit_are_reset_before_any_websocket_state(
    tmp_path,
) -> None:
    """Twenty idle sockets in one accept batch: eight get a place, the rest a reset (never a place that was taken)."""
    async with cloud(tmp_path, max_unauthenticated=8) as (app, port):
        gateway = app.host.plugins["gateway"].gateway
        gateway.waiting.grace = 60.0
        # Connected while the loop is blocked: all twenty wait in the kernel's queue together.
        raw = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        try:
            await wait_for(lambda: len(gateway.waiting) == 8)
            loop = asyncio.get_running_loop()
            for sock in raw[8:]:
                sock.setblocking(False)
                with pytest.raises(ConnectionResetError):
                    await asyncio.wait_for(loop.sock_recv(sock, 1), 5)
            assert len(gateway.waiting) == 8
        finally:
            for sock in raw:
                sock.close()


async def test_toys_accepted_by_the_gateway_get_no_nagle_delay(tmp_path) -> None:
    """The gateway's own accept loop keeps asyncio's TCP_NODELAY: small frames leave at once."""
    async with cloud(tmp_path) as (app, port):
        toy = await RawToy(port).connect()
        session = app.host.plugins["gateway"].gateway.sessions["toy-1"]
        sock = session.conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        await toy.close()


def cloud_config(path: Path, port: int) -> None:
    """Junk is held a minute and never pushed out for being too many: only the file limit binds."""
    gateway = {"port": port, "tokens": {"toy-1": TOKEN}, "alert_log": ""}
    gateway |= {"max_unauthenticated": 5000, "handshake_timeout": 60}
    path.write_text(
        yaml.safe_dump(
            {
                "role": "cloud",
                "device_id": "cloud",
                "state_dir": str(path.parent),
                "plugins": ["gateway", "echochain"],
                "gateway": gateway,
            }
        )
    )


async def started(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Once the cloud accepts toy-1 (bounded: the daemon is starting)."""

    async def first_turn() -> None:
        while True:
            assert proc.poll() is None, "the cloud exited"
            try:
                await (await RawToy(port).connect()).close()
                return
            except OSError:  # refused while it starts
                await asyncio.sleep(0.05)

    await asyncio.wait_for(first_turn(), 30)


async def test_out_of_files_sheds_silent_junk_at_once_and_a_toy_gets_in(tmp_path: Path) -> None:
    """At its file limit (EMFILE on accept) the gateway aborts silent junk instead of pausing accept."""
    port, config = free_port(), tmp_path / "cloud.yaml"
    cloud_config(config, port)
    command = [sys.executable, "-m", "toyd", "cloud", "-c", str(config)]
    proc = subprocess.Popen(["prlimit", "--nofile=160:160", "--", *command], stderr=subprocess.PIPE)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        await started(port, proc)
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
        toy = await RawToy(port).connect()  # one attempt, while 200 idle sockets exceed its files
        await talks(toy)
        await toy.close()
        assert sum([await dropped(reader) for reader, _ in idle[:50]]) == 50
    finally:
        for _, writer in idle:
            writer.close()
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    log = err.decode()
    assert "cannot accept connections: out of files" in log, log[-2000:]
    assert log.count("out of files") <= 2 and "Traceback" not in log, log[-2000:]
