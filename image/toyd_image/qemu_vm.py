"""A test image running under QEMU (virt) for the update test: serial console, MQTT, power.

The disk is a sparse copy of the image (512 MiB bigger, like an SD card), kept across reboots
and QEMU restarts, so slot state survives as on a real card. The guest's Mosquitto is reached
through a forwarded loopback port; the host is 10.0.2.2 for the guest (QEMU user network).
Every wait is bounded; a wait that runs out raises UpdateTestError naming what was awaited.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .assemble import MIB, _run, read_table

DEVICE_ID = "qemu-toy"  # image/variants/test/boot/toyd/provision.yaml
TOPIC = f"toyd/{DEVICE_ID}"
GROW_MB = 512


class UpdateTestError(Exception):
    """A step of the update test did not happen; the message says which."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def boot_files(image: Path, dest: Path) -> tuple[Path, Path]:
    """Kernel and initrd from the image's FAT partition (mtools, no mount)."""
    offset = read_table(image)[0]["start"] * 512
    dest.mkdir(parents=True, exist_ok=True)
    _run(
        ["mcopy", "-n", "-i", f"{image}@@{offset}", "::vmlinuz-*", "::initrd.img-*", str(dest)],
        "copy the kernel and initrd from the boot partition",
    )

    def newest(pattern: str) -> Path:
        found = sorted(dest.glob(pattern))
        if not found:
            raise UpdateTestError(f"no {pattern} on the boot partition of {image}")
        return found[-1]

    return newest("vmlinuz-*"), newest("initrd.img-*")


def extract_partition(disk: Path, number: int, out: Path, fs_only: bool = False) -> Path:
    """Partition ``number`` (1-based) of a disk image as a sparse file; fs_only: cut to the
    ext4 filesystem's own size (a slot is bigger than the application in it)."""
    part = read_table(disk)[number - 1]
    _run(
        [
            "dd",
            f"if={disk}",
            f"of={out}",
            "bs=4M",
            f"skip={part['start'] * 512}",
            f"count={part['size'] * 512}",
            "iflag=skip_bytes,count_bytes",
            "conv=sparse",
            "status=none",
        ],
        f"copy partition {number} out of {disk}",
    )
    if fs_only:
        header = _run(["dumpe2fs", "-h", str(out)], f"read the filesystem size in {out}")
        blocks = int(re.search(r"^Block count:\s+(\d+)", header, re.M).group(1))
        size = int(re.search(r"^Block size:\s+(\d+)", header, re.M).group(1))
        os.truncate(out, blocks * size)
    return out


def read_root_file(disk: Path, path: str) -> str:
    """A file of the (last, root) partition of a powered-off disk (debugfs, no mount)."""
    with tempfile.TemporaryDirectory(dir=disk.parent) as tmp:
        root = extract_partition(disk, len(read_table(disk)), Path(tmp) / "root.ext4")
        return _run(["debugfs", "-R", f"cat {path}", str(root)], f"read {path} from {disk}")


