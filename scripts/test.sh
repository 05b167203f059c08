#!/usr/bin/env bash
# Run the whole suite against a cluster of its own, which is stopped and removed
# whatever the tests do. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PORT=${CEPHMOUNT_TEST_PORT:-3350}

dir=$(mktemp -d /tmp/cmtest.XXXXXX)
stop_cluster() { "$VENV/bin/cephmount" dev-cluster down --dir "$dir" >/dev/null; }
trap stop_cluster EXIT

echo "test: starting a dev cluster in $dir (port $PORT)"
"$VENV/bin/cephmount" dev-cluster up --dir "$dir" --port "$PORT" || exit 1
CEPHMOUNT_TEST_CLUSTER_DIR=$dir "$VENV/bin/pytest" -p no:cacheprovider "$@" tests
