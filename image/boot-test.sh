#!/bin/bash
# Boot a toyd test image under QEMU (-M virt, cortex-a72, software emulation) and check that
# toyd.service is active and reached READY, and (toyd-hw-check in the image) that toyd holds
# the GPIO lines and ALSA devices, seen from outside toyd. The image must be a test variant
# (image/build.sh --variant test): its toyd-boot-check.service prints one line
# "TOYD-BOOT-TEST: PASS|FAIL ..." on the serial console and powers off.
#
# Usage: image/boot-test.sh IMAGE [TIMEOUT_SECONDS]
# BOOT_MACHINE=raspi3b boots QEMU's Pi 3 model with the image's Pi 3 device tree and the image
# as SD card instead (slower; exercises the Pi device tree, the SD path of the initramfs and
# the Pi's GPIO block: toyd's button and LED lines, the LED following parent commands).
# BOOT_TEST_CONSOLE=FILE keeps the serial console there (always kept in /tmp on failure).
# BOOT_MEM=MiB sets the virt machine's memory (default 1024; 512 is a Pi Zero 2 W);
# BOOT_APPEND adds kernel arguments (toyd.measure=SECONDS: the image measures toyd's figures).
# Exit: 0 PASS, 1 toyd did not start (FAIL), 2 no verdict within the timeout, 3 bad usage/image.
set -euo pipefail

image="${1:-}"
timeout_s="${2:-${BOOT_TIMEOUT:-420}}"
if [ -z "$image" ] || [ "$image" = "-h" ] || [ "$image" = "--help" ]; then
    sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    exit 3
fi
die() { echo "boot-test: $*" >&2; exit 3; }
[ -f "$image" ] || die "no such image: $image"
for tool in qemu-system-aarch64 qemu-img sfdisk mcopy python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install qemu-system-arm qemu-utils fdisk mtools python3)"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/toyd-boot-test.XXXXXX")"
qemu_pid=""
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Kernel and initrd come from the image's own FAT boot partition (read with mtools, no mount).
boot_offset="$(sfdisk --json "$image" | python3 -c '
import json, sys
parts = json.load(sys.stdin)["partitiontable"]["partitions"]
print(parts[0]["start"] * 512)')" || die "$image has no readable partition table"
mkdir "$work/boot"
MTOOLS_SKIP_CHECK=1 mcopy -n -i "$image@@$boot_offset" "::vmlinuz-*" "::initrd.img-*" "$work/boot/" 2>"$work/mcopy.err" || true
kernel="$(ls -1 "$work"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)"
initrd="$(ls -1 "$work"/boot/initrd.img-* 2>/dev/null | sort -V | tail -n 1 || true)"
[ -n "$kernel" ] && [ -n "$initrd" ] \
    || die "no vmlinuz-*/initrd.img-* on the boot partition of $image: $(cat "$work/mcopy.err")"

# The VM's disk is bigger than the image (as an SD card is), to exercise the first-boot growth.
# A qcow2 overlay plus snapshot=on: the image file itself is never written.
grow_mb="${GROW_MB:-512}"
size=$(stat -c %s "$image")
qemu-img create -q -f qcow2 -b "$(readlink -f "$image")" -F raw "$work/disk.qcow2" "$(( size + grow_mb * 1048576 ))" \
    || die "qemu-img cannot create an overlay for $image"

cmdline="root=LABEL=RASPIROOT rootwait rw console=ttyAMA0 net.ifnames=0 systemd.show_status=auto ${BOOT_APPEND:-}"
case "${BOOT_MACHINE:-virt}" in
    virt)
        machine=(-M virt -cpu cortex-a72 -smp 2 -m "${BOOT_MEM:-1024}"
                 -drive "file=$work/disk.qcow2,format=qcow2,if=none,id=disk,snapshot=on" -device virtio-blk-pci,drive=disk
                 -netdev user,id=net0 -device virtio-net-pci,netdev=net0,romfile=) ;;
    raspi3b)
        # The image's own Pi 3 device tree and the SD card path (QEMU wants a power-of-two card).
        MTOOLS_SKIP_CHECK=1 mcopy -n -i "$image@@$boot_offset" ::bcm2837-rpi-3-b.dtb "$work/boot/" \
            || die "no bcm2837-rpi-3-b.dtb on the boot partition"
        card=1
        while [ "$card" -lt "$(( size + grow_mb * 1048576 ))" ]; do card=$(( card * 2 )); done
        qemu-img resize -q "$work/disk.qcow2" "$card"
        machine=(-M raspi3b -dtb "$work/boot/bcm2837-rpi-3-b.dtb"
                 -drive "file=$work/disk.qcow2,format=qcow2,if=sd,snapshot=on") ;;
    *) die "BOOT_MACHINE must be virt or raspi3b" ;;
esac

console="$work/console.log"
: > "$console"
start=$(date +%s.%N)
qemu-system-aarch64 "${machine[@]}" -nographic -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
    </dev/null >"$console" 2>&1 &
qemu_pid=$!
echo "boot-test: booting $image (pid $qemu_pid, timeout ${timeout_s} s, console $console)" >&2

verdict=""
deadline=$(( $(date +%s) + timeout_s ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    verdict="$(grep -a -m1 -o 'TOYD-BOOT-TEST: [A-Z]*.*' "$console" || true)"
    [ -n "$verdict" ] && break
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 1
done
qemu_alive=yes
kill -0 "$qemu_pid" 2>/dev/null || qemu_alive=no
seen=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
# The check unit powers the VM off; give it a bounded moment so the report is complete.
for _ in $(seq 1 30); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
kill "$qemu_pid" 2>/dev/null || true
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""

keep_console() {
    local kept="${BOOT_TEST_CONSOLE:-${TMPDIR:-/tmp}/toyd-boot-test-console.log}"
    cp "$console" "$kept" && echo "boot-test: full serial console in $kept" >&2
}
report() { sed -n '/=== toyd.service/,/TOYD-BOOT-TEST/p' "$console" | tr -d '\r' | sed 's/^/  | /' >&2; }
case "$verdict" in
    "TOYD-BOOT-TEST: PASS"*)
        report
        if [ -n "${BOOT_TEST_CONSOLE:-}" ]; then keep_console; fi
        echo "boot-test: PASS in ${seen} s of QEMU time: ${verdict#TOYD-BOOT-TEST: }" >&2
        exit 0 ;;
    "TOYD-BOOT-TEST: FAIL"*)
        report
        keep_console
        hw_failed="$(grep -a -o 'HW-CHECK: [a-z0-9-]*: FAIL.*' "$console" | tr -d '\r' || true)"
        if [ -n "$hw_failed" ]; then
            echo "boot-test: FAIL: toyd runs, but the hardware seen from outside it is wrong:" >&2
            echo "$hw_failed" | sed 's/^/  /' >&2
        else
            echo "boot-test: FAIL: toyd.service did not become active with READY (${verdict#TOYD-BOOT-TEST: })" >&2
        fi
        exit 1 ;;
    *)
        if [ "$qemu_alive" = no ]; then
            echo "boot-test: QEMU stopped after ${seen} s without a verdict (is it a test variant?). Last console lines:" >&2
        else
            echo "boot-test: no verdict from the image within ${timeout_s} s. Last console lines:" >&2
        fi
        tail -n 40 "$console" | tr -d '\r' | sed 's/^/  | /' >&2
        keep_console
        exit 2 ;;
esac
