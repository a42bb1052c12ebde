#!/usr/bin/env python3
"""Build the toyd Raspberry Pi SD image (arm64 Debian bookworm + toyd) with one command.

Stages: check inputs -> models -> aarch64 wheelhouse -> base rootfs (cached) -> toyd layer ->
application slot (/opt/toyd) -> partitioned image (boot, slot A, slot B, root) -> signed RAUC
update bundle -> xz + sha256. Output files appear only when complete: everything is written
under temporary names and renamed at the end; an interrupted or failed build leaves nothing.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent
REPO = IMAGE_DIR.parent
sys.path[:0] = [str(IMAGE_DIR), str(REPO)]

from toyd_image import assemble, layer, models, rootfs, update, wheels  # noqa: E402
from toyd_image import config as build_config
from toyd_image.config import ImageBuildError  # noqa: E402

TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mke2fs": "e2fsprogs",
    "sfdisk": "fdisk",
    "xz": "xz-utils",
    "dtc": "device-tree-compiler",
    "chroot": "coreutils",
    "systemctl": "systemd",
    "rauc": "rauc",
    "mksquashfs": "squashfs-tools",
    "openssl": "openssl",
}
# Free space a build needs, before sizes are known (unpacked rootfs + filesystems + image).
NEED_WORK_MB = 6000
NEED_OUT_MB = 3000


class Progress:
    """Numbered stages with wall-clock timings on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.start = total, 0, time.monotonic()
        self.stage_start = self.start
        self.timings: list[tuple[str, float]] = []

    def stage(self, name: str) -> None:
        self.n += 1
        self.stage_start = time.monotonic()
        self.name = name
        print(f"[{self.n}/{self.total}] {name} ...", file=sys.stderr, flush=True)

    def done(self, detail: str = "") -> None:
        took = time.monotonic() - self.stage_start
        self.timings.append((self.name, took))
        print(
            f"[{self.n}/{self.total}] {self.name}: done in {took:.1f} s{'  ' + detail if detail else ''}",
            file=sys.stderr,
            flush=True,
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def free_mb(path: Path) -> int:
    """Free MiB on the filesystem holding path (or its nearest existing parent)."""
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free // (1 << 20)


def preflight(
    cfg: build_config.BuildConfig, out: Path, cache: Path, need_root: bool = True
) -> None:
    """Everything that can be checked in a second: models, root, tools, free space."""
    models.check_sources(cfg.models)
    if need_root and os.geteuid() != 0:
        raise ImageBuildError(
            "building the image needs root (mmdebstrap, chroot, file owners): run it with sudo"
        )
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise ImageBuildError(
            f"missing tools; install them with: apt-get install {' '.join(missing)}"
        )
    for path, need in ((out, NEED_OUT_MB), (cache, NEED_WORK_MB)):
        have = free_mb(path)
        if have < need:
            raise ImageBuildError(
                f"not enough space: {path} has {have} MiB free, the build needs about {need} MiB"
            )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def compress(image: Path, target: Path, level: int) -> Path:
    """xz-compress image into target (multi-threaded); the partial file is removed on failure."""
    with open(target, "wb") as out:
        proc = subprocess.run(
            ["xz", "--threads=0", f"-{level}", "--stdout", str(image)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=3600,
        )
    if proc.returncode != 0:
        target.unlink(missing_ok=True)
        raise ImageBuildError(f"xz failed: {proc.stderr.strip()}")
    return target


def build(args: argparse.Namespace) -> int:
    cfg = build_config.load(args.config, variant=args.variant)
    out, cache = Path(args.out).resolve(), Path(args.cache).resolve()
    progress = Progress(10 if args.compress else 9)
    progress.stage("check inputs")
    preflight(cfg, out, cache)
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{cfg.name}-{cfg.variant}"
    progress.done(f"config {cfg.path.name}, variant {cfg.variant}, out {out}")
    work = Path(tempfile.mkdtemp(prefix="work-", dir=cache))
    partial: list[Path] = []
    try:
        progress.stage("models")
        size = models.fetch_all(cfg.models, work / "models")
        progress.done(f"{len(cfg.models)} models, {size / 1e6:.0f} MB")

        progress.stage("aarch64 wheelhouse (host pip, no emulation)")
        notes = wheels.build_wheelhouse(cfg, REPO, work / "wheels", cache / "wheels-built")
        count = len(list((work / "wheels").glob("*.whl")))
        progress.done(f"{count} wheels; " + "; ".join(f"{k}: {v}" for k, v in notes.items()))

        progress.stage("base rootfs (mmdebstrap, cached)")
        tarball, cached = rootfs.base_tarball(cfg, cache, cache / "mmdebstrap.log")
        rootfs.extract(tarball, work / "rootfs")
        progress.done(f"{'cached' if cached else 'built'} {tarball.name}")

        progress.stage("toyd layer (venv, units, config, models)")
        smoke = layer.install(
            cfg, REPO, work / "rootfs", work / "wheels", work / "models", work / "boot"
        )
        progress.done(smoke)

        progress.stage("application slot (/opt/toyd as its own ext4) and signing key")
        release = update.release_name(REPO)
        update.split_app(work / "rootfs", work / "app", release)
        app_image = work / "app.ext4"
        update.make_app_image(work / "app", app_image, update.app_image_mb(work / "app"))
        cert, key = update.signing_keys(cfg, cache)
        update.install_keyring(work / "rootfs", cert)
        progress.done(
            f"release {release}, {app_image.stat().st_size >> 20} MiB slot image, signed by {cert}"
        )

        progress.stage("assemble partitioned image (no loop devices)")
        image = out / f".{stem}.img.part"
        partial.append(image)
        layout = assemble.assemble(
            work / "boot",
            work / "rootfs",
            image,
            boot_size_mb=cfg.boot_size_mb,
            root_free_mb=cfg.root_free_mb,
            app_image=app_image,
        )
        progress.done(
            f"{layout.total} MiB: boot {layout.boot_size} MiB @ {layout.boot_start}, "
            f"slots A/B {layout.slot_size} MiB @ {'/'.join(map(str, layout.slot_starts))}, "
            f"root {layout.root_size} MiB @ {layout.root_start}"
        )

        progress.stage(f"update bundle (rauc bundle, signed, {args.bundle_compression})")
        raucb = out / f".{stem}.raucb.tmp"
        partial += [raucb, raucb.with_name(raucb.name + ".part")]
        update.bundle(app_image, release, cert, key, raucb, args.bundle_compression)
        progress.done(f"{stem}.raucb {raucb.stat().st_size / 1e6:.0f} MB, version {release}")
        shutil.rmtree(work, ignore_errors=True)

        final = out / f"{stem}.img"
        results = [final, out / f"{stem}.raucb"]
        if args.compress:
            progress.stage(f"compress (xz -{args.xz_level})")
            xz = out / f".{stem}.img.xz.part"
            partial.append(xz)
            compress(image, xz, args.xz_level)
            progress.done(f"{xz.stat().st_size / 1e6:.0f} MB")
        progress.stage("checksums and publish")
        if args.compress:
            os.replace(xz, out / f"{stem}.img.xz")
            results.append(out / f"{stem}.img.xz")
        os.replace(image, final)
        os.replace(raucb, out / f"{stem}.raucb")
        for result in results:
            Path(f"{result}.sha256").write_text(f"{sha256(result)}  {result.name}\n")
        progress.done()
    except BaseException:
        for path in partial:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"built in {progress.elapsed():.0f} s:", file=sys.stderr)
    for result in results:
        print(f"  {result}  ({result.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    for name, took in progress.timings:
        print(f"  {took:7.1f} s  {name}", file=sys.stderr)
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of image/build.sh."""
    parser = argparse.ArgumentParser(
        prog="image/build.sh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  sudo image/build.sh                          release image in image/out/\n"
        "  sudo image/build.sh --variant test --no-compress   image for image/boot-test.sh\n"
        "Requirements and flashing: docs/image.md",
    )
    parser.add_argument(
        "--config",
        default=str(IMAGE_DIR / "build.yaml"),
        metavar="FILE",
        help="build config (default: image/build.yaml)",
    )
    parser.add_argument(
        "--out",
        default=str(IMAGE_DIR / "out"),
        metavar="DIR",
        help="output folder (default: image/out)",
    )
    parser.add_argument(
        "--cache",
        default=str(IMAGE_DIR / "cache"),
        metavar="DIR",
        help="base rootfs cache and work space (default: image/cache)",
    )
    parser.add_argument(
        "--variant", choices=sorted(build_config.VARIANTS), help="override the config's variant"
    )
    parser.add_argument(
        "--no-compress",
        dest="compress",
        action="store_false",
        help="skip .img.xz (faster, for tests)",
    )
    parser.add_argument(
        "--xz-level",
        type=int,
        default=6,
        choices=range(0, 10),
        metavar="0-9",
        help="xz preset (default 6)",
    )
    parser.add_argument(
        "--bundle-compression",
        default="xz",
        choices=sorted(update.COMPRESSION),
        help="squashfs compression of the update bundle: xz (default, smallest download) or "
        "lz4 (made in seconds instead of minutes, 70 %% bigger; for test builds)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return build(args)
    except ImageBuildError as exc:
        print(f"build.sh: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = "no space left on the device" if exc.errno == errno.ENOSPC else "file system error"
        print(f"build.sh: error: {reason}: {exc}; partial files removed", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build.sh: interrupted; partial files removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
