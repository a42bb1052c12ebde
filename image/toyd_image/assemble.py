"""Assemble a partitioned SD image from two folders, without loop devices.

FAT boot partition: ``mkfs.vfat -C`` + mtools ``mcopy``; ext4 root: ``mke2fs -d``; MBR table
(the Pi 3 firmware reads only MBR) with sfdisk; the filesystems written into the image with
``dd conv=notrunc,sparse``. Works as any user for folders that user can read; as root the
owners and modes of the root folder are kept.

With an application image (toyd's /opt/toyd, see update.py) the table has four primary
partitions: 1 boot, 2 app slot A, 3 app slot B, 4 root. Root comes last so that it is the one
that grows to fill the card on first boot (toyd-growroot); the slots keep their size.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import ImageBuildError

log = logging.getLogger(__name__)
MIB = 1 << 20
ALIGN_MIB = 4  # partitions on 4 MiB boundaries: SD cards erase in blocks of that order
BOOT_LABEL = "RASPIFIRM"
ROOT_LABEL = "RASPIROOT"
TOOL_TIMEOUT_S = 900
# Fixed MBR disk identifier: partition N is /dev/disk/by-partuuid/746f7964-0N on every toy
# (the RAUC slots in /etc/rauc/system.conf are named that way). "toyd" in ASCII.
DISK_ID = 0x746F7964
SLOT_HEADROOM = 1.5  # app slots are this much bigger than the first build's application


@dataclass(frozen=True)
class Layout:
    """Partition offsets and sizes in MiB."""

    boot_start: int
    boot_size: int
    root_start: int
    root_size: int
    slot_starts: tuple[int, ...] = ()  # app slots A and B (none: a two-partition image)
    slot_size: int = 0

    @property
    def total(self) -> int:
        return self.root_start + self.root_size


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes allocated, number of inodes) of a folder, counting hard links once."""
    seen: set[tuple[int, int]] = set()
    total = inodes = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            inodes += 1
            total += max(st.st_blocks * 512, 4096)
    return total, inodes + 1


def plan(
    boot_dir: Path, root_dir: Path, boot_size_mb: int, root_free_mb: int, slot_size_mb: int = 0
) -> Layout:
    """Partition sizes: the boot size as configured, root = content + 10 % + journal + free space;
    with slot_size_mb, two app slots of that size between boot and root."""
    boot_bytes, _ = tree_size(boot_dir)
    if boot_bytes > (boot_size_mb - 8) * MIB:
        raise ImageBuildError(
            f"boot files need {boot_bytes // MIB} MiB but boot_size_mb is {boot_size_mb}; raise it"
        )
    root_bytes, inodes = tree_size(root_dir)
    root_mb = int(root_bytes * 1.10 / MIB) + inodes * 256 // MIB + 32 + root_free_mb
    root_mb = -(-root_mb // ALIGN_MIB) * ALIGN_MIB
    slot_mb = -(-slot_size_mb // ALIGN_MIB) * ALIGN_MIB
    first = ALIGN_MIB + boot_size_mb
    slots = (first, first + slot_mb) if slot_mb else ()
    return Layout(ALIGN_MIB, boot_size_mb, first + 2 * slot_mb, root_mb, slots, slot_mb)


def slot_size_for(app_image: Path) -> int:
    """MiB of each app slot: the first application image plus headroom for later releases."""
    mb = int(app_image.stat().st_size * SLOT_HEADROOM) // MIB
    return -(-mb // ALIGN_MIB) * ALIGN_MIB


def _run(cmd: list[str], what: str, stdin: str | None = None) -> str:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C")
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env
        )
    except FileNotFoundError:
        raise ImageBuildError(
            f"{cmd[0]} is not installed (needed to {what}); see docs/image.md requirements"
        ) from None
    except subprocess.TimeoutExpired:
        raise ImageBuildError(
            f"{what}: {cmd[0]} gave no result within {TOOL_TIMEOUT_S} s"
        ) from None
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()[-1500:]
        if "No space left" in message or "not enough space" in message.lower():
            message = f"no space left on the device: {message}"
        raise ImageBuildError(f"cannot {what}: {message}")
    return proc.stdout


def make_fat(boot_dir: Path, size_mb: int, out: Path) -> None:
    """A FAT32 filesystem image labelled RASPIFIRM holding boot_dir's files."""
    out.unlink(missing_ok=True)
    _run(
        ["mkfs.vfat", "-C", "-F", "32", "-n", BOOT_LABEL, str(out), str(size_mb * 1024)],
        "create the FAT boot filesystem",
    )
    entries = sorted(str(p) for p in boot_dir.iterdir())
    if entries:
        _run(
            ["mcopy", "-s", "-p", "-m", "-i", str(out), *entries, "::"],
            "copy the boot files (mcopy)",
        )


def make_ext4(root_dir: Path, size_mb: int, out: Path) -> None:
    """An ext4 filesystem image labelled RASPIROOT populated from root_dir (mke2fs -d)."""
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
            ROOT_LABEL,
            "-J",
            "size=32",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            "-m",
            "1",
            "-d",
            str(root_dir),
            str(out),
            f"{size_mb}M",
        ],
        "create the ext4 root filesystem (mke2fs -d)",
    )


