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

# pyfuse3, patched for lock and fallocate handlers, listings and native read and write
# handlers (patches/pyfuse3/README.md), before
# cephmount: its requirement (pyfuse3==3.5.0) is then met and pip keeps this build.
# The local version label names the patches, so a changed patch is rebuilt.
PATCHES=patches/pyfuse3
label=$(cat "$PATCHES"/*.patch "$PATCHES"/build-constraints.txt | sha256sum | cut -c1-12)
pyfuse3_version="3.5.0+cephmount.$label"
has_patched_pyfuse3() {
    "$VENV/bin/python" - "$pyfuse3_version" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version

import pyfuse3

handlers = ("getlk", "setlk", "flock", "fallocate", "enable_posix_locks",
            "enable_readdirplus_auto")
sys.exit(version("pyfuse3") != sys.argv[1]
         or not all(hasattr(pyfuse3.Operations, name) for name in handlers)
         or not hasattr(pyfuse3, "set_native_handler"))
PY
}
if ! has_patched_pyfuse3; then
    echo "install: pyfuse3 $pyfuse3_version (patched, built from source)"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    PIP=("$VENV/bin/pip" --disable-pip-version-check -q)
    # Only pyfuse3 from source: its build dependencies come as wheels, pinned.
    BUILD_PIP=(env PIP_CONSTRAINT="$PWD/$PATCHES/build-constraints.txt" "${PIP[@]}")
    "${BUILD_PIP[@]}" download --no-deps --no-binary pyfuse3 -d "$build" \
        -r "$PATCHES/requirements.txt"
    tar -xzf "$build"/pyfuse3-3.5.0.tar.gz -C "$build"
    src="$build/pyfuse3-3.5.0"
    for patch in "$PATCHES"/*.patch; do
        git -C "$src" apply "$PWD/$patch"
    done
    # The sdist's C file was generated from the unpatched sources: never build from it.
    rm "$src/src/pyfuse3/__init__.c"
    SETUPTOOLS_SCM_PRETEND_VERSION="$pyfuse3_version" \
        "${BUILD_PIP[@]}" wheel --no-deps -w "$build/dist" "$src"
    wheel=$(echo "$build"/dist/pyfuse3-*.whl)
    "${PIP[@]}" install --no-deps --force-reinstall "$wheel"
    "${PIP[@]}" install "$wheel"  # its dependencies (trio)
    if ! has_patched_pyfuse3; then
        echo "install: the pyfuse3 built from $PATCHES lacks its lock handlers" >&2
        exit 1
    fi
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

# The C functions of the native handlers (cephmount/ceph/native_build.py), with the
# cffi just installed.
native=cephmount/ceph/native_build.py
if [ -z "$(find cephmount/ceph -name '_native_io.*.so' -newer "$native")" ]; then
    echo "install: cephmount's native handler functions"
    "$VENV/bin/python" "$native"
fi
