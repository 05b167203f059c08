#!/usr/bin/env bash
# Undo `make run`: unmount ./mnt (and every other target of the dev cluster's volume),
# stop the node daemon `make run` started, and remove the dev cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CM="$VENV/bin/cephmount"
export CEPHMOUNT_DEV_DIR=${CEPHMOUNT_DEV_DIR:-$PWD/.dev-cluster}
pidfile="$CEPHMOUNT_DEV_DIR/daemon.pid"
if mountpoint -q mnt; then
    "$CM" umount mnt
fi
if [ -f "$pidfile" ]; then
    if grep -q "cephmount" "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then
        "$CM" daemon --shutdown-mounts >/dev/null || true
        kill "$(cat "$pidfile")"
    fi
    rm -f "$pidfile"
fi
"$CM" dev-cluster down
