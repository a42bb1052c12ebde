#!/bin/sh
# Runs before any package is installed: make update-initramfs build a small initramfs
# from a module list. MODULES=most under qemu-user emulation takes ~10 minutes.
set -eu
root="$1"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
cat > "$root/etc/initramfs-tools/conf.d/toyd.conf" <<'CONF'
# toyd image: only the modules listed in /etc/initramfs-tools/toyd-modules
MODULES=list
COMPRESS=zstd
CONF
cat > "$root/etc/initramfs-tools/toyd-modules" <<'LIST'
# Modules the initramfs needs to find and mount the root filesystem.
# Raspberry Pi 3 / 4 / Zero 2 W: SD card and USB boot
mmc_block
sdhci_iproc
bcm2835
bcm2835_mmc
sdhci_pltfm
dwc2
xhci_pci
pcie_brcmstb
reset_raspberrypi
usb_storage
uas
# QEMU -M virt (boot test)
virtio_pci
virtio_mmio
virtio_blk
# Filesystems
ext4
crc32c_generic
vfat
nls_cp437
nls_ascii
LIST
cat > "$root/etc/initramfs-tools/hooks/toyd-modules" <<'HOOK'
#!/bin/sh
# Add the modules named in /etc/initramfs-tools/toyd-modules (MODULES=list mode).
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "${1:-}" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
grep -v '^\s*\(#\|$\)' /etc/initramfs-tools/toyd-modules | while read -r module; do
    manual_add_modules "$module"
done
HOOK
chmod 0755 "$root/etc/initramfs-tools/hooks/toyd-modules"
