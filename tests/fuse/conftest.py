"""Real FUSE mounts of the dev cluster's subvolume: cephmount's and ceph-fuse's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cephmount.devcluster import ClientEnv
from cephmount.host import mountinfo
from tests.conftest import short_tmpdir


def cephmount_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cephmount.cli", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def client_options(env: ClientEnv, extra: str = "") -> str:
    options = f"conf={env.conf},id={env.client_id},keyring={env.keyring}"
    return f"{options},{extra}" if extra else options


def is_mounted(path: Path) -> bool:
    return mountinfo.is_mountpoint(path)


def mount_cephmount(env: ClientEnv, mountpoint: Path, extra: str = "") -> None:
    result = cephmount_cli("mount", "-o", client_options(env, extra),
                           f"{env.fs_name}:{env.subvolume_path}", str(mountpoint))
    assert result.returncode == 0, result.stderr
    assert is_mounted(mountpoint)


def unmount(mountpoint: Path) -> None:
    """Unmount and wait until the mount is gone, whoever serves it."""
    if is_mounted(mountpoint):
        subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True,
                       timeout=60, check=False)
    deadline = time.monotonic() + 30
    while is_mounted(mountpoint) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_mounted(mountpoint):
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], timeout=60, check=False)


def mount_ceph_fuse(env: ClientEnv, mountpoint: Path) -> None:
    result = subprocess.run(
        ["ceph-fuse", "-c", str(env.conf), "--id", env.client_id, "-k", str(env.keyring),
         "-r", env.subvolume_path, str(mountpoint)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert is_mounted(mountpoint)


@pytest.fixture(scope="session")
def mount_root() -> Iterator[Path]:
    """Where the session's mountpoints live: a dir every user may traverse, since
    tests run programs as other users on the mounts (pytest's tmp dirs are 0700)."""
    root = short_tmpdir("cm-mounts.")
    root.chmod(0o755)
    try:
        yield root
    finally:
        for child in root.iterdir():
            child.rmdir()
        root.rmdir()


@contextlib.contextmanager
def cephmount_at(env: ClientEnv, mountpoint: Path, extra: str = "") -> Iterator[Path]:
    """The subvolume mounted by cephmount at `mountpoint`, unmounted afterwards."""
    mountpoint.mkdir(exist_ok=True)
    mount_cephmount(env, mountpoint, extra)
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


@pytest.fixture(scope="session")
def cephmount_mount(client_env: ClientEnv, mount_root: Path) -> Iterator[Path]:
    """The subvolume mounted by cephmount (default coherence), for the whole session."""
    with cephmount_at(client_env, mount_root / "cephmount") as mountpoint:
        yield mountpoint


@pytest.fixture(scope="session")
def strict_mount(client_env: ClientEnv, mount_root: Path) -> Iterator[Path]:
    """The subvolume mounted by cephmount in strict mode, for the whole session."""
    mountpoint = mount_root / "cephmount-strict"
    mountpoint.mkdir()
    mount_cephmount(client_env, mountpoint, "coherence=strict")
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


@pytest.fixture(scope="session")
def ceph_fuse_mount(client_env: ClientEnv, mount_root: Path) -> Iterator[Path]:
    """The same subvolume mounted by ceph-fuse: the reference behaviour."""
    mountpoint = mount_root / "ceph-fuse"
    mountpoint.mkdir()
    mount_ceph_fuse(client_env, mountpoint)
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


@contextlib.contextmanager
def scratch_dir(root: Path, prefix: str) -> Iterator[Path]:
    """A fresh directory under `root`, removed afterwards."""
    path = root / f"{prefix}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], timeout=120, check=False)


@pytest.fixture
def workdir(cephmount_mount: Path) -> Iterator[Path]:
    """A fresh directory on the cephmount mount, removed after the test."""
    with scratch_dir(cephmount_mount, "t") as path:
        yield path


@pytest.fixture
def reference_workdir(ceph_fuse_mount: Path) -> Iterator[Path]:
    """A fresh directory on the ceph-fuse mount, removed after the test."""
    with scratch_dir(ceph_fuse_mount, "r") as path:
        yield path


def as_user(uid: int, gid: int) -> dict[str, object]:
    """subprocess.run keywords that run the child as another user with no extra groups."""
    return {"user": uid, "group": gid, "extra_groups": [], "env": {"PATH": os.environ["PATH"]}}
