"""The Debian base rootfs: one mmdebstrap call, cached as a tarball keyed by its inputs."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from .config import BuildConfig, ImageBuildError

log = logging.getLogger(__name__)
MMDEBSTRAP_TIMEOUT_S = 45 * 60
COMPONENTS = "main non-free-firmware"  # the Pi's Wi-Fi firmware is in non-free-firmware
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Keep the image small: no docs, man pages or translations (copyright files stay).
DPKG_OPTS = [
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/info/*",
    # No fsync per file while building (much faster under emulation); the customize
    # hook removes this again so the toy's own dpkg runs stay power-loss safe.
    "force-unsafe-io",
]


def sources(config: BuildConfig) -> list[str]:
    """apt sources of the image: the release, its updates and security updates."""
    c = COMPONENTS
    return [
        f"deb {config.mirror} {config.suite} {c}",
        f"deb {config.mirror} {config.suite}-updates {c}",
        f"deb {config.security_mirror} {config.suite}-security {c}",
    ]


def cache_key(config: BuildConfig) -> str:
    """Hash of everything that shapes the base rootfs: package list, hooks, suite, mirrors."""
    h = hashlib.sha256()
    h.update("\n".join(config.package_list()).encode())
    for line in sources(config) + DPKG_OPTS:
        h.update(line.encode())
    for hook in sorted(config.hooks.iterdir()):
        if hook.is_file():
            h.update(hook.name.encode() + b"\0" + hook.read_bytes())
    return h.hexdigest()[:16]


def ensure_binfmt() -> None:
    """arm64 binaries run here through qemu-user; mount binfmt_misc and check the handler."""
    if not (BINFMT / "status").exists():
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
            capture_output=True,
            timeout=30,
        )
    if not (BINFMT / "qemu-aarch64").exists() and shutil.which("update-binfmts"):
        subprocess.run(
            ["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, timeout=30
        )
    handler = BINFMT / "qemu-aarch64"
    if not handler.exists() or "enabled" not in handler.read_text():
        raise ImageBuildError(
            "arm64 programs cannot run on this machine: install qemu-user-static and binfmt-support "
            "(apt-get install qemu-user-static binfmt-support), then retry"
        )


def base_tarball(config: BuildConfig, cache_dir: Path, log_file: Path) -> tuple[Path, bool]:
    """The cached base rootfs tarball, built with mmdebstrap if absent; (path, was_cached)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"base-{config.suite}-arm64-{cache_key(config)}.tar"
    if target.exists():
        return target, True
    ensure_binfmt()
    tmp = target.with_name(target.name + ".part")
    cmd = [
        "mmdebstrap",
        "--arch=arm64",
        "--variant=apt",
        f"--components={COMPONENTS}",
        f"--include={','.join(config.package_list())}",
        f"--hook-directory={config.hooks}",
    ]
    cmd += [f"--dpkgopt={opt}" for opt in DPKG_OPTS]
    cmd += ["--format=tar", config.suite, str(tmp)] + sources(config)
    log.info("mmdebstrap: %s packages, log in %s", len(config.package_list()), log_file)
    try:
        with open(log_file, "w") as out:
            proc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, timeout=MMDEBSTRAP_TIMEOUT_S
            )
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise ImageBuildError(
            f"mmdebstrap took longer than {MMDEBSTRAP_TIMEOUT_S // 60} minutes; see {log_file}"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
        raise ImageBuildError(
            f"mmdebstrap failed (exit {proc.returncode}); full log {log_file}:\n{tail}"
        )
    os.replace(tmp, target)
    for old in cache_dir.glob(f"base-{config.suite}-arm64-*.tar"):
        if old != target:
            old.unlink()
    return target, False


def extract(tarball: Path, dest: Path) -> None:
    """Unpack the base rootfs keeping owners, modes, device nodes and xattrs."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            "tar",
            "--extract",
            "--file",
            str(tarball),
            "--directory",
            str(dest),
            "--numeric-owner",
            "--preserve-permissions",
            "--xattrs",
            "--xattrs-include=*",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"cannot unpack {tarball}: {proc.stderr.strip()[-2000:]}")
