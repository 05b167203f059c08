"""Fixtures shared by every test layer.

`dev_cluster` gives the session a running dev cluster. When
CEPHMOUNT_TEST_CLUSTER_DIR names a cluster that is up (as `make test` does, or a
developer iterating with `cephmount dev-cluster up --dir ...`), it is reused and
left running; otherwise the session starts its own and removes it at the end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cephmount.ceph.client import CephClient
from cephmount.devcluster import ClientEnv, DevCluster

# Standalone mounts in tests never go through a node daemon this host may run;
# tests of the daemon name their own daemon's socket.
os.environ["CEPHMOUNT_SOCKET"] = "/nonexistent/cephmount-tests.sock"


def free_port_pair(start: int = 3400, stop: int = 3600) -> int:
    """A port P such that P and P+1 are free on 127.0.0.1 (mon v2 and v1)."""
    for port in range(start, stop, 2):
        try:
            for candidate in (port, port + 1):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port pair in {start}-{stop}")


def short_tmpdir(prefix: str) -> Path:
    """A new dir in the run's own dir (CEPHMOUNT_TEST_TMP, as `make test` sets it, so
    that what a run leaves is found there) or else in /tmp: pytest's tmp paths are too
    long for admin sockets."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("CEPHMOUNT_TEST_TMP", "/tmp")))


def mounted_client(env: ClientEnv, admin_socket: str | None = None) -> CephClient:
    """Our own libcephfs client, mounted at the dev cluster's subvolume as its client."""
    client = CephClient(str(env.conf), env.client_id, str(env.keyring), admin_socket=admin_socket)
    try:
        client.mount(env.subvolume_path, timeout_s=20)
    except BaseException:
        client.close()
        raise
    return client


def ceph_cli(env: ClientEnv, *args: str) -> str:
    result = subprocess.run(["ceph", "-c", str(env.conf), "--connect-timeout", "20", *args],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def evict_client_of(env: ClientEnv, pid: int) -> None:
    """Have the MDS evict (and blocklist) the Ceph client of process `pid`."""
    sessions = json.loads(ceph_cli(env, "tell", "mds.0", "session", "ls"))
    (session,) = [s["id"] for s in sessions if s["client_metadata"].get("pid") == str(pid)]
    ceph_cli(env, "tell", "mds.0", "client", "evict", f"id={session}")


def seconds_to_write_as_another_client(env: ClientEnv, name: bytes) -> float:
    """How long another client takes to open `name` (in the subvolume's root), write and
    fsync it: about a minute while a dead client's session still holds its caps."""
    from cephmount.ceph.structs import ROOT

    started = time.monotonic()
    with mounted_client(env) as other:
        root = other.root()
        inode, _ = other.lookup(root, name, ROOT)
        fh = other.open(inode, os.O_WRONLY, ROOT)
        other.write(fh, 0, b"y")
        other.fsync(fh)
        other.release(fh)
        other.put(inode)
        other.put(root)
    return time.monotonic() - started


@pytest.fixture(scope="session")
def dev_cluster() -> Iterator[DevCluster]:
    reuse = os.environ.get("CEPHMOUNT_TEST_CLUSTER_DIR")
    if reuse:
        cluster = DevCluster(Path(reuse))
        if not cluster.is_ready():
            pytest.fail(f"CEPHMOUNT_TEST_CLUSTER_DIR={reuse} is not a ready dev cluster")
        yield cluster
        return
    cluster = DevCluster(short_tmpdir("cmt."), free_port_pair())
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def client_env(dev_cluster: DevCluster) -> ClientEnv:
    return dev_cluster.client_env()
