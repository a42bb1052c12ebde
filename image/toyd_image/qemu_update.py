"""The QEMU proof of over-the-air updates: image/update-test.sh TEST_IMAGE [KEYS_DIR].

Boots a test image (QEMU virt) on a persistent disk and, driven from the host through the
toy's own MQTT broker and an HTTP server on loopback (the guest fetches from 10.0.2.2), runs
the real path: the updater plugin, the download, RAUC's signature check and install,
toyd-slot and toyd-health.

  (a) update to a newer build                  -> reboots into it, marked good
  (b) update to a build whose toyd cannot start -> trial boot fails its health check, back on (a)
  (c) QEMU killed in the middle of rauc install -> the next boot runs (a)
  (d) a bundle signed by another key, and one with a flipped byte -> refused, slot state unchanged

The bundles of (a)-(c) are derived from the image's own slot A and signed with the build's key
(KEYS_DIR, default image/cache/keys). The two of (d) hold a small slot image: their signature
check fails whatever the size, and each 198 MB bundle downloaded and hashed in the guest costs
about half a minute. Prints one line per step with the seconds since the start, the stages of
each install and the figures (emulated, so slow); exit 0 PASS, 1 FAIL, 3 bad usage.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    from . import update
    from .assemble import _run
    from .config import ImageBuildError
    from .qemu_vm import Mqtt, UpdateTestError, Vm, extract_partition, free_port, read_root_file
except ImportError:  # run as a script
    sys.path[:0] = [str(Path(__file__).resolve().parents[n]) for n in (1, 2)]
    from toyd_image import update
    from toyd_image.assemble import _run
    from toyd_image.config import ImageBuildError
    from toyd_image.qemu_vm import (
        Mqtt,
        UpdateTestError,
        Vm,
        extract_partition,
        free_port,
        read_root_file,
    )

IMAGE_DIR = Path(__file__).resolve().parent.parent
BOOT_S = 900.0  # QEMU start or reboot -> toyd-slot's line (software emulation, busy machine)
READY_S = 900.0  # toyd-slot's line -> toyd answers on MQTT
INSTALL_S = 1200.0  # cmd/update -> the updater asks for the reboot
CUT_AFTER_S = 5.0  # how long RAUC writes the slot before the plug is pulled in (c)
STAGES = ("download", "verify", "install", "reboot")  # the updater's event/update stages
STARTED = time.monotonic()


def say(message: str) -> None:
    print(
        f"update-test: {message}  [{time.monotonic() - STARTED:.0f} s]", file=sys.stderr, flush=True
    )


class Bundles:
    """The test's bundles, served over HTTP on loopback."""

    def __init__(self, image: Path, keys: Path, work: Path) -> None:
        cert, key = keys / "dev-ca.cert.pem", keys / "dev-ca.key.pem"
        if not (cert.is_file() and key.is_file()):
            raise UpdateTestError(f"no signing key in {keys} (the build's cache/keys)")
        slot = extract_partition(image, 2, work / "slot.ext4", fs_only=True)
        self.release = _run(["debugfs", "-R", "cat /RELEASE", str(slot)], "read RELEASE").strip()
        self.www = work / "www"
        self.www.mkdir()
        self.items: dict[str, tuple[Path, str]] = {}
        for name, broken in (("new", False), ("broken", True), ("cut", False)):
            version = f"{self.release}.{name}"
            app = update.derive(slot, work / f"{name}.ext4", release=version, broken=broken)
            self.items[name] = (
                update.bundle(app, version, cert, key, self.www / f"{name}.raucb", "lz4"),
                version,
            )
            app.unlink()
        small = small_slot(work / "small", f"{self.release}.small")
        stranger = update.dev_keys(work / "stranger")
        for name, signer in (("stranger", stranger), ("flipped", (cert, key))):
            version = f"{self.release}.{name}"  # not the running one
            out = update.bundle(small, version, *signer, self.www / f"{name}.raucb", "lz4")
            self.items[name] = (out, version)
        flip_payload_byte(self.items["flipped"][0])
        handler = functools.partial(QuietHandler, directory=str(self.www))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()

    def command(self, name: str) -> dict:
        path, version = self.items[name]
        return {
            "url": f"http://10.0.2.2:{self.server.server_port}/{path.name}",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "version": version,
            "request_id": name,
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def small_slot(folder: Path, release: str) -> Path:
    """A 16 MiB slot image with a RELEASE and 1 MB that does not compress away."""
    (folder / "venv/bin").mkdir(parents=True)
    (folder / "RELEASE").write_text(release + "\n")
    (folder / "venv/bin/toyd").write_bytes(os.urandom(1 << 20))
    out = folder.with_suffix(".ext4")
    update.make_app_image(folder, out, 16)
    return out


def flip_payload_byte(bundle: Path) -> None:
    """Flip one bit in the middle of the signed squashfs of a plain RAUC bundle (the file is
    squashfs + CMS signature + the signature's size as 8 bytes, big-endian)."""
    data = bytearray(bundle.read_bytes())
    signature = int.from_bytes(data[-8:], "big")
    payload = len(data) - 8 - signature
    if not data.startswith(b"hsqs") or signature == 0 or payload <= 0:
        raise UpdateTestError(f"{bundle} is not a plain RAUC bundle")
    data[payload // 2] ^= 0x01
    bundle.write_bytes(bytes(data))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class UpdateTest:
    def __init__(self, image: Path, keys: Path, work: Path) -> None:
        self.bundles = Bundles(image, keys, work)
        self.vm = Vm(image, work)
        self.mqtt = Mqtt(self.vm.mqtt_port)
        self.figures: dict[str, float] = {}
        self.stages: dict[str, dict[str, float]] = {}
        self.r1 = self.bundles.release
        say(f"{len(self.bundles.items)} bundles made and served")

    def booted(self, slot: str, kind: str, release: str, since: int) -> None:
        pattern = rf"TOYD-SLOT: booted {slot} \({kind}[^)]*\) release={re.escape(release)}\s"
        self.vm.wait_console(pattern, BOOT_S, since)

    def update(
        self, name: str, until: tuple[str, ...] = ("reboot", "failed")
    ) -> tuple[float, dict]:
        """Send cmd/update for a bundle; (time, event) of its first stage in ``until``."""
        since, sent = self.mqtt.mark(), time.monotonic()
        if not self.mqtt.publish("update", self.bundles.command(name)):
            raise UpdateTestError("mosquitto_pub could not send cmd/update")
        at, event = self.mqtt.wait(
            "event/update",
            lambda p: p.get("request_id") == name and p.get("stage") in until,
            INSTALL_S,
            since,
        )
        self.stages[name] = self.stage_times(name, since, sent)
        return at, event

    def stage_times(self, name: str, since: int, sent: float) -> dict[str, float]:
        """Seconds each stage of an update took (from its first event/update to the next)."""
        first: dict[str, float] = {}
        for at, topic, text in self.mqtt.messages[since:]:
            if topic.endswith("/event/update") and f'"{name}"' in text:
                first.setdefault(json.loads(text).get("stage", ""), at)
        marks = [(stage, first[stage]) for stage in STAGES if stage in first]
        # The first download event comes at 10 %: "start" is the request and that first tenth.
        times = {"start": marks[0][1] - sent} if marks else {}
        for (stage, at), (_, end) in zip(marks, marks[1:]):
            times[stage] = end - at
        return times

    def say_stages(self, name: str) -> None:
        parts = ", ".join(f"{stage} {took:.0f} s" for stage, took in self.stages[name].items())
        say(f"    stages of the {name} update: {parts}")

    def run(self) -> None:
        vm, mqtt = self.vm, self.mqtt
        mark = vm.mark()
        vm.start()
        self.booted("A", "good", self.r1, mark)
        mqtt.answers(READY_S)
        say(f"boot 1: slot A, release {self.r1}, toyd answers on MQTT")

        mark, sent = vm.mark(), time.monotonic()
        at, event = self.update("new")
        if event["stage"] != "reboot":
            raise UpdateTestError(f"(a) the update failed: {event.get('error')}")
        self.figures["apply_s"] = at - sent
        self.booted("B", "trial", f"{self.r1}.new", mark)
        vm.wait_console(r"TOYD-HEALTH: slot B good", READY_S, mark)
        self.figures["downtime_s"] = mqtt.answers(READY_S) - at
        say(f"(a) ok: installed in {at - sent:.0f} s, rebooted into B, marked good, toyd answers")
        self.say_stages("new")

        mark = vm.mark()
        at, event = self.update("broken")
        if event["stage"] != "reboot":
            raise UpdateTestError(f"(b) the broken build was not installed: {event.get('error')}")
        self.booted("A", "trial", f"{self.r1}.broken", mark)
        verdict = vm.wait_console(r"TOYD-HEALTH: slot A bad: ([^\n]*)", READY_S, mark)
        self.booted("B", "good", f"{self.r1}.new", mark + verdict.end())
        self.figures["rollback_s"] = mqtt.answers(READY_S) - at
        say(f"(b) ok: trial boot of A failed its health check ({verdict.group(1)}); back on B")
        self.say_stages("broken")

        mark = vm.mark()
        since = mqtt.mark()
        mqtt.publish("update", self.bundles.command("cut"))
        vm.wait_console(r"toyd-slot: set-state A bad", INSTALL_S, mark)
        # RAUC has marked slot A bad and writes it now; the plug is pulled a few seconds in.
        if vm.shows(r"toyd-slot: set-primary", CUT_AFTER_S, mark):
            raise UpdateTestError("(c) the install finished before QEMU could be killed")
        vm.kill()
        percents = [
            json.loads(p).get("percent")
            for _, t, p in mqtt.messages[since:]
            if t.endswith("/event/update") and '"install"' in p
        ]
        mark = vm.mark()
        vm.start()
        self.booted("B", "good", f"{self.r1}.new", mark)
        mqtt.answers(READY_S)
        say(f"(c) ok: QEMU killed during rauc install (install progress {percents}); B runs")

        mark = vm.mark()
        for name in ("stranger", "flipped"):
            _, event = self.update(name, until=("failed", "install", "reboot", "done"))
            if event["stage"] != "failed" or "verify" not in event.get("error", ""):
                raise UpdateTestError(f"(d) the {name} bundle was not refused: {event}")
            say(f"(d) {name} bundle refused: {event['error'][:160]}")
        changes = [line for line in vm.text(mark).splitlines() if "toyd-slot: set-" in line]
        if changes:
            raise UpdateTestError(f"(d) a refused bundle changed the slots: {changes}")
        vm.powerdown()
        state = json.loads(read_root_file(vm.disk, "/var/lib/toyd-slot/state.json"))["state"]
        if state != {"primary": "B", "A": "bad", "B": "good", "tries": 0}:
            raise UpdateTestError(f"(d) unexpected slot state after the refusals: {state}")
        say(f"(d) ok: both refused, slot state unchanged {state}")
        self.figures["test_bundle_mb"] = self.bundles.items["new"][0].stat().st_size / 1e6

    def close(self) -> None:
        self.vm.stop()
        self.mqtt.close()
        self.bundles.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or len(args) > 2:
        print(__doc__, file=sys.stderr)
        return 3
    image = Path(args[0]).resolve()
    keys = Path(args[1]) if len(args) > 1 else IMAGE_DIR / "cache" / "keys"
    for tool in ("qemu-system-aarch64", "mosquitto_pub", "mosquitto_sub", "rauc", "mcopy"):
        if shutil.which(tool) is None:
            say(
                f"{tool} is missing (apt-get install qemu-system-arm mosquitto-clients rauc mtools)"
            )
            return 3
    if not image.is_file():
        say(f"no such image: {image}")
        return 3
    work = Path(tempfile.mkdtemp(prefix="toyd-update-test-"))
    test = None
    start = time.monotonic()
    try:
        test = UpdateTest(image, keys, work)
        test.run()
    except (UpdateTestError, ImageBuildError, OSError, subprocess.SubprocessError) as exc:
        if test is not None:
            kept = Path(tempfile.gettempdir()) / "toyd-update-test-console.log"
            shutil.copyfile(test.vm.console, kept)
            tail = test.vm.text().splitlines()[-40:]
            say("last console lines:\n" + "\n".join(f"  | {line}" for line in tail))
            say(f"full serial console in {kept}")
        say(f"FAIL: {exc}")
        return 1
    finally:
        if test is not None:
            test.close()
        shutil.rmtree(work, ignore_errors=True)
    f = test.figures
    built = image.with_suffix(".raucb")  # the build's own bundle (xz) next to the image
    size = f"{built.stat().st_size / 1e6:.1f} MB (xz, {built.name}); " if built.exists() else ""
    say(
        f"figures (QEMU software emulation, not a Pi): bundle {size}"
        f"test bundle {f['test_bundle_mb']:.1f} MB (lz4); "
        f"apply (download+verify+install) {f['apply_s']:.0f} s; "
        f"downtime (reboot request -> toyd answers on the new slot) {f['downtime_s']:.0f} s; "
        f"roll back (reboot into the broken build -> toyd answers on the old) "
        f"{f['rollback_s']:.0f} s"
    )
    say(f"PASS in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
