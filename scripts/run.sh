#!/usr/bin/env bash
# Start the dev cluster (./.dev-cluster) and mount its subvolume at ./mnt with cephmount.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CM="$VENV/bin/cephmount"
export CEPHMOUNT_DEV_DIR=${CEPHMOUNT_DEV_DIR:-$PWD/.dev-cluster}

"$CM" dev-cluster up
eval "$("$CM" dev-cluster env)"
mkdir -p mnt
if ! grep -q " $PWD/mnt fuse.cephmount " /proc/mounts; then
    "$CM" mount -o "conf=$CEPH_CONF,id=$CEPHMOUNT_CLIENT_ID,keyring=$CEPHMOUNT_KEYRING" \
        "$CEPHMOUNT_FS_NAME:$CEPHMOUNT_SUBVOLUME_PATH" mnt
fi
echo "hello from cephmount" > mnt/hello.txt
cat <<EOT

The subvolume $CEPHMOUNT_FS_NAME:$CEPHMOUNT_SUBVOLUME_PATH (1 GiB quota) is mounted at ./mnt:
$(df -h mnt | tail -1)

Try:
  cat mnt/hello.txt; ls -l mnt; df -h mnt
  $CM list
  ceph-fuse -c $CEPH_CONF --id $CEPHMOUNT_CLIENT_ID -k $CEPHMOUNT_KEYRING -r $CEPHMOUNT_SUBVOLUME_PATH /some/dir
      (a second client of the same subvolume, to compare)
  make stop          # unmount ./mnt and remove the dev cluster
EOT
