"""The SD image's A/B application slots: partition layout, the app slot image, signing keys,
and the RAUC / systemd / D-Bus files that tie toyd-slot, toyd-health and the updater together.
(Booting, updating and rolling back for real: image/update-test.sh, slow test in test_image.py.)
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from plugins.updater.plugin import UpdaterSettings
from test_image import blkid, fake_trees, needs_tools, write_config

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "image"
ROOTFS = IMAGE / "overlay/rootfs"
sys.path.insert(0, str(IMAGE))

from toyd_image import assemble, config, layer, update  # noqa: E402
from toyd_image.config import ImageBuildError  # noqa: E402


def app_tree(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "opt/toyd/venv/bin").mkdir(parents=True)
    (rootfs / "opt/toyd/venv/bin/toyd").write_text("#!/bin/sh\n")
    (rootfs / "opt/toyd/models").mkdir()
    (rootfs / "opt/toyd/models/m.bin").write_bytes(os.urandom(300_000))
    return rootfs


@needs_tools
def test_split_app_leaves_a_mount_point_and_a_slot_image_with_the_release(
    tmp_path: Path,
) -> None:
    rootfs = app_tree(tmp_path)
    update.split_app(rootfs, tmp_path / "app", "0.9.0+202611300400")
    assert (rootfs / "opt/toyd").is_dir() and not any((rootfs / "opt/toyd").iterdir())
    assert (tmp_path / "app/venv/bin/toyd").is_file()
    slot = tmp_path / "app.ext4"
    update.make_app_image(tmp_path / "app", slot, update.app_image_mb(tmp_path / "app"))
    release = subprocess.run(
        ["debugfs", "-R", "cat /RELEASE", str(slot)], capture_output=True, text=True, check=True
    ).stdout
    assert release == "0.9.0+202611300400\n"
    with pytest.raises(ImageBuildError, match="venv is missing: the toyd layer did not install"):
        update.split_app(rootfs, tmp_path / "again", "x")


def test_release_name_is_the_version_and_build_time() -> None:
    name = update.release_name(REPO)
    version, _, stamp = name.partition("+")
    assert version == update.toyd_version(REPO) and len(stamp) == 12 and stamp.isdigit()


@needs_tools
def test_image_has_boot_two_equal_slots_and_root_last(tmp_path: Path) -> None:
    boot, root = fake_trees(tmp_path)
    app = tmp_path / "app"
    (app / "venv").mkdir(parents=True)
    (app / "RELEASE").write_text("1\n")
    slot = tmp_path / "app.ext4"
    update.make_app_image(app, slot, 32)
    image = tmp_path / "toy.img"
    layout = assemble.assemble(boot, root, image, boot_size_mb=64, root_free_mb=64, app_image=slot)
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, check=True).stdout
    )["partitiontable"]
    parts = table["partitions"]
    assert table["id"] == "0x746f7964"  # /dev/disk/by-partuuid/746f7964-0N in system.conf
    assert [p["type"] for p in parts] == ["c", "83", "83", "83"]
    assert [p["start"] for p in parts] == sorted(p["start"] for p in parts)
    assert layout.slot_size == assemble.slot_size_for(slot) >= 32 * 1.5
    assert parts[1]["size"] == parts[2]["size"] == layout.slot_size * 2048
    # Root is the last partition and ends the image: toyd-growroot can grow it into the card.
    assert parts[3]["start"] == layout.root_start * 2048
    assert (parts[3]["start"] + parts[3]["size"]) * 512 == image.stat().st_size
    labels = [blkid(image, p["start"] * 512).get("LABEL") for p in parts]
    assert labels == ["RASPIFIRM", update.APP_LABEL, update.APP_LABEL, "RASPIROOT"]
    digest = hashlib.sha256(slot.read_bytes()).hexdigest()
    with open(image, "rb") as f:
        for p in parts[1:3]:
            f.seek(p["start"] * 512)
            assert hashlib.sha256(f.read(slot.stat().st_size)).hexdigest() == digest


def test_signing_key_from_the_config_or_the_cache(tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    cfg = config.load(write_config(tmp_path))
    cert, key = update.signing_keys(cfg, tmp_path / "cache")
    assert cert.parent == tmp_path / "cache/keys" and oct(key.stat().st_mode)[-3:] == "600"
    assert update.signing_keys(cfg, tmp_path / "cache") == (cert, key)  # made once, kept
    own = config.load(write_config(tmp_path, signing_cert=str(cert), signing_key=str(key)))
    assert update.signing_keys(own, tmp_path / "elsewhere") == (cert, key)
    with pytest.raises(ImageBuildError, match="signing_cert and signing_key must be set together"):
        config.load(write_config(tmp_path, signing_cert=str(cert)))
    with pytest.raises(ImageBuildError, match="signing_key: file .* does not exist"):
        config.load(write_config(tmp_path, signing_cert=str(cert), signing_key="/nope.pem"))
    rootfs = tmp_path / "rootfs"
    update.install_keyring(rootfs, cert)
    assert (rootfs / "etc/rauc/keyring.pem").read_bytes() == cert.read_bytes()
    assert (rootfs / "var/lib/rauc").is_dir()


def test_rauc_config_matches_the_bundles_and_the_updater() -> None:
    conf = configparser.ConfigParser()
    conf.read(ROOTFS / "etc/rauc/system.conf")
    assert conf["system"]["compatible"] == update.COMPATIBLE
    assert conf["system"]["bootloader"] == "custom"
    assert conf["keyring"]["path"] == UpdaterSettings().keyring == "/etc/rauc/keyring.pem"
    backend = ROOTFS / conf["handlers"]["bootloader-custom-backend"].lstrip("/")
    assert backend.is_file() and os.access(backend, os.X_OK)
    slots = {conf[s]["bootname"]: conf[s] for s in conf.sections() if s.startswith("slot.toyd.")}
    assert sorted(slots) == ["A", "B"] and {s["type"] for s in slots.values()} == {"ext4"}


def test_units_tie_the_slot_choice_to_rauc_toyd_and_the_reboot_request() -> None:
    units = ROOTFS / "etc/systemd/system"
    for name in ("toyd-slot.service", "toyd-health.service", "toyd-reboot.path"):
        assert name in layer.UNITS and (units / name).is_file()
    slot_unit = (units / "toyd-slot.service").read_text()
    assert "Before=sysinit.target toyd.service toyd-firstboot.service rauc.service" in slot_unit
    assert "RequiredBy=toyd.service" in slot_unit
    dropin = (units / "rauc.service.d/toyd-slot.conf").read_text()
    assert "BindReadOnlyPaths=/run/toyd-slot/cmdline:/proc/cmdline" in dropin
    slot_script = (ROOTFS / "usr/lib/toyd-image/toyd-slot").read_text()
    assert 'RUN_DIR = "/run/toyd-slot"' in slot_script and '"cmdline"' in slot_script
    # toyd (unprivileged) asks for the reboot with a file in its state directory.
    path_unit = (units / "toyd-reboot.path").read_text()
    assert "PathExists=/var/lib/toyd/reboot-requested" in path_unit
    health = (units / "toyd-health.service").read_text()
    assert "ConditionPathExists=/run/toyd-slot/trial" in health
    image_config = yaml.safe_load((REPO / "config/toyd.yaml").read_text())
    assert "updater" in image_config["plugins"]


def test_only_root_and_toyd_may_talk_to_rauc() -> None:
    tree = ET.parse(ROOTFS / "etc/dbus-1/system.d/toyd-rauc.conf")
    rules = {
        (p.get("context") or p.get("user"), r.tag)
        for p in tree.getroot().iter("policy")
        for r in p
        if r.get("send_destination") == "de.pengutronix.rauc"
    }
    assert rules == {("default", "deny"), ("root", "allow"), ("toyd", "allow")}


@pytest.fixture
def health(tmp_path: Path) -> dict[str, str]:
    """toyd-health with stand-ins for systemctl and rauc that log their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name, body in (
        (
            "systemctl",
            'case "$1" in is-active) [ "$ACTIVE" = yes ];; is-failed) false;; '
            'show) echo "${RESTARTS:-0}";; *) echo "systemctl $*" >> "$LOG";; esac',
        ),
        ("rauc", 'echo "rauc $*" >> "$LOG"'),
        ("journalctl", "true"),
        ("sleep", "true"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOG=str(log))


def run_health(env: dict[str, str], **changes: str) -> tuple[str, list[str]]:
    proc = subprocess.run(
        [str(ROOTFS / "usr/lib/toyd-image/toyd-health")],
        env={**env, **changes},
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = Path(env["LOG"])
    return proc.stdout, log.read_text().splitlines() if log.exists() else []


def test_health_marks_the_slot_good_when_toyd_is_ready(health: dict[str, str]) -> None:
    out, calls = run_health(health, ACTIVE="yes")
    assert "TOYD-HEALTH: slot ? good" in out
    assert calls == ["rauc status mark-good booted"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ACTIVE": "no", "RESTARTS": "3"}, "toyd.service failed (3 restarts)"),
        ({"ACTIVE": "no", "TOYD_HEALTH_TIMEOUT": "0"}, "toyd.service was not READY within 0 s"),
    ],
)
def test_health_rolls_back_when_toyd_fails_or_is_late(
    health: dict[str, str], changes: dict[str, str], reason: str
) -> None:
    out, calls = run_health(health, **changes)
    assert f"TOYD-HEALTH: slot ? bad: {reason}" in out
    assert calls == ["rauc status mark-bad booted", "systemctl reboot"]
