#!/usr/bin/env bash
# Undo `make run`: unmount ./mnt and remove the dev cluster (with any other client of it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export CEPHMOUNT_DEV_DIR=${CEPHMOUNT_DEV_DIR:-$PWD/.dev-cluster}
if grep -q " $PWD/mnt fuse.cephmount " /proc/mounts; then
    "$VENV/bin/cephmount" umount mnt
fi
"$VENV/bin/cephmount" dev-cluster down
