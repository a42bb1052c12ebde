"""SD image figures: build time (cold or cached), image sizes, QEMU boot time to toyd READY.

Run as root:  python bench/bench_image.py [--cold] [--out DIR]
--cold deletes the cached base rootfs first (a full mmdebstrap run). Builds the test variant
with compression, then boots it with image/boot-test.sh.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "image"


def run(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cold", action="store_true", help="delete the cached base rootfs first")
    parser.add_argument("--out", default=None, help="output folder (default: a temp folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-image-"))
    if args.cold:
        for tar in (IMAGE / "cache").glob("base-*.tar"):
            tar.unlink()
    build, build_s = run(
        [sys.executable, str(IMAGE / "build.py"), "--variant", "test", "--out", str(out)], 3600
    )
    if build.returncode != 0:
        sys.exit(f"build failed:\n{build.stderr[-3000:]}")
    stages = re.findall(r"^\s+([\d.]+) s  (.+)$", build.stderr, re.M)
    img, xz = out / "toyd-pi-test.img", out / "toyd-pi-test.img.xz"
    boot, boot_s = run([str(IMAGE / "boot-test.sh"), str(img), "420"], 600)
    ready = re.search(r"ready_after_s=([\d.]+)", boot.stderr)
    rows = [
        (
            "build, " + ("cold (mmdebstrap)" if args.cold else "cached base rootfs"),
            f"{build_s:.0f} s",
        )
    ]
    rows += [(f"  {name}", f"{float(sec):.1f} s") for sec, name in stages]
    rows += [
        ("image .img (apparent size)", f"{img.stat().st_size / 1e6:.0f} MB"),
        ("image .img (allocated, sparse)", f"{img.stat().st_blocks * 512 / 1e6:.0f} MB"),
        ("image .img.xz", f"{xz.stat().st_size / 1e6:.0f} MB"),
        ("boot test verdict", "PASS" if boot.returncode == 0 else f"exit {boot.returncode}"),
        ("boot test wall time (QEMU TCG, to verdict)", f"{boot_s:.0f} s"),
        ("kernel start -> toyd READY (systemd)", f"{ready.group(1)} s" if ready else "n/a"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)}  value")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
