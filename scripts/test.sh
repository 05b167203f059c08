#!/usr/bin/env bash
# Run the whole suite against a cluster of its own, which is stopped and removed
# whatever the tests do. Everything the tests make lives under a dir of the run's
# own, and what they leave there (a test ended by its timeout skips its teardown)
# is unmounted and ended afterwards. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PORT=${CEPHMOUNT_TEST_PORT:-3350}

dir=$(mktemp -d /tmp/cmtest.XXXXXX)
# Mountpoints in it are entered by other users: the dir must be traversable.
run=$(mktemp -d /tmp/cmrun.XXXXXX)
chmod 755 "$run"
finish() {
    "$VENV/bin/python" -m tests.leftovers "$run" "$dir" || status=1
    "$VENV/bin/cephmount" dev-cluster down --dir "$dir" >/dev/null
    rm -rf --one-file-system "$run"
    exit "$status"
}
status=1
trap finish EXIT

echo "test: starting a dev cluster in $dir (port $PORT)"
"$VENV/bin/cephmount" dev-cluster up --dir "$dir" --port "$PORT" || exit 1
CEPHMOUNT_TEST_CLUSTER_DIR=$dir CEPHMOUNT_TEST_TMP=$run \
    "$VENV/bin/pytest" -p no:cacheprovider --basetemp "$run/pytest" "$@" tests
status=$?
