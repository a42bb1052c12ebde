#!/bin/sh
# System setup inside the new rootfs: Pi boot files, the toyd user, SSH off.
set -eu
root="$1"

# Pi boot partition: root by label; regenerate config.txt/cmdline.txt/kernel copies.
sed -i 's|^#\?ROOTPART=.*|ROOTPART=LABEL=RASPIROOT|' "$root/etc/default/raspi-firmware"
grep -q '^ROOTPART=' "$root/etc/default/raspi-firmware" || echo 'ROOTPART=LABEL=RASPIROOT' >> "$root/etc/default/raspi-firmware"
for kernel in "$root"/boot/vmlinuz-*; do
    version="${kernel##*/vmlinuz-}"
    chroot "$root" env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$version" "/boot/vmlinuz-$version"
done

# Unprivileged service user: GPIO (gpiochip via udev rule) and sound card access.
chroot "$root" sh -c 'getent group gpio >/dev/null || groupadd --system gpio'
chroot "$root" sh -c 'getent passwd toyd >/dev/null || useradd --system --user-group --home-dir /var/lib/toyd --no-create-home --shell /usr/sbin/nologin --groups gpio,audio toyd'
install -d -m 0750 "$root/var/lib/toyd"
chroot "$root" chown toyd:toyd /var/lib/toyd

# No password logins: root stays locked (release and test images alike).
chroot "$root" usermod --password '*' root

# SSH is off until a maker opts in (see toyd-firstboot); no shared host keys in images.
chroot "$root" systemctl disable ssh.service ssh.socket 2>/dev/null || true
rm -f "$root"/etc/ssh/ssh_host_*

# The MQTT broker stays off unless a maker (or the test image) enables it.
chroot "$root" systemctl disable mosquitto.service 2>/dev/null || true

# force-unsafe-io only speeds up the build; on the toy, dpkg must survive power cuts.
sed -i '/^force-unsafe-io$/d' "$root/etc/dpkg/dpkg.cfg.d/99mmdebstrap"
