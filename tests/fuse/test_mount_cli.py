"""`cephmount mount`, `umount` and `list` as a user meets them, bad input included."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cephfs
import pytest

from cephmount.devcluster import ClientEnv
from tests.fuse.conftest import (
    cephmount_cli,
    client_options,
    is_mounted,
    mount_cephmount,
    unmount,
)

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]


def assert_clean_failure(result: subprocess.CompletedProcess[str], mountpoint: Path,
                         needle: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr
    assert not is_mounted(mountpoint)


def test_mount_write_list_umount(client_env: ClientEnv, tmp_path: Path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    result = cephmount_cli("mount", "-o", client_options(client_env),
                           f"{client_env.fs_name}:{client_env.subvolume_path}", str(mountpoint))
    try:
        assert result.returncode == 0, result.stderr
        (mountpoint / "from-cli").write_text("hello")
        assert (mountpoint / "from-cli").read_text() == "hello"
        listing = cephmount_cli("list")
        assert str(mountpoint) in listing.stdout
        mounts = Path("/proc/mounts").read_text()
        line = next(m for m in mounts.splitlines() if f" {mountpoint} " in m)
        assert "fuse.cephmount" in line and client_env.fs_name in line.split()[0]
        (mountpoint / "from-cli").unlink()
    finally:
        umounted = cephmount_cli("umount", str(mountpoint))
    assert umounted.returncode == 0, umounted.stderr
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize("case", ["no-mon", "wrong-key", "no-such-path", "no-such-subvolume"])
def test_impossible_mounts_fail_fast_with_one_line(case: str, client_env: ClientEnv,
                                                   tmp_path: Path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    source = f"{client_env.fs_name}:{client_env.subvolume_path}"
    options = client_options(client_env, "timeout=5")
    if case == "no-mon":
        conf = tmp_path / "nomon.conf"
        conf.write_text(client_env.conf.read_text().replace(
            "mon_host =", "mon_host = [v2:127.0.0.1:1,v1:127.0.0.1:2] #"))
        options = options.replace(str(client_env.conf), str(conf))
    elif case == "wrong-key":
        keyring = tmp_path / "wrong.keyring"
        keyring.write_text(f"[client.{client_env.client_id}]\n\tkey = "
                           "AQBGxQBlAAAAABAAkq9Bc6vKq1ic2Zrd3Bx6hw==\n")
        keyring.chmod(0o600)
        options = options.replace(str(client_env.keyring), str(keyring))
    elif case == "no-such-path":
        source += "/not/there"
    else:
        source = f"{client_env.fs_name}:csi/no-such-subvolume"
        options = (f"conf={client_env.conf},id=admin,keyring={client_env.admin_keyring},"
                   "timeout=5")

    started = time.monotonic()
    result = cephmount_cli("mount", "-o", options, source, str(mountpoint))

    assert time.monotonic() - started < 30
    assert_clean_failure(result, mountpoint, "cannot")


def test_missing_and_busy_mountpoints_are_refused(client_env: ClientEnv,
                                                  cephmount_mount: Path,
                                                  tmp_path: Path) -> None:
    source = f"{client_env.fs_name}:{client_env.subvolume_path}"
    missing = cephmount_cli("mount", "-o", client_options(client_env), source,
                            str(tmp_path / "absent"))
    busy = cephmount_cli("mount", "-o", client_options(client_env), source,
                         str(cephmount_mount))

    assert_clean_failure(missing, tmp_path / "absent", "does not exist")
    assert busy.returncode != 0 and "busy" in busy.stderr and "Traceback" not in busy.stderr


def test_secret_on_the_command_line_is_refused(client_env: ClientEnv, tmp_path: Path) -> None:
    result = cephmount_cli("mount", "-o", "secret=AQBGxQBl", f"{client_env.fs_name}:/",
                           str(tmp_path))
    assert_clean_failure(result, tmp_path, "keyring")


def test_subvolume_source_resolved_through_the_mgr(client_env: ClientEnv,
                                                   tmp_path: Path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    options = f"conf={client_env.conf},id=admin,keyring={client_env.admin_keyring}"
    result = cephmount_cli("mount", "-o", options,
                           f"{client_env.fs_name}:{client_env.group}/{client_env.subvolume}",
                           str(mountpoint))
    try:
        assert result.returncode == 0, result.stderr
        assert os.statvfs(mountpoint).f_blocks > 0
    finally:
        unmount(mountpoint)


def test_read_only_mount_refuses_writes(client_env: ClientEnv, cephmount_mount: Path,
                                        tmp_path: Path) -> None:
    (cephmount_mount / "ro-check").write_text("present")
    mountpoint = tmp_path / "ro"
    mountpoint.mkdir()
    mount_cephmount(client_env, mountpoint, "ro")
    try:
        assert (mountpoint / "ro-check").read_text() == "present"
        with pytest.raises(OSError) as refused:
            (mountpoint / "new").write_text("x")
        assert refused.value.errno == errno.EROFS
        assert " ro," in next(line for line in Path("/proc/mounts").read_text().splitlines()
                              if f" {mountpoint} " in line)
    finally:
        unmount(mountpoint)
        (cephmount_mount / "ro-check").unlink()


@pytest.mark.parametrize("how", ["umount", "sigterm"])
def test_closed_data_outlives_the_mount(how: str, client_env: ClientEnv, tmp_path: Path) -> None:
    """close() waits for no writeback: unmounting, however it comes, writes it back."""
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    mount_cephmount(client_env, mountpoint)
    name = f"unsynced-{how}-{os.getpid()}"
    payload = os.urandom(24 << 20)
    try:
        (mountpoint / name).write_bytes(payload)  # closed, never fsynced
        if how == "umount":
            assert cephmount_cli("umount", str(mountpoint)).returncode == 0
        else:
            listing = json.loads(cephmount_cli("list", "--json").stdout)
            os.kill(next(m["pid"] for m in listing if m["mountpoint"] == str(mountpoint)),
                    signal.SIGTERM)
        deadline = time.monotonic() + 60
        while is_mounted(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_mounted(mountpoint)
        fs = cephfs.LibCephFS(conffile=str(client_env.conf), auth_id=client_env.client_id,
                              conf={"keyring": str(client_env.keyring)})
        fs.mount(filesystem_name=client_env.fs_name.encode(),
                 mount_root=client_env.subvolume_path.encode())
        try:
            fd = fs.open(f"/{name}".encode(), os.O_RDONLY)
            assert fs.read(fd, 0, len(payload) + 1) == payload
            fs.close(fd)
            fs.unlink(f"/{name}".encode())
        finally:
            fs.unmount()
            fs.shutdown()
    finally:
        unmount(mountpoint)
