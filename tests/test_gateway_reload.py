"""A reload (SIGHUP) that removes a toy's token ends that toy's open session; others keep theirs."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from websockets.exceptions import InvalidStatus

from linkkit import TOKEN, RawToy
from toyd.protocol import codes
from toyd.testing import free_port

OTHER = "token-of-toy-2"


def write_config(path: Path, port: int, tokens: dict[str, str]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "role": "cloud",
                "device_id": "cloud",
                "state_dir": str(path.parent / "state"),
                "plugins": ["gateway", "echochain"],
                "gateway": {"port": port, "tokens": tokens, "alert_log": ""},
            }
        )
    )


async def connected(port: int, proc: subprocess.Popen[bytes]) -> RawToy:
    """toy-1 once the cloud accepts it (bounded: the daemon is starting)."""
    for _ in range(300):
        assert proc.poll() is None, "the cloud exited"
        try:
            return await RawToy(port).connect()
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError("the cloud did not accept toy-1")


async def test_sighup_without_the_token_closes_the_open_session(tmp_path: Path) -> None:
    port, config = free_port(), tmp_path / "cloud.yaml"
    write_config(config, port, {"toy-1": TOKEN, "toy-2": OTHER})
    proc = subprocess.Popen(
        [sys.executable, "-m", "toyd", "cloud", "-c", str(config)], stderr=subprocess.PIPE
    )
    try:
        revoked = await connected(port, proc)
        kept = await RawToy(port, "toy-2", OTHER).connect()
        write_config(config, port, {"toy-2": OTHER})
        proc.send_signal(signal.SIGHUP)
        await asyncio.wait_for(revoked.conn.wait_closed(), 10)
        assert revoked.conn.close_code == codes.CLOSE_REVOKED
        await kept.send({"type": "ping", "id": 1})
        assert (await kept.expect("pong"))["id"] == 1
        try:
            await RawToy(port).connect()
            raise AssertionError("toy-1 was let in again")
        except InvalidStatus as exc:
            assert exc.response.status_code == 401
        await kept.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"toy-1: its token is no longer accepted after the reload" in err