class Vm:
    """One QEMU virt machine on a persistent disk; the console of every run goes to one file."""

    def __init__(self, image: Path, work: Path, append: str = "") -> None:
        self.work, self.append = work, append
        self.disk = work / "disk.img"
        _run(["cp", "--sparse=always", str(image), str(self.disk)], "copy the image")
        os.truncate(self.disk, self.disk.stat().st_size + GROW_MB * MIB)
        self.kernel, self.initrd = boot_files(image, work / "boot")
        self.console = work / "console.log"
        self.console.write_bytes(b"")
        self.mqtt_port = free_port()
        self.monitor = work / "monitor.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmdline = (
            "root=LABEL=RASPIROOT rootwait rw console=ttyAMA0 net.ifnames=0 "
            f"systemd.show_status=auto toyd.update-test {self.append}"
        )
        net = f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.mqtt_port}-:1883"
        self.monitor.unlink(missing_ok=True)
        with open(self.console, "ab") as out:
            self.proc = subprocess.Popen(
                ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2"]
                + ["-m", os.environ.get("BOOT_MEM", "1024"), "-nographic"]
                + ["-drive", f"file={self.disk},format=raw,if=none,id=disk,cache=writeback"]
                + ["-device", "virtio-blk-pci,drive=disk", "-netdev", net]
                + ["-device", "virtio-net-pci,netdev=net0,romfile="]
                + ["-monitor", f"unix:{self.monitor},server,nowait"]
                + ["-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", cmdline],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def mark(self) -> int:
        """Where the console is now: wait_console(..., since=mark) looks only at what follows."""
        return self.console.stat().st_size

    def text(self, since: int = 0) -> str:
        with open(self.console, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace").replace("\r", "")

    def wait_console(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        """The first console text after ``since`` matching ``pattern`` (a regex)."""
        match = self.shows(pattern, timeout, since)
        if match is None:
            raise UpdateTestError(f"the console did not show {pattern!r} within {timeout:.0f} s")
        return match

    def shows(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str] | None:
        """Like wait_console, but None when the time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.text(since))
            if match:
                return match
            if self.proc is None or self.proc.poll() is not None:
                raise UpdateTestError(f"QEMU stopped before the console showed {pattern!r}")
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)

    def kill(self) -> None:
        """Pull the plug: SIGKILL, no flush inside the guest."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def powerdown(self, timeout: float = 300) -> None:
        """The power button (ACPI): systemd shuts down cleanly, QEMU exits."""
        assert self.proc is not None
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.monitor))
            sock.sendall(b"system_powerdown\n")
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise UpdateTestError(f"the toy did not power off within {timeout:.0f} s") from None

    def stop(self) -> None:
        self.kill()


class Mqtt:
    """The toy's broker seen from the host: a mosquitto_sub that is restarted whenever it
    drops (the toy reboots), every message time-stamped; mosquitto_pub to send."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[float, str, str]] = []
        self.cond = threading.Condition()
        self.running = True
        self.proc: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self._listen, name="mqtt-sub", daemon=True)
        self.thread.start()
        self.ping_n = 0

    def _listen(self) -> None:
        while self.running:
            self.proc = subprocess.Popen(
                # keepalive 5 s: a connection into a rebooting toy is dropped quickly
                ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-v", "-k", "5"]
                + ["-t", f"{TOPIC}/event/update", "-t", f"{TOPIC}/cmd/+/result"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                topic, _, payload = line.rstrip("\n").partition(" ")
                with self.cond:
                    self.messages.append((time.monotonic(), topic, payload))
                    self.cond.notify_all()
            self.proc.wait()
            time.sleep(1)  # the broker is down (the toy reboots): try again

    def close(self) -> None:
        self.running = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.thread.join(timeout=10)

    def mark(self) -> int:
        with self.cond:
            return len(self.messages)

    def publish(self, name: str, payload: dict) -> bool:
        """Send a command; False if the broker did not take it (the toy is still booting:
        QEMU accepts the forwarded connection before anything answers inside)."""
        try:
            proc = subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-k", "5"]
                + ["-t", f"{TOPIC}/cmd/{name}", "-q", "1", "-m", json.dumps(payload)],
                capture_output=True,
                timeout=15,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def wait(self, topic: str, test, timeout: float, since: int) -> tuple[float, dict]:
        """(time, payload) of the first message on ``topic`` after ``since`` for which test()."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, got, text in self.messages[since:]:
                    if got != f"{TOPIC}/{topic}":
                        continue
                    try:
                        payload = json.loads(text)
                    except ValueError:
                        continue
                    if test(payload):
                        return at, payload
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UpdateTestError(f"no matching {topic} message within {timeout:.0f} s")
                self.cond.wait(min(left, 1.0))

    def answers(self, timeout: float) -> float:
        """Send cmd/status until toyd answers (it is READY and connected); the answer's time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ping_n += 1
            rid = f"ping-{self.ping_n}"
            since = self.mark()
            if self.publish("status", {"request_id": rid}):
                try:
                    at, _ = self.wait(
                        "cmd/status/result", lambda p, rid=rid: p.get("request_id") == rid, 5, since
                    )
                    return at
                except UpdateTestError:
                    pass
            else:
                time.sleep(2)  # no broker yet
        raise UpdateTestError(f"toyd did not answer cmd/status within {timeout:.0f} s")
