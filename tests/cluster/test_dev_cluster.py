"""The dev cluster itself: idempotent up, a confined client, a clean down.

These tests run their own cluster (own dir and port), since they take it down.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cephfs
import pytest

from cephmount.devcluster import DAEMONS, DevCluster
from tests.conftest import free_port_pair, short_tmpdir

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[DevCluster]:
    cluster = DevCluster(short_tmpdir("cmdc."), free_port_pair(3600, 3700))
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cephmount.cli", *args],
                          capture_output=True, text=True, timeout=180, check=False)


def _mount_as_client(cluster: DevCluster, root: str) -> cephfs.LibCephFS:
    env = cluster.client_env()
    fs = cephfs.LibCephFS(conffile=str(env.conf), auth_id=env.client_id,
                          conf={"keyring": str(env.keyring), "client_mount_timeout": "10"})
    fs.mount(filesystem_name=env.fs_name.encode(), mount_root=root.encode())
    return fs


def test_up_is_ready_and_second_up_is_a_noop(own_cluster: DevCluster) -> None:
    assert own_cluster.is_ready()
    pids = own_cluster.running_daemons()
    assert set(pids) == {name for name, _, _ in DAEMONS}

    result = _cli("dev-cluster", "up", "--dir", str(own_cluster.dir),
                  "--port", str(own_cluster.port))

    assert result.returncode == 0, result.stderr
    assert "already up" in result.stdout
    assert own_cluster.running_daemons() == pids


def test_status_and_env_report_the_subvolume(own_cluster: DevCluster) -> None:
    status = _cli("dev-cluster", "status", "--dir", str(own_cluster.dir))
    env = _cli("dev-cluster", "env", "--dir", str(own_cluster.dir))

    assert status.returncode == 0 and '"state": "ready"' in status.stdout
    values = dict(line.split("=", 1) for line in env.stdout.splitlines())
    assert values["CEPH_CONF"] == str(own_cluster.conf)
    assert values["CEPHMOUNT_SUBVOLUME_PATH"].startswith("/volumes/csi/vol1/")
    assert Path(values["CEPHMOUNT_KEYRING"]).stat().st_mode & 0o077 == 0


def test_restricted_client_writes_in_its_subvolume_only(own_cluster: DevCluster) -> None:
    env = own_cluster.client_env()
    fs = _mount_as_client(own_cluster, env.subvolume_path)
    try:
        fd = fs.open(b"/hello", os.O_CREAT | os.O_WRONLY, 0o644)
        fs.write(fd, b"written by the confined client", 0)
        fs.close(fd)
        assert fs.stat(b"/hello").st_size == len(b"written by the confined client")
    finally:
        fs.unmount()
        fs.shutdown()

    with pytest.raises(cephfs.Error) as refused:
        _mount_as_client(own_cluster, "/volumes/csi")
    assert refused.value.errno in (errno.EACCES, errno.EPERM)


def test_down_leaves_no_process_and_no_dir(tmp_path: Path) -> None:
    cluster = DevCluster(short_tmpdir("cmdd."), free_port_pair(3700, 3800))
    cluster.up()
    pids = list(cluster.running_daemons().values())
    assert len(pids) == len(DAEMONS)

    result = _cli("dev-cluster", "down", "--dir", str(cluster.dir))

    assert result.returncode == 0, result.stderr
    assert not cluster.dir.exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(
            f"/proc/{pid}/cmdline").read_bytes(), f"daemon {pid} still runs"


def test_env_without_cluster_is_one_clear_line() -> None:
    result = _cli("dev-cluster", "env", "--dir", "/tmp/no-such-cephmount-cluster")

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "dev-cluster up" in result.stderr and "Traceback" not in result.stderr


def test_up_on_a_port_in_use_says_so(own_cluster: DevCluster) -> None:
    result = _cli("dev-cluster", "up", "--dir", str(short_tmpdir("cmdp.")),
                  "--port", str(own_cluster.port))

    assert result.returncode == 1
    assert f"port {own_cluster.port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr
