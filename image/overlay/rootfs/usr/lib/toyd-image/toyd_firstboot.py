"""Apply what a maker put on the boot partition: toyd.yaml, device id, secrets, Wi-Fi, SSH.

Runs as toyd-firstboot.service on every boot before toyd.service, and does something only when
files are waiting in /boot/firmware/toyd/ (or the ``ssh`` flag file). Everything that was read is
moved off the FAT partition (readable by any computer the card is put into; files are overwritten
before they are unlinked, as FAT leaves deleted bytes in place): the config lands in
/etc/toyd with 0640 root:toyd, secrets in /etc/toyd/secrets, rejected input in /etc/toyd/rejected.
A short report (never a secret) is left in /boot/firmware/toyd/APPLIED.txt or ERROR.txt.

Usage: toyd_firstboot.py [--root DIR] [--dry-run]   (DIR defaults to /; tests use a temp dir)
"""

from __future__ import annotations

import argparse
import grp
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BOOT_DIR = "boot/firmware"
TOYD_CLI = "/opt/toyd/venv/bin/toyd"
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
PROVISION_KEYS = {"device_id", "wifi", "secrets", "simulate", "ssh_authorized_keys"}
WIFI_KEYS = {"ssid", "psk", "country", "hidden"}


class ProvisionError(Exception):
    """Bad input on the boot partition; the message names the file and, if known, the line."""


@dataclass
class Outcome:
    """What one run did: lines for APPLIED.txt / ERROR.txt and system commands to run."""

    applied: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)


def _write(path: Path, text: str, mode: int, group: str | None = None) -> None:
    """Write atomically (temp file + rename) so a power cut never leaves half a config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    if group is not None and os.geteuid() == 0:
        os.chown(tmp, 0, _gid(path, group))
    os.replace(tmp, path)


def _gid(path: Path, group: str) -> int:
    """The group id from the target root's /etc/group (the test root differs from the host)."""
    root = path
    while root.parent != root and not (root / "etc" / "group").exists():
        root = root.parent
    try:
        for line in (root / "etc" / "group").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == group:
                return int(parts[2])
    except OSError:
        pass
    return grp.getgrnam(group).gr_gid


def load_provision(path: Path) -> dict[str, Any]:
    """Parse and validate provision.yaml; raise ProvisionError naming file and line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ProvisionError(f"{path.name}, line {line}: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{path.name}: cannot parse: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProvisionError(f"{path.name}: expected 'key: value' lines, got {type(data).__name__}")
    unknown = set(data) - PROVISION_KEYS
    if unknown:
        raise ProvisionError(
            f"{path.name}: unknown key(s) {sorted(unknown)}; known: {sorted(PROVISION_KEYS)}"
        )
    device_id = data.get("device_id")
    if device_id is not None and (
        not isinstance(device_id, str) or not HOSTNAME_RE.match(device_id)
    ):
        raise ProvisionError(
            f"{path.name}: device_id {device_id!r} must be 1-63 of a-z 0-9 '-' (it becomes the hostname)"
        )
    wifi = data.get("wifi")
    if wifi is not None:
        if (
            not isinstance(wifi, dict)
            or set(wifi) - WIFI_KEYS
            or not isinstance(wifi.get("ssid"), str)
        ):
            raise ProvisionError(
                f"{path.name}: wifi needs ssid (text), psk, country (2 letters); optional hidden"
            )
        psk = wifi.get("psk")
        if psk is not None and not (isinstance(psk, str) and 8 <= len(psk) <= 63):
            raise ProvisionError(
                f"{path.name}: wifi.psk must be 8-63 characters (or leave it out for an open network)"
            )
        if not (
            isinstance(wifi.get("country"), str) and re.fullmatch(r"[A-Z]{2}", wifi["country"])
        ):
            raise ProvisionError(
                f"{path.name}: wifi.country must be a 2-letter code like DE or US (radio rules)"
            )
    secrets = data.get("secrets") or {}
    if not isinstance(secrets, dict):
        raise ProvisionError(f"{path.name}: secrets must be 'name: value' lines")
    for name, value in secrets.items():
        if (
            not isinstance(name, str)
            or not SECRET_NAME_RE.match(name)
            or not isinstance(value, (str, int))
        ):
            raise ProvisionError(
                f"{path.name}: secret {name!r} needs a simple name (letters, digits, _ . -) and a text value"
            )
    if not isinstance(data.get("simulate", False), bool):
        raise ProvisionError(f"{path.name}: simulate must be true or false")
    keys = data.get("ssh_authorized_keys") or []
    if not isinstance(keys, list) or not all(
        isinstance(k, str) and k.startswith(("ssh-", "ecdsa-", "sk-")) for k in keys
    ):
        raise ProvisionError(
            f"{path.name}: ssh_authorized_keys must be a list of public keys (ssh-ed25519 AAAA...)"
        )
    return data


def wpa_config(wifi: dict[str, Any]) -> str:
    """wpa_supplicant config; the passphrase is stored only as its PBKDF2 hash."""
    ssid = wifi["ssid"]
    lines = [
        "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev",
        "update_config=0",
        f"country={wifi['country']}",
        "",
        "network={",
        f"    ssid={ssid.encode().hex()}",
    ]
    if wifi.get("hidden"):
        lines.append("    scan_ssid=1")
    if wifi.get("psk"):
        psk = hashlib.pbkdf2_hmac("sha1", wifi["psk"].encode(), ssid.encode(), 4096, 32).hex()
        lines += ["    key_mgmt=WPA-PSK", f"    psk={psk}"]
    else:
        lines.append("    key_mgmt=NONE")
    return "\n".join(lines + ["}", ""])


def _shred(path: Path) -> None:
    """Overwrite a file with zeros, then unlink it: FAT keeps an unlinked file's bytes readable."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()


def _reject(root: Path, src: Path, reason: str, out: Outcome) -> None:
    """Move a bad file off the FAT partition (it may hold secrets) and record why."""
    dest = root / "etc/toyd/rejected" / f"{src.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(src, dest)  # in a 0700 folder, then 0600
    os.chmod(dest, 0o600)
    _shred(src)
    out.errors.append(f"{reason} (file moved to /{dest.relative_to(root)})")


def apply_config(root: Path, check: Callable[[Path], str | None], out: Outcome) -> None:
    """Install toyd/toyd.yaml as /etc/toyd/toyd.yaml if `toyd check-config` accepts it."""
    src = root / BOOT_DIR / "toyd" / "toyd.yaml"
    if not src.exists():
        return
    problem = check(src)
    if problem:
        _reject(root, src, f"toyd.yaml rejected, the previous config stays active: {problem}", out)
        return
    _write(root / "etc/toyd/toyd.yaml", src.read_text(encoding="utf-8"), 0o640, "toyd")
    _shred(src)
    out.applied.append("toyd.yaml installed as /etc/toyd/toyd.yaml")


def apply_provision(root: Path, out: Outcome) -> None:
    """Device id, hostname, secrets, Wi-Fi and SSH keys from toyd/provision.yaml."""
    src = root / BOOT_DIR / "toyd" / "provision.yaml"
    if not src.exists():
        return
    try:
        data = load_provision(src)
    except ProvisionError as exc:
        _reject(root, src, f"provision.yaml rejected, nothing applied: {exc}", out)
        return
    args: list[str] = []
    if data.get("device_id"):
        device_id = data["device_id"]
        args += ["--device-id", device_id]
        _write(root / "etc/hostname", device_id + "\n", 0o644)
        _write(
            root / "etc/hosts",
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{device_id}\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
            0o644,
        )
        out.commands.append(["hostname", device_id])
        out.applied.append(f"device id and hostname: {device_id}")
    if data.get("simulate"):
        args.append("--simulate")
        out.applied.append("simulated devices (toyd device --simulate)")
    if args or (root / "etc/default/toyd").exists():
        _write(
            root / "etc/default/toyd",
            f'# Written by toyd-firstboot from provision.yaml\nTOYD_ARGS="{" ".join(args)}"\n',
            0o644,
        )
    for name, value in (data.get("secrets") or {}).items():
        _write(root / "etc/toyd/secrets" / name, f"{value}\n", 0o640, "toyd")
        out.applied.append(
            f'secret {name!r} stored as /etc/toyd/secrets/{name} (use {{"$file": /etc/toyd/secrets/{name}}})'
        )
    if data.get("wifi"):
        _write(
            root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf", wpa_config(data["wifi"]), 0o600
        )
        out.commands.append(["systemctl", "restart", "--no-block", "wpa_supplicant@wlan0.service"])
        out.applied.append(f"Wi-Fi network {data['wifi']['ssid']!r} ({data['wifi']['country']})")
    if data.get("ssh_authorized_keys"):
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(ssh_dir / "authorized_keys", "\n".join(data["ssh_authorized_keys"]) + "\n", 0o600)
        out.applied.append(f"{len(data['ssh_authorized_keys'])} SSH key(s) for root")
    _shred(src)


def apply_ssh_flag(root: Path, out: Outcome) -> None:
    """An empty file named ``ssh`` (or ssh.txt) on the boot partition turns SSH on."""
    flags = [
        root / BOOT_DIR / name for name in ("ssh", "ssh.txt") if (root / BOOT_DIR / name).exists()
    ]
    if not flags:
        return
    for flag in flags:
        flag.unlink()
    out.commands += [
        ["ssh-keygen", "-A"],
        ["systemctl", "enable", "--now", "--no-block", "ssh.service"],
    ]
    out.applied.append(
        "SSH enabled (key login for root only; put keys in provision.yaml ssh_authorized_keys)"
    )
    if not (root / "root/.ssh/authorized_keys").exists():
        out.errors.append(
            "SSH is on but root has no authorized_keys: add ssh_authorized_keys to provision.yaml"
        )


def run(root: Path, check: Callable[[Path], str | None]) -> Outcome:
    """Apply everything waiting on the boot partition and leave a report there."""
    out = Outcome()
    apply_config(root, check, out)
    apply_provision(root, out)
    apply_ssh_flag(root, out)
    report_dir = root / BOOT_DIR / "toyd"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    if out.applied:
        report_dir.mkdir(parents=True, exist_ok=True)
        _write(
            report_dir / "APPLIED.txt",
            f"Applied on {stamp}:\n" + "".join(f"- {a}\n" for a in out.applied),
            0o644,
        )
    error_file = report_dir / "ERROR.txt"
    if out.errors:
        _write(
            error_file, f"Problems on {stamp}:\n" + "".join(f"- {e}\n" for e in out.errors), 0o644
        )
    elif out.applied and error_file.exists():
        error_file.unlink()
    return out


def check_with_toyd(path: Path) -> str | None:
    """Validate a config exactly as the daemon will; the error text, or None if valid."""
    try:
        proc = subprocess.run(
            [TOYD_CLI, "check-config", str(path)], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run toyd check-config: {exc}"
    if proc.returncode == 0:
        return None
    return (proc.stderr or proc.stdout).strip().replace(str(path), "toyd.yaml")


def main(argv: list[str] | None = None) -> int:
    """Entry point of toyd-firstboot.service."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="/", help="root of the system to configure (default /)")
    parser.add_argument(
        "--dry-run", action="store_true", help="change files but run no system commands"
    )
    args = parser.parse_args(argv)
    out = run(Path(args.root), check_with_toyd)
    for line in out.applied:
        print(f"toyd-firstboot: {line}")
    for line in out.errors:
        print(f"toyd-firstboot: ERROR: {line}", file=sys.stderr)
    if not args.dry_run and args.root == "/":
        for command in out.commands:
            result = subprocess.run(command, timeout=120)
            if result.returncode != 0:
                print(
                    f"toyd-firstboot: ERROR: {' '.join(command)} exited {result.returncode}",
                    file=sys.stderr,
                )
    return 1 if out.errors else 0


if __name__ == "__main__":
    sys.exit(main())