def partition(image: Path, layout: Layout) -> None:
    """Create the sparse image file and its MBR: FAT32 (LBA, bootable), [slot A, slot B,] root."""
    with open(image, "wb") as f:
        f.truncate(layout.total * MIB)
    sectors = MIB // 512
    script = (
        f"label: dos\nlabel-id: {DISK_ID:#010x}\nunit: sectors\n"
        f"start={layout.boot_start * sectors}, size={layout.boot_size * sectors}, type=c, bootable\n"
    )
    for start in layout.slot_starts:
        script += f"start={start * sectors}, size={layout.slot_size * sectors}, type=83\n"
    script += f"start={layout.root_start * sectors}, size={layout.root_size * sectors}, type=83\n"
    _run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "always", str(image)],
        "write the partition table",
        stdin=script,
    )


def write_at(image: Path, fs: Path, start_mb: int) -> None:
    """Copy a filesystem image into the disk image at start_mb, keeping holes."""
    _run(
        [
            "dd",
            f"if={fs}",
            f"of={image}",
            "bs=1M",
            f"seek={start_mb}",
            "conv=notrunc,sparse",
            "status=none",
        ],
        "write a partition into the image (dd)",
    )


def assemble(
    boot_dir: Path,
    root_dir: Path,
    image: Path,
    *,
    boot_size_mb: int,
    root_free_mb: int,
    app_image: Path | None = None,
) -> Layout:
    """Build the whole image file from the two folders (and the application image, written
    into both slots); parts are removed on any failure."""
    slot_mb = slot_size_for(app_image) if app_image is not None else 0
    layout = plan(boot_dir, root_dir, boot_size_mb, root_free_mb, slot_mb)
    fat, ext4 = image.with_name(image.name + ".boot"), image.with_name(image.name + ".root")
    try:
        make_fat(boot_dir, layout.boot_size, fat)
        make_ext4(root_dir, layout.root_size, ext4)
        partition(image, layout)
        write_at(image, fat, layout.boot_start)
        write_at(image, ext4, layout.root_start)
        for start in layout.slot_starts:
            write_at(image, app_image, start)
    except BaseException:
        image.unlink(missing_ok=True)
        raise
    finally:
        fat.unlink(missing_ok=True)
        ext4.unlink(missing_ok=True)
    return layout


def read_table(image: Path) -> list[dict]:
    """The partition table as sfdisk --json reports it (for checks and the boot test)."""
    data = json.loads(_run(["sfdisk", "--json", str(image)], "read the partition table"))
    return data["partitiontable"]["partitions"]
