"""The daemon as systemd runs it: READY and WATCHDOG over sd_notify, logs, SIGTERM, the units."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from example_configs import private_toy_config
from toyd import logs, systemd

TOYD = [sys.executable, "-m", "toyd"]


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield sock, path
    sock.close()


def read_until(sock: socket.socket, wanted: str) -> list[str]:
    messages = []
    while True:
        message = sock.recv(4096).decode()
        messages.append(message)
        if wanted in message:
            return messages


def test_device_starts_notifies_ready_pings_watchdog_and_stops_on_sigterm(
    repo_root: Path, tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "200000",
        "JOURNAL_STREAM": "8:1",
    }
    state = tmp_path / "state"
    config = private_toy_config(tmp_path / "toyd.yaml")
    with subprocess.Popen(
        [*TOYD, "device", "--simulate", "-c", str(config), "--state-dir", str(state)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            ready = read_until(sock, "READY=1")
            watchdog = read_until(sock, "WATCHDOG=1")
            assert any("STATUS=toyd device running" in m for m in ready) and watchdog
            status = json.loads((state / "status.json").read_text())
            assert status["ready"] and status["state"] == "idle" and status["pid"] == proc.pid
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)  # the 2 s figure is measured in bench/bench_startup.py
            stopping = read_until(sock, "STOPPING=1")
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 0 and stopping
        err = proc.stderr.read() if proc.stderr else ""
    # under systemd: priority prefixes, no timestamps
    assert "<6>toyd.daemon: READY: toyd device test-" in err and "<6>toyd.daemon: stopped" in err
    assert "Traceback" not in err
    assert not json.loads((state / "status.json").read_text())["ready"]


def test_wrong_role_and_missing_file_are_one_line_errors(repo_root: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [*TOYD, "device", "-c", str(repo_root / "config" / "cloud.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "this file is for the cloud role" in result.stderr
    result = subprocess.run(
        [*TOYD, "device", "-c", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stderr.strip().endswith(
        "file not found; hint: pass the config with -c FILE"
    )


def test_unusable_state_dir_is_a_clear_error(repo_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run(
        [
            *TOYD,
            "device",
            "--simulate",
            "-c",
            str(private_toy_config(tmp_path / "toyd.yaml")),
            "--state-dir",
            str(blocker / "sub"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        result.returncode == 1
        and "is not usable" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_help_teaches(repo_root: Path) -> None:
    out = subprocess.run([*TOYD, "--help"], capture_output=True, text=True, timeout=60).stdout
    for text in ("device", "cloud", "check-config", "plugins", "examples:", "docs/config.md"):
        assert text in out
    out = subprocess.run([*TOYD, "plugins"], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("NAME") and "statusfile" in out


PLUGINS_IMPORTED = """
import sys
from toyd.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(" ".join(sorted({m.split(".")[1] for m in sys.modules if m.startswith("toyd_plugins.")})))
sys.exit(code)
"""


def plugins_imported(*argv: str) -> set[str]:
    """Which plugins a ``toyd`` command line imports (in a fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", PLUGINS_IMPORTED, *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split("\n")[-2].split())


def test_the_command_line_imports_only_the_plugins_it_needs(
    repo_root: Path, tmp_path: Path
) -> None:
    assert plugins_imported("--version") == set()
    config = tmp_path / "toyd.yaml"
    config.write_text("plugins: [statusfile, vad]\n")
    assert plugins_imported("check-config", str(config)) == {"statusfile", "vad"}
    assert {"gateway", "wakeword", "safety"} <= plugins_imported("plugins")  # lists them all
    assert "wakeword" in plugins_imported("wakeword", "--help"), (
        "a plugin's own command still works"
    )


def test_sd_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 5.0


def test_log_format_terminal_vs_journal(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    logs.setup("info", journal=True)
    logging.getLogger("toyd.x").warning("hello")
    logs.setup("info", journal=False)
    logging.getLogger("toyd.x").info("there")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "<4>toyd.x: hello"
    assert err[1].endswith("INFO    toyd.x: there") and err[1][2] == ":"  # HH:MM:SS prefix
    for name in ("toyd", "toyd_plugins"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_units_verify(repo_root: Path, tmp_path: Path) -> None:
    toyd = shutil.which("toyd", path=str(Path(sys.executable).parent)) or shutil.which("toyd")
    assert toyd
    for name in ("toyd.service", "toyd-cloud.service"):
        text = (repo_root / "systemd" / name).read_text()
        for key in (
            "Type=notify",
            "WatchdogSec=",
            "Restart=always",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "StateDirectory=",
            "User=toyd",
        ):
            assert key in text, f"{name} lacks {key}"
        (tmp_path / name).write_text(text.replace("/opt/toyd/venv/bin/toyd", toyd))
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            *(str(tmp_path / n) for n in ("toyd.service", "toyd-cloud.service")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert result.returncode == 0, result.stderr
    assert "SupplementaryGroups=gpio audio" in (repo_root / "systemd" / "toyd.service").read_text()


def test_disable_flag_blocks_a_plugin_the_config_enables(repo_root: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = private_toy_config(tmp_path / "toyd.yaml")
    with subprocess.Popen(
        [
            *TOYD,
            "device",
            "--simulate",
            "-c",
            str(config),
            "--state-dir",
            str(state),
            "--disable",
            "statusfile",
        ],
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "READY:" in line:
                break
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert "statusfile" not in line
    assert not (state / "status.json").exists()
