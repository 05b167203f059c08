#!/usr/bin/env bash
# Start the dev cluster (./.dev-cluster) and the node daemon, and mount the cluster's
# subvolume at ./mnt through the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CM="$VENV/bin/cephmount"
export CEPHMOUNT_DEV_DIR=${CEPHMOUNT_DEV_DIR:-$PWD/.dev-cluster}

"$CM" dev-cluster up
eval "$("$CM" dev-cluster env)"
SOCKET=${CEPHMOUNT_SOCKET:-/run/cephmount/cephmount.sock}
if ! "$VENV/bin/python" -c "import sys; from cephmount.daemon.client import answers; \
        sys.exit(0 if answers('$SOCKET') else 1)"; then
    setsid "$CM" daemon --socket "$SOCKET" >>"$CEPHMOUNT_DEV_DIR/daemon.log" 2>&1 \
        </dev/null &
    echo $! >"$CEPHMOUNT_DEV_DIR/daemon.pid"
    for _ in $(seq 100); do
        "$VENV/bin/python" -c "import sys; from cephmount.daemon.client import answers; \
            sys.exit(0 if answers('$SOCKET') else 1)" && break
        sleep 0.1
    done
    echo "node daemon started (pid $(cat "$CEPHMOUNT_DEV_DIR/daemon.pid"), log" \
        "$CEPHMOUNT_DEV_DIR/daemon.log)"
fi
mkdir -p mnt
if ! mountpoint -q mnt; then
    "$CM" mount -o "conf=$CEPH_CONF,id=$CEPHMOUNT_CLIENT_ID,keyring=$CEPHMOUNT_KEYRING" \
        "$CEPHMOUNT_FS_NAME:$CEPHMOUNT_SUBVOLUME_PATH" mnt
fi
echo "hello from cephmount" > mnt/hello.txt
cat <<EOT

The subvolume $CEPHMOUNT_FS_NAME:$CEPHMOUNT_SUBVOLUME_PATH (1 GiB quota) is mounted at ./mnt:
$(df -h mnt | tail -1)

Try:
  cat mnt/hello.txt; ls -l mnt; df -h mnt
  $CM status         # the node daemon, its volumes and their workers
  mkdir -p /tmp/also; $CM mount -o conf=$CEPH_CONF,id=kube,keyring=$CEPHMOUNT_KEYRING,ro \\
      $CEPHMOUNT_FS_NAME:$CEPHMOUNT_SUBVOLUME_PATH /tmp/also     # a second, read-only target
  kill -9 <worker pid from status>; cat mnt/hello.txt          # replaced behind the mount
  make stop          # unmount, stop the daemon started here, remove the dev cluster
EOT
