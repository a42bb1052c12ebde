#!/bin/sh
# Build the toyd Raspberry Pi SD image. Usage: sudo image/build.sh [--config FILE] [--out DIR] [--help]
# The work is done by image/build.py with the host's Python 3.11 (needs pyyaml and packaging).
exec "${PYTHON:-python3}" "$(dirname "$0")/build.py" "$@"
