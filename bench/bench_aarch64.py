"""The device role on aarch64: the SD image's toyd measured inside QEMU, as ratios to x86.

Run: python bench/bench_aarch64.py [--image image/out/toyd-pi-test.img] [--idle 60] [--mem 512]
(root not needed; the image comes from ``sudo image/build.sh --variant test --no-compress``).

The same script (image/variants/test/rootfs/usr/lib/toyd-image/toyd-measure) runs first here
with the project's venv, then inside the test image booted by image/boot-test.sh (QEMU
``-M virt``, Cortex-A72, software emulation, ``--mem`` MiB like a Pi Zero 2 W's 512 MB) with
the kernel argument ``toyd.measure``: ``toyd device --simulate`` from the image's config
(wake word loaded, silence paced in real time), start -> READY (sd_notify), RSS after
``--idle`` seconds, CPU-seconds per audio second over those seconds; once with Vosk lazy (as
shipped: not loaded while online) and once with ``vosk_stt.load: eager`` (idle figures from
the moment the model is in). In the guest each run sits in a scope with toyd.service's
``MemoryMax``: a run the kernel kills for memory does not fit. Emulation makes
absolute aarch64 times meaningless, so times are quoted as ratios to x86 in the same run;
memory is comparable as is. The fit column compares peak RSS with the unit's MemoryMax.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from table import print_table  # noqa: E402

MEASURE = ROOT / "image/variants/test/rootfs/usr/lib/toyd-image/toyd-measure"
UNIT = ROOT / "systemd/toyd.service"


def parse(text: str) -> dict[str, dict]:
    """TOYD-MEASURE lines (from stdout or the serial console) by scenario."""
    found = {}
    for line in re.findall(r"TOYD-MEASURE: (\{.*\})", text.replace("\r", "")):
        result = json.loads(line)
        found[result["scenario"]] = result
    return found


def on_host(idle: float) -> dict[str, dict]:
    toyd = f"{shlex.quote(sys.executable)} -m toyd"
    cmd = [
        sys.executable,
        str(MEASURE),
        "--toyd",
        toyd,
        "--config",
        str(ROOT / "config/toyd.yaml"),
        "--idle",
        str(idle),
    ]
    return parse(subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=ROOT).stdout)


def in_guest(image: Path, idle: float, mem: int) -> tuple[dict[str, dict], str]:
    with tempfile.TemporaryDirectory(prefix="toyd-aarch64-") as tmp:
        console = Path(tmp) / "console.log"
        env = dict(
            os.environ,
            BOOT_APPEND=f"toyd.measure={idle:g}",
            BOOT_MEM=str(mem),
            BOOT_TEST_CONSOLE=str(console),
        )
        proc = subprocess.run(
            [str(ROOT / "image/boot-test.sh"), str(image), "3000"],
            capture_output=True,
            text=True,
            timeout=3300,
            env=env,
        )
        text = console.read_text(errors="replace") if console.exists() else ""
    verdict = re.search(r"TOYD-BOOT-TEST: \S+ ready_after_s=\S+", text)
    return parse(text), verdict.group(0) if verdict else proc.stderr[-500:]


def loadavg() -> str:
    """The host's load average: how shared the machine was while measuring."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def memory_max_mb() -> float | None:
    match = re.search(r"^MemoryMax=(\d+)([KMG])", UNIT.read_text(), re.M)
    if not match:
        return None
    return int(match.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024}[match.group(2)]


def ratio(arm: dict, x86: dict, key: str) -> float:
    return arm[key] / x86[key] if x86.get(key) else float("nan")


def loaded(run: dict, x86: dict | None = None) -> str:
    """When an eagerly loaded model was in (after READY), with its ratio to x86."""
    if "loaded_s" not in run:
        return ""
    times = f" = {ratio(run, x86, 'loaded_s'):.1f}x" if x86 else ""
    return f"; model in {run['loaded_s']:.1f} s{times}"


def rows_for(scenario: str, x86: dict, arm: dict, limit: float | None) -> list[tuple[str, ...]]:
    """Two table rows: the x86 figures, and aarch64's with their ratios and the fit verdict."""
    nan = float("nan")
    rows = [
        (
            scenario,
            "x86_64",
            f"{x86.get('ready_s', nan):.2f} s" + loaded(x86),
            f"{x86.get('idle_cpu_per_audio_s', nan):.3f}",
            f"{x86.get('rss_mb', nan):.0f} MB (peak {x86.get('peak_rss_mb', nan):.0f})",
            "-",
        )
    ]
    if not arm or "error" in arm:
        error = arm.get("error", "no result")
        return rows + [(scenario, "aarch64 (QEMU)", error, "-", "-", "does not fit")]
    fits = "-" if limit is None else ("fits" if arm["peak_rss_mb"] <= limit else "does not fit")
    ready, cpu = ratio(arm, x86, "ready_s"), ratio(arm, x86, "idle_cpu_per_audio_s")
    return rows + [
        (
            scenario,
            "aarch64 (QEMU)",
            f"{arm['ready_s']:.1f} s = {ready:.1f}x" + loaded(arm, x86),
            f"{arm['idle_cpu_per_audio_s']:.3f} = {cpu:.1f}x",
            f"{arm['rss_mb']:.0f} MB (peak {arm['peak_rss_mb']:.0f})",
            f"{fits} (MemoryMax={limit:g}M)" if limit else fits,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, default=ROOT / "image/out/toyd-pi-test.img")
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds before RSS is read")
    parser.add_argument(
        "--mem", type=int, default=512, help="guest MiB (default 512: a Pi Zero 2 W)"
    )
    args = parser.parse_args()
    if not args.image.exists():
        sys.exit(f"no test image at {args.image}: sudo image/build.sh --variant test --no-compress")
    load_before = loadavg()
    host = on_host(args.idle)
    guest, verdict = in_guest(args.image, args.idle, args.mem)
    limit = memory_max_mb()
    rows = []
    for scenario in ("vosk-lazy", "vosk-eager"):
        rows += rows_for(scenario, host.get(scenario, {}), guest.get(scenario, {}), limit)
    print_table(
        (
            "config",
            "machine",
            "start -> READY",
            "idle CPU-s per audio s",
            f"RSS after {args.idle:g} s idle",
            "Pi Zero 2 W",
        ),
        rows,
    )
    print(
        f"(guest: QEMU virt, 2x Cortex-A72 emulated, {args.mem} MiB, each run in a scope with "
        f"toyd.service's MemoryMax; host: {os.cpu_count()} CPUs, shared; boot: {verdict})"
    )
    print(f"load average (1/5/15 min): {load_before} before, {loadavg()} after")


if __name__ == "__main__":
    main()
