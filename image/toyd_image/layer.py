"""The toyd layer on top of the base rootfs: venv, unit files, config, models, variant files.

Everything here runs on the host except the venv install and a smoke test, which run the
image's own Python under qemu-user in a chroot (offline, from the host-built wheelhouse).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .config import IMAGE_DIR, BuildConfig, ImageBuildError

log = logging.getLogger(__name__)
VENV = "/opt/toyd/venv"
UNITS = [
    "toyd.service",
    "toyd-firstboot.service",
    "toyd-growroot.service",
    # A/B application slots (docs/image.md, "Over-the-air updates")
    "toyd-slot.service",
    "toyd-health.service",
    "toyd-reboot.path",
    "systemd-networkd.service",
    "systemd-resolved.service",
]
# The test image's boot check drives toyd through a local MQTT broker (parent commands).
TEST_UNITS = ["toyd-boot-check.service", "toyd-test-machine.service", "mosquitto.service"]
# Device-tree overlays for the sound boards, compiled onto the boot partition's overlays/.
DTS_DIR = IMAGE_DIR / "dts"
# A variant's changes to the toy config, merged over the build config's toyd_config.
CONFIG_OVERRIDE = "toyd-config.yaml"
CHROOT_TIMEOUT_S = 900
SMOKE_TEST = """
import importlib, pathlib, sys
site = pathlib.Path(sys.argv[1])
skip = {"pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel"}
names = set()
for top in site.glob("*.dist-info/top_level.txt"):
    names.update(n.strip() for n in top.read_text().split() if n.strip())
names = sorted(n for n in names - skip if not n.startswith("_") and "/" not in n)
names += ["pyaudio"]  # Debian's python3-pyaudio, seen through system site-packages
bad = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        bad.append(f"{name}: {type(exc).__name__}: {exc}")
print(f"imported {len(names) - len(bad)}/{len(names)} modules on aarch64")
if bad:
    print("\\n".join(bad))
    sys.exit(1)
"""


def chroot(rootfs: Path, *cmd: str, what: str) -> str:
    """Run a command inside the rootfs (arm64 through qemu-user); raise with its output."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CONFIG_FILE": "/dev/null",
    }
    try:
        proc = subprocess.run(
            ["chroot", str(rootfs), *cmd],
            capture_output=True,
            text=True,
            env=env,
            timeout=CHROOT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{what}: no result after {CHROOT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise ImageBuildError(
            f"{what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr).strip()[-3000:]}"
        )
    return proc.stdout


def copy_tree(src: Path, dest: Path) -> None:
    """Copy an overlay folder into the rootfs, owned by root, modes as in the source."""
    for item in sorted(src.rglob("*")):
        target = dest / item.relative_to(src)
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, target)
            os.chown(target, 0, 0)


def group_id(rootfs: Path, name: str) -> int:
    """A group id from the image's /etc/group (it differs from the host's)."""
    for line in (rootfs / "etc/group").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2])
    raise ImageBuildError(f"group {name!r} missing in the base rootfs; check image/hooks/")


def check_unit(unit: Path) -> Path:
    """The repository's toyd.service, if it takes the image's TOYD_ARGS (device id, --simulate)."""
    if not unit.is_file():
        raise ImageBuildError(
            f"{unit} is missing: the image installs the daemon's unit from the repository"
        )
    text = unit.read_text()
    if "$TOYD_ARGS" not in text or "EnvironmentFile=-/etc/default/toyd" not in text:
        raise ImageBuildError(
            f"{unit}: the image passes --device-id/--simulate through TOYD_ARGS; the unit needs "
            "EnvironmentFile=-/etc/default/toyd and $TOYD_ARGS at the end of ExecStart"
        )
    return unit


def install(
    config: BuildConfig, repo: Path, rootfs: Path, wheelhouse: Path, models: Path, boot: Path
) -> str:
    """Turn an unpacked base rootfs into the toyd rootfs; fill the boot staging folder."""
    for overlay in config.overlays:
        if (overlay / "rootfs").is_dir():
            copy_tree(overlay / "rootfs", rootfs)
    unit = check_unit(repo / "systemd" / "toyd.service")
    shutil.copyfile(unit, rootfs / "usr/lib/systemd/system/toyd.service")
    toyd_gid = group_id(rootfs, "toyd")
    etc_toyd = rootfs / "etc/toyd"
    etc_toyd.mkdir(mode=0o750, exist_ok=True)
    os.chown(etc_toyd, 0, toyd_gid)
    (etc_toyd / "toyd.yaml").write_text(toyd_config(config))
    os.chown(etc_toyd / "toyd.yaml", 0, toyd_gid)
    os.chmod(etc_toyd / "toyd.yaml", 0o640)
    if models.is_dir():
        shutil.copytree(models, rootfs / "opt/toyd/models", dirs_exist_ok=True)
    result = _install_venv(rootfs, wheelhouse)
    units = UNITS + (TEST_UNITS if config.variant != "release" else [])
    proc = subprocess.run(
        ["systemctl", f"--root={rootfs}", "enable", *units],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"cannot enable {', '.join(units)}: {proc.stderr.strip()}")
    # A toy must work offline: nothing may wait minutes for a network that is not there.
    subprocess.run(
        ["systemctl", f"--root={rootfs}", "disable", "systemd-networkd-wait-online.service"],
        capture_output=True,
        timeout=120,
    )
    resolv = rootfs / "etc/resolv.conf"
    if resolv.exists() or resolv.is_symlink():
        resolv.unlink()
    resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    # Empty machine-id: each toy gets its own on first boot, without systemd's first-boot
    # presets ("uninitialized" would run preset-all and enable SSH) or prompts.
    (rootfs / "etc/machine-id").write_text("")
    subprocess.run(
        ["systemctl", f"--root={rootfs}", "mask", "systemd-firstboot.service"],
        capture_output=True,
        timeout=120,
    )
    _stage_boot(config, rootfs, boot)
    return result


