"""toyd-slot: the A/B choice at boot and RAUC's custom bootloader backend, on a temp state dir."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "image/overlay/rootfs"
SCRIPT = ROOTFS / "usr/lib/toyd-image/toyd-slot"
SYSTEM_CONF = ROOTFS / "etc/rauc/system.conf"

_loader = importlib.machinery.SourceFileLoader("toyd_slot", str(SCRIPT))
_spec = importlib.util.spec_from_loader("toyd_slot", _loader)
slot = importlib.util.module_from_spec(_spec)
_loader.exec_module(slot)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        TOYD_SLOT_DIR=str(tmp_path / "state"),
        TOYD_SLOT_RUN=str(tmp_path / "run"),
        TOYD_SLOT_SYSTEM_CONF=str(SYSTEM_CONF),
    )


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def out(env: dict[str, str], *args: str) -> str:
    return run(env, *args).stdout.strip()


def boot(env: dict[str, str]) -> tuple[str, bool]:
    """(booted slot, trial?) as RAUC and toyd-health see them after ``toyd-slot boot``."""
    line = out(env, "boot", "--no-mount")
    assert line.startswith("TOYD-SLOT: booted "), line
    run_dir = Path(env["TOYD_SLOT_RUN"])
    cmdline = (run_dir / "cmdline").read_text()
    assert cmdline.startswith(Path("/proc/cmdline").read_text().strip())
    booted = cmdline.split("rauc.slot=")[-1].strip()
    assert line.split()[2] == booted
    trial = (run_dir / "trial").exists()
    assert ("trial" in line) == trial
    return booted, trial


def test_fresh_card_boots_a_with_both_slots_good(env: dict[str, str]) -> None:
    assert out(env, "get-primary") == "A"
    assert out(env, "get-state", "A") == out(env, "get-state", "B") == "good"
    assert boot(env) == ("A", False)
    assert not (Path(env["TOYD_SLOT_DIR"]) / "state.json").exists()  # nothing changed


def test_install_then_good(env: dict[str, str]) -> None:
    """RAUC's calls during an install into B, then toyd-health's mark-good."""
    boot(env)
    run(env, "set-state", "B", "bad")  # before RAUC writes the slot
    assert out(env, "get-state", "B") == "bad" and out(env, "get-primary") == "A"
    run(env, "set-primary", "B")  # after the slot is written
    assert out(env, "get-primary") == "B" and out(env, "get-state", "B") == "good"
    assert boot(env) == ("B", True)
    run(env, "set-state", "B", "good")
    assert boot(env) == ("B", False)
    assert not (Path(env["TOYD_SLOT_RUN"]) / "trial").exists()
    assert json.loads(out(env, "status")) == {"primary": "B", "A": "good", "B": "good", "tries": 0}


def test_marked_bad_goes_back_to_the_other_slot(env: dict[str, str]) -> None:
    run(env, "set-state", "B", "bad")
    run(env, "set-primary", "B")
    assert boot(env) == ("B", True)
    run(env, "set-state", "B", "bad")  # toyd-health: toyd never became READY
    assert out(env, "get-primary") == "A"
    assert boot(env) == ("A", False)
    assert out(env, "get-state", "B") == "bad"


def test_tries_count_down_then_the_slot_is_given_up(env: dict[str, str]) -> None:
    """Boots that never reach the health check (hang, power cut) use up the trial."""
    run(env, "set-primary", "B")
    tries = []
    for _ in range(slot.TRIES):
        assert boot(env) == ("B", True)
        tries.append(json.loads(out(env, "status"))["tries"])
    assert tries == list(range(slot.TRIES - 1, -1, -1))
    booted = boot(env)
    assert booted == ("A", False)
    assert json.loads(out(env, "status")) == {"primary": "A", "A": "good", "B": "bad", "tries": 0}


def test_no_good_slot_still_boots_the_primary(env: dict[str, str]) -> None:
    run(env, "set-state", "B", "bad")
    run(env, "set-state", "A", "bad")
    assert out(env, "get-primary") == "A"
    proc = run(env, "boot", "--no-mount")
    assert "TOYD-SLOT: booted A" in proc.stdout and "no good slot" in proc.stderr


@pytest.mark.parametrize("damage", ["torn", "checksum", "garbage", "empty", "wrong-schema"])
def test_damaged_state_falls_back_to_the_previous_one(env: dict[str, str], damage: str) -> None:
    run(env, "set-state", "B", "bad")  # state: A good primary, B bad
    run(env, "set-primary", "B")  # state: B trial; .prev: A good primary
    state = Path(env["TOYD_SLOT_DIR"]) / "state.json"
    text = state.read_text()
    if damage == "torn":
        state.write_text(text[: len(text) // 2])
    elif damage == "checksum":
        state.write_text(text.replace('"trial"', '"good"'))  # a flipped value, old checksum
    elif damage == "garbage":
        state.write_bytes(b"\xff\x00" * 40)
    elif damage == "empty":
        state.write_text("")
    else:
        body = {"primary": "C", "A": "good", "B": "good", "tries": 0}
        state.write_text(json.dumps({"state": body, "sha256": slot._check(body)}))
    proc = run(env, "get-primary")
    assert proc.stdout.strip() == "A"
    assert "state.json is missing or damaged; using state.json.prev" in proc.stderr
    assert boot(env) == ("A", False)
    # The next write replaces the damaged file and keeps the good .prev.
    run(env, "set-state", "A", "good")
    assert json.loads(out(env, "status"))["primary"] == "A"


def test_both_files_damaged_fall_back_to_a(env: dict[str, str]) -> None:
    run(env, "set-primary", "B")
    run(env, "set-state", "B", "good")
    folder = Path(env["TOYD_SLOT_DIR"])
    for name in ("state.json", "state.json.prev"):
        (folder / name).write_text("{")
    assert out(env, "get-primary") == "A"
    assert boot(env) == ("A", False)


def test_leftover_temp_file_is_ignored(env: dict[str, str]) -> None:
    """A power cut while the temp file was written: the old state stands."""
    run(env, "set-state", "B", "bad")
    folder = Path(env["TOYD_SLOT_DIR"])
    (folder / "state.json.tmp").write_text('{"state": {"primary": "B"')
    assert out(env, "get-primary") == "A" and out(env, "get-state", "B") == "bad"
    run(env, "set-primary", "B")
    assert out(env, "get-primary") == "B"


def test_power_cut_at_any_step_of_a_write_leaves_old_or_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut the write after each of its renames/fsyncs: load() sees the old or the new state."""
    folder = str(tmp_path / "state")
    old = {"primary": "A", "A": "good", "B": "bad", "tries": 0}
    new = {"primary": "B", "A": "good", "B": "trial", "tries": slot.TRIES}
    steps = 0
    while True:
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            os.unlink(os.path.join(folder, name))
        slot.save(old, folder)
        calls = []

        def cut(real, name: str):
            def wrapped(*args, **kwargs):
                calls.append(name)
                if len(calls) > steps:
                    raise KeyboardInterrupt("power cut")
                return real(*args, **kwargs)

            return wrapped

        with monkeypatch.context() as m:
            m.setattr(slot.os, "replace", cut(os.replace, "replace"))
            m.setattr(slot.os, "fsync", cut(os.fsync, "fsync"))
            try:
                slot.save(new, folder)
                finished = True
            except KeyboardInterrupt:
                finished = False
        assert slot.load(folder) in (old, new), f"cut after {steps} steps: {calls}"
        if finished:
            assert slot.load(folder) == new
            break
        steps += 1
    assert steps >= 3  # fsync of the temp file, two renames, fsync of the folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage: toyd-slot"),
        (["reboot"], "unknown command 'reboot'"),
        (["set-primary", "C"], "expected A|B, got 'C'"),
        (["get-state"], "expected A|B, got ''"),
        (["set-state", "A", "maybe"], "expected good or bad, got 'maybe'"),
        (["set-state", "A"], "expected A|B good|bad"),
    ],
)
def test_bad_commands_are_one_line_errors(
    env: dict[str, str], args: list[str], message: str
) -> None:
    proc = run(env, *args, ok=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("toyd-slot: ") and message in lines[0]
    assert not (Path(env["TOYD_SLOT_DIR"]) / "state.json").exists()


def test_slot_devices_come_from_the_image_rauc_config(tmp_path: Path) -> None:
    devices = slot.slot_devices(str(SYSTEM_CONF))
    assert devices == {
        "A": "/dev/disk/by-partuuid/746f7964-02",
        "B": "/dev/disk/by-partuuid/746f7964-03",
    }
    bad = tmp_path / "system.conf"
    bad.write_text("[slot.toyd.0]\ndevice=/dev/x\nbootname=A\n")
    with pytest.raises(slot.SlotError, match=r"needs slots with bootname A and B, has \['A'\]"):
        slot.slot_devices(str(bad))
    with pytest.raises(slot.SlotError, match="cannot read"):
        slot.slot_devices(str(tmp_path / "missing.conf"))
