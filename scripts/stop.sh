#!/usr/bin/env bash
# Undo `make run`: unmount ./mnt and remove the dev cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export CEPHMOUNT_DEV_DIR=${CEPHMOUNT_DEV_DIR:-$PWD/.dev-cluster}
"$VENV/bin/cephmount" dev-cluster down
