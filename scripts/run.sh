#!/usr/bin/env bash
# Start the dev cluster (./.dev-cluster) and show what a client of it gets.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CM="$VENV/bin/cephmount"
export CEPHMOUNT_DEV_DIR=${CEPHMOUNT_DEV_DIR:-$PWD/.dev-cluster}

"$CM" dev-cluster up
"$CM" dev-cluster status >/dev/null && echo "run: cluster is HEALTH_OK, all PGs active+clean"
"$CM" dev-cluster env
