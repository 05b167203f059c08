"""Which cluster the bench runs on, and how it makes caches cold.

By default the dev cluster (`cephmount dev-cluster`'s default dir and port),
started when absent and stopped again at the end when the bench started it.
Any other cluster is given by conf, keyring, client id and subvolume path.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cephmount.devcluster import DevCluster


@dataclass(frozen=True)
class Cluster:
    """What every target needs to mount the subvolume as the same client key."""

    conf: Path
    keyring: Path
    client_id: str
    fs_name: str
    subvolume_path: str
    # Only used to drop the OSDs' caches before cold reads (`ceph tell osd.* cache drop`).
    admin_keyring: Path | None = None
    dev_cluster_dir: Path | None = None

    def describe(self) -> dict[str, str | None]:
        """For results.json: where, never a key."""
        return {"conf": str(self.conf), "client_id": self.client_id, "fs_name": self.fs_name,
                "subvolume_path": self.subvolume_path,
                "dev_cluster_dir": str(self.dev_cluster_dir) if self.dev_cluster_dir else None}


@contextmanager
def dev_cluster(data_dir: Path | None, port: int, keep: bool,
                log: Callable[[str], None]) -> Iterator[Cluster]:
    """The dev cluster, brought up if absent; taken down after if we brought it up."""
    cluster = DevCluster(data_dir, port)
    started = cluster.up()
    log(f"dev cluster {'started' if started else 'already up'} in {cluster.dir}")
    env = cluster.client_env()
    try:
        yield Cluster(conf=env.conf, keyring=env.keyring, client_id=env.client_id,
                      fs_name=env.fs_name, subvolume_path=env.subvolume_path,
                      admin_keyring=env.admin_keyring, dev_cluster_dir=cluster.dir)
    finally:
        if started and not keep:
            cluster.down()
            log(f"dev cluster in {cluster.dir} stopped (it was started for this run)")


def drop_caches(cluster: Cluster) -> dict[str, bool]:
    """Write back and drop the kernel page cache, and the OSDs' caches when we can."""
    os.sync()
    kernel = True
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        kernel = False
    return {"kernel": kernel, "osd": _drop_osd_caches(cluster)}


def _drop_osd_caches(cluster: Cluster) -> bool:
    if cluster.admin_keyring is None:
        return False
    argv = ["ceph", "-c", str(cluster.conf), "-n", "client.admin", "-k",
            str(cluster.admin_keyring), "--connect-timeout", "10", "tell", "osd.*", "cache", "drop"]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
