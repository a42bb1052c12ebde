"""SD image first boot: settings from the boot partition applied safely, secrets removed from it."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "toyd_firstboot", REPO / "image/overlay/rootfs/usr/lib/toyd-image/toyd_firstboot.py"
)
firstboot = importlib.util.module_from_spec(_spec)
sys.modules["toyd_firstboot"] = firstboot
_spec.loader.exec_module(firstboot)


def fake_toy(tmp_path: Path) -> Path:
    root = tmp_path / "toy"
    (root / "etc/toyd").mkdir(parents=True)
    (root / "etc/group").write_text("root:x:0:\naudio:x:29:toyd\ntoyd:x:995:\n")
    (root / "etc/toyd/toyd.yaml").write_text((REPO / "config/toyd.yaml").read_text())
    (root / "boot/firmware/toyd").mkdir(parents=True)
    return root


def toyd_check(path: Path) -> str | None:
    """The real validator, as the image runs it (toyd check-config)."""
    proc = subprocess.run(
        [sys.executable, "-m", "toyd", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return None if proc.returncode == 0 else proc.stderr.strip()


def test_firstboot_applies_and_removes_secrets(tmp_path: Path) -> None:
    root = fake_toy(tmp_path)
    boot = root / "boot/firmware"
    config_text = (REPO / "config/toyd.yaml").read_text().replace("demo-toy", "kitchen-toy")
    (boot / "toyd/toyd.yaml").write_text(config_text)
    (boot / "toyd/provision.yaml").write_text(
        yaml.safe_dump(
            {
                "device_id": "kitchen-toy",
                "simulate": True,
                "wifi": {"ssid": "Home Net", "psk": "correct horse battery", "country": "DE"},
                "secrets": {"device_token": "tok-SECRET-123"},
                "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza maker@laptop"],
            }
        )
    )
    (boot / "ssh").touch()
    out = firstboot.run(root, toyd_check)
    assert out.errors == []
    assert (root / "etc/toyd/toyd.yaml").read_text() == config_text
    for rel, mode in (
        ("etc/toyd/toyd.yaml", 0o640),
        ("etc/toyd/secrets/device_token", 0o640),
        ("etc/wpa_supplicant/wpa_supplicant-wlan0.conf", 0o600),
        ("root/.ssh/authorized_keys", 0o600),
    ):
        assert (root / rel).stat().st_mode & 0o777 == mode, rel
    if os.geteuid() == 0:
        assert (root / "etc/toyd/secrets/device_token").stat().st_gid == 995
    assert (root / "etc/toyd/secrets/device_token").read_text() == "tok-SECRET-123\n"
    assert (root / "etc/hostname").read_text() == "kitchen-toy\n"
    assert (
        'TOYD_ARGS="--device-id kitchen-toy --simulate"' in (root / "etc/default/toyd").read_text()
    )
    wpa = (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()
    assert "country=DE" in wpa and f"ssid={b'Home Net'.hex()}" in wpa
    expected_psk = hashlib.pbkdf2_hmac(
        "sha1", b"correct horse battery", b"Home Net", 4096, 32
    ).hex()
    assert f"psk={expected_psk}" in wpa
    # Nothing secret is left anywhere on the FAT partition, and the plain passphrase nowhere at all.
    assert sorted(p.name for p in (boot / "toyd").iterdir()) == ["APPLIED.txt"]
    assert not (boot / "ssh").exists()
    for path in root.rglob("*"):
        if path.is_file():
            assert b"correct horse" not in path.read_bytes(), path
    assert b"tok-SECRET" not in (boot / "toyd/APPLIED.txt").read_bytes()
    assert ["hostname", "kitchen-toy"] in out.commands
    assert ["ssh-keygen", "-A"] in out.commands


def test_firstboot_rejects_bad_config_and_keeps_the_old_one(tmp_path: Path) -> None:
    root = fake_toy(tmp_path)
    before = (root / "etc/toyd/toyd.yaml").read_text()
    (root / "boot/firmware/toyd/toyd.yaml").write_text("role: device\nlog_level: loud\n")
    out = firstboot.run(root, toyd_check)
    assert (root / "etc/toyd/toyd.yaml").read_text() == before
    assert not (root / "boot/firmware/toyd/toyd.yaml").exists()
    error = (root / "boot/firmware/toyd/ERROR.txt").read_text()
    assert "toyd.yaml rejected" in error and "log_level" in error
    assert len(list((root / "etc/toyd/rejected").iterdir())) == 1
    assert (
        out.errors and firstboot.main(["--root", str(root), "--dry-run"]) == 0
    )  # nothing left to do


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("device_id: Kitchen Toy!\n", "device_id 'Kitchen Toy!' must be"),
        ("wifi:\n  ssid: x\n  psk: short\n  country: DE\n", "wifi.psk must be 8-63"),
        ("wifi:\n  ssid: x\n  psk: longenough\n  country: germany\n", "wifi.country"),
        ("device_id: a\ncolour: red\n", "unknown key(s) ['colour']"),
        ("device_id: [a\n", "provision.yaml, line 2"),
        ("simulate: perhaps\n", "simulate must be true or false"),
    ],
)
def test_firstboot_rejects_bad_provision(tmp_path: Path, text: str, message: str) -> None:
    root = fake_toy(tmp_path)
    (root / "boot/firmware/toyd/provision.yaml").write_text(text + "secrets:\n  token: s3cr3t\n")
    out = firstboot.run(root, toyd_check)
    assert any(message in e for e in out.errors), out.errors
    assert not (root / "boot/firmware/toyd/provision.yaml").exists()
    assert not (root / "etc/toyd/secrets").exists() and not (root / "etc/hostname").exists()
    assert message in (root / "boot/firmware/toyd/ERROR.txt").read_text()


def test_firstboot_never_writes_a_secret_value_and_overwrites_what_it_removes(
    tmp_path: Path,
) -> None:
    root = fake_toy(tmp_path)
    boot = root / "boot/firmware/toyd"
    config = (REPO / "config/toyd.yaml").read_text()
    token_line = '  token: {"$env": TOYD_CLOUD_TOKEN, "default": dev-token-demo-toy}'
    assert token_line in config
    (boot / "toyd.yaml").write_text(config.replace(token_line, "  token: 8675309123456789"))
    (boot / "provision.yaml").write_text("device_id: a\nsecrets:\n  device_token: tok-SECRET-123\n")
    # a second name for each file's bytes shows what unlinking left behind on the partition
    os.link(boot / "toyd.yaml", tmp_path / "config-bytes")
    os.link(boot / "provision.yaml", tmp_path / "provision-bytes")
    out = firstboot.run(root, toyd_check)
    error = (boot / "ERROR.txt").read_text()
    assert "cloudlink.token: expected text (got a number, not shown" in error, error
    assert "8675309" not in error and not any("8675309" in line for line in out.errors)
    assert (root / "etc/toyd/secrets/device_token").read_text() == "tok-SECRET-123\n"
    for left in ("config-bytes", "provision-bytes"):
        data = (tmp_path / left).read_bytes()
        assert data and data == bytes(len(data)), f"{left}: not overwritten before unlinking"
    assert (
        b"8675309" in next((root / "etc/toyd/rejected").iterdir()).read_bytes()
    )  # kept, off the FAT


def test_firstboot_with_nothing_waiting_does_nothing(tmp_path: Path) -> None:
    root = fake_toy(tmp_path)
    out = firstboot.run(root, toyd_check)
    assert (out.applied, out.errors, out.commands) == ([], [], [])
    assert list((root / "boot/firmware/toyd").iterdir()) == []
