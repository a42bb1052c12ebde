"""toyd's application slot and its signed RAUC update bundle.

/opt/toyd (venv, models, RELEASE) is taken out of the root filesystem into its own ext4
image: written into slot A and slot B of the SD image, and packed into a RAUC bundle
(``<name>-<variant>.raucb``) signed with the build's key. A toy installs such a bundle into
its other slot and boots it on trial (docs/image.md, "Over-the-air updates").

Also a small command line, used by the QEMU update test to make bundles from a built image's
slot: ``python3 image/toyd_image/update.py derive|bundle ...`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

try:
    from .assemble import ALIGN_MIB, MIB, _run, tree_size
    from .config import BuildConfig, ImageBuildError
except ImportError:  # run as a script
    sys.path[:0] = [str(Path(__file__).resolve().parents[n]) for n in (1, 2)]
    from toyd_image.assemble import ALIGN_MIB, MIB, _run, tree_size
    from toyd_image.config import BuildConfig, ImageBuildError

COMPATIBLE = "toyd-pi"  # must match /etc/rauc/system.conf
APP_DIR = "opt/toyd"
APP_LABEL = "TOYD_APP"
DEV_CA_DAYS = 3650


def toyd_version(repo: Path) -> str:
    """toyd's version from pyproject.toml."""
    import tomllib

    return str(tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"])


def release_name(repo: Path) -> str:
    """The build's RELEASE: toyd's version and the build time (UTC), e.g. 0.9.0+202611300412."""
    return f"{toyd_version(repo)}+{time.strftime('%Y%m%d%H%M', time.gmtime())}"


def signing_keys(config: BuildConfig, cache: Path) -> tuple[Path, Path]:
    """The maker's signing cert and key from the build config, else the cache's development CA."""
    if config.signing_cert is not None and config.signing_key is not None:
        return config.signing_cert, config.signing_key
    return dev_keys(cache / "keys")


def install_keyring(rootfs: Path, cert: Path) -> None:
    """The toy accepts bundles signed by this certificate (/etc/rauc/keyring.pem); RAUC keeps
    its slot status in /var/lib/rauc (system.conf's data-directory)."""
    target = rootfs / "etc/rauc/keyring.pem"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cert, target)
    os.chmod(target, 0o644)
    (rootfs / "var/lib/rauc").mkdir(mode=0o755, parents=True, exist_ok=True)


def split_app(rootfs: Path, app: Path, release: str) -> None:
    """Move /opt/toyd out of the rootfs into ``app`` (an empty mount point stays behind)."""
    source = rootfs / APP_DIR
    if not (source / "venv").is_dir():
        raise ImageBuildError(f"{source}/venv is missing: the toyd layer did not install")
    shutil.rmtree(app, ignore_errors=True)
    shutil.move(str(source), str(app))
    source.mkdir(mode=0o755)
    (app / "RELEASE").write_text(release + "\n")


def app_image_mb(app: Path) -> int:
    """Size of the slot image: content + 10 % + inodes + journal, aligned."""
    size, inodes = tree_size(app)
    mb = int(size * 1.10 / MIB) + inodes * 256 // MIB + 24
    return -(-mb // ALIGN_MIB) * ALIGN_MIB


def make_app_image(app: Path, out: Path, size_mb: int) -> None:
    out.unlink(missing_ok=True)
    with open(out, "wb") as f:
        f.truncate(size_mb * MIB)
    _run(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            APP_LABEL,
            "-J",
            "size=4",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            "-d",
            str(app),
            str(out),
            f"{size_mb}M",
        ],
        "create the application slot image (mke2fs -d)",
    )


def dev_keys(folder: Path) -> tuple[Path, Path]:
    """A signing CA (cert, key) made once and kept in ``folder`` (the build cache)."""
    cert, key = folder / "dev-ca.cert.pem", folder / "dev-ca.key.pem"
    if not (cert.exists() and key.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:3072",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                str(DEV_CA_DAYS),
                "-subj",
                "/O=toyd development/CN=toyd development update signing",
                "-addext",
                "keyUsage=critical,digitalSignature,keyCertSign",
            ],
            "create the development signing key (openssl)",
        )
        os.chmod(key, 0o600)
    return cert, key


COMPRESSION = {
    "xz": "-comp xz -Xdict-size 100%",
    "lz4": "-comp lz4",
}  # lz4: quick to make and install


def bundle(
    app_image: Path, version: str, cert: Path, key: Path, out: Path, compression: str = "xz"
) -> Path:
    """A signed RAUC bundle installing ``app_image`` into the toy's other slot."""
    with tempfile.TemporaryDirectory(prefix="toyd-bundle-") as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        (content / "manifest.raucm").write_text(
            f"[update]\ncompatible={COMPATIBLE}\nversion={version}\n\n"
            "[bundle]\nformat=plain\n\n"
            "[image.toyd]\nfilename=toyd.ext4\n"
        )
        try:
            os.link(app_image, content / "toyd.ext4")
        except OSError:  # another filesystem
            shutil.copyfile(app_image, content / "toyd.ext4")
        partial = out.with_name(out.name + ".part")
        partial.unlink(missing_ok=True)
        args = [
            "rauc",
            "bundle",
            f"--cert={cert}",
            f"--key={key}",
            f"--mksquashfs-args={COMPRESSION[compression]}",
            str(content),
            str(partial),
        ]
        _run(args, "create the RAUC update bundle (rauc bundle)")
        partial.replace(out)
    return out


def derive(app_image: Path, out: Path, *, release: str | None, broken: bool) -> Path:
    """A copy of a slot image with another RELEASE, or with a toyd that cannot start (tests)."""
    shutil.copyfile(app_image, out)
    with tempfile.TemporaryDirectory() as tmp:
        commands = []
        if release is not None:
            (Path(tmp) / "RELEASE").write_text(release + "\n")
            commands += ["rm /RELEASE", f"write {tmp}/RELEASE /RELEASE"]
        if broken:
            (Path(tmp) / "toyd").write_text(
                "#!/bin/sh\necho 'this toyd build is broken' >&2\nexit 3\n"
            )
            commands += [
                "rm /venv/bin/toyd",
                f"write {tmp}/toyd /venv/bin/toyd",
                "sif /venv/bin/toyd mode 0100755",
            ]
        script = Path(tmp) / "debugfs.cmd"
        script.write_text("\n".join(commands) + "\n")
        _run(["debugfs", "-w", "-f", str(script), str(out)], "modify the slot image (debugfs)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Make toyd update bundles from a built slot image (tests, releases)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bundle", help="sign a slot image as a RAUC bundle")
    p.add_argument("app_image", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--version", required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--compression", choices=sorted(COMPRESSION), default="xz")
    p = sub.add_parser(
        "derive", help="copy a slot image with another RELEASE and/or a toyd that fails to start"
    )
    p.add_argument("app_image", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--release")
    p.add_argument("--broken", action="store_true")
    p = sub.add_parser("dev-keys", help="make (or reuse) a development signing CA in a folder")
    p.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "bundle":
            bundle(args.app_image, args.version, args.cert, args.key, args.out, args.compression)
        elif args.command == "derive":
            derive(args.app_image, args.out, release=args.release, broken=args.broken)
        else:
            cert, key = dev_keys(args.folder)
            print(f"{cert}\n{key}")
    except ImageBuildError as exc:
        print(f"update: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
