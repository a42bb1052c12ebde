#!/bin/sh
# The QEMU proof of over-the-air updates on a test image (image/build.sh --variant test):
# update to a newer build, roll back from a build whose toyd cannot start, survive QEMU being
# killed during rauc install, refuse badly signed bundles. Details: image/toyd_image/qemu_update.py.
# Usage: image/update-test.sh TEST_IMAGE [KEYS_DIR]   (KEYS_DIR: the build's signing key,
# default image/cache/keys). Exit: 0 PASS, 1 FAIL, 3 bad usage.
exec "${PYTHON:-python3}" "$(dirname "$0")/toyd_image/qemu_update.py" "$@"