def _install_venv(rootfs: Path, wheelhouse: Path) -> str:
    """Offline install of the host-built wheelhouse into /opt/toyd/venv, then a smoke test."""
    inside = rootfs / "tmp/toyd-wheels"
    shutil.copytree(wheelhouse, inside)
    try:
        chroot(
            rootfs, "python3", "-m", "venv", "--system-site-packages", VENV, what="create the venv"
        )
        wheels = sorted(f"/tmp/toyd-wheels/{w.name}" for w in wheelhouse.glob("*.whl"))
        chroot(
            rootfs,
            f"{VENV}/bin/python",
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--no-cache-dir",
            *wheels,
            what="pip install (offline) in the image",
        )
    finally:
        shutil.rmtree(inside, ignore_errors=True)
    site = f"{VENV}/lib/python3.11/site-packages"
    out = chroot(rootfs, f"{VENV}/bin/python", "-c", SMOKE_TEST, site, what="import smoke test")
    chroot(
        rootfs,
        f"{VENV}/bin/toyd",
        "check-config",
        "/etc/toyd/toyd.yaml",
        what="toyd check-config in the image",
    )
    plugins = chroot(
        rootfs,
        f"{VENV}/bin/toyd",
        "plugins",
        what="toyd plugins in the image (a plugin failed to load)",
    )
    return out.strip() + f"; {len(plugins.splitlines()) - 1} plugins load"


def _stage_boot(config: BuildConfig, rootfs: Path, boot: Path) -> None:
    """Boot partition content: raspi-firmware's files, then toyd's settings folder."""
    firmware = rootfs / "boot/firmware"
    if not (firmware / "config.txt").exists():
        raise ImageBuildError(
            "the base rootfs has no /boot/firmware/config.txt: raspi-firmware did not run"
        )
    shutil.copytree(firmware, boot, dirs_exist_ok=True)
    for item in firmware.iterdir():  # the FAT partition is mounted here on the toy
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()
    for overlay in config.overlays:
        if (overlay / "boot").is_dir():
            shutil.copytree(overlay / "boot", boot, dirs_exist_ok=True)
    (boot / "toyd" / "toyd.yaml").write_text(toyd_config(config))
    compile_overlays(DTS_DIR, boot / "overlays")


def toyd_config(config: BuildConfig) -> str:
    """The toy config the image ships: the build config's file, or it with the variant's changes."""
    base = config.toyd_config.read_text()
    overrides = [o / CONFIG_OVERRIDE for o in config.overlays if (o / CONFIG_OVERRIDE).is_file()]
    if not overrides:
        return base
    data = yaml.safe_load(base)
    for path in overrides:
        _merge(data, yaml.safe_load(path.read_text()) or {})
    names = ", ".join(str(p.relative_to(IMAGE_DIR)) for p in overrides)
    return (
        f"# {config.toyd_config.name} with the changes in image/{names} "
        "(generated by the image build)\n"
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    )


def _merge(data: dict[str, Any], changes: dict[str, Any]) -> None:
    """Deep-merge changes into data: mappings merge, everything else replaces."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            _merge(data[key], value)
        else:
            data[key] = value


def compile_overlays(sources: Path, dest: Path) -> list[Path]:
    """Each ``<name>.dts`` as ``<name>.dtbo`` for ``dtoverlay=<name>`` in config.txt."""
    dest.mkdir(parents=True, exist_ok=True)
    built = []
    for dts in sorted(sources.glob("*.dts")):
        dtbo = dest / f"{dts.stem}.dtbo"
        cmd = ["dtc", "-@", "-q", "-I", "dts", "-O", "dtb", "-o", str(dtbo), str(dts)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ImageBuildError(
                f"device-tree overlay {dts.name} does not compile: {proc.stderr.strip()}"
            )
        built.append(dtbo)
    return built
