#!/usr/bin/env bash
# Install everything cephmount needs on Debian 12, as root: Debian's Ceph and FUSE
# packages, a venv from /usr/bin/python3 (the interpreter Debian's `cephfs` and
# `rados` modules are built for) and cephmount itself. Fast when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common ceph-fuse python3-cephfs
          python3-rados libcephfs-dev fuse3 libfuse3-dev pkg-config fio attr python3-venv
          gcc python3-dev git rsync sqlite3)
VENV=${VENV:-.venv}

if [ "$(id -u)" != 0 ]; then
    echo "install: run as root (it installs Debian packages)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "install: Debian packages: ${missing[*]}"
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "install: apt-get failed" >&2
        exit 1
    fi
    rm -f "$log"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "install: venv $VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi

# Reinstall only when the project's metadata changed since the last install.
stamp="$VENV/.cephmount-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "install: cephmount and its Python dependencies into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test,bench,kube]' 2>&1 \
        | grep -v -e BuildBackendWarning -e '^ ' || true
    echo "$want" > "$stamp"
fi
