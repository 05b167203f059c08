"""The run's files on the subvolume, laid out by a client that is none of the targets.

Each operation starts a fresh direct libcephfs client, does its work, fsyncs and
unmounts before any target mounts: the files a target then reads were written
by another client and are in none of its caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.cluster import Cluster
from bench.direct_client import DirectClient
from bench.workloads import BENCH_DIR, BIG_DIR, Prepare, Sizes

ROOT = f"/{BENCH_DIR}"
REQUEST_TIMEOUT = 600.0  # seconds; making the large directory is the longest request


class QuotaError(Exception):
    """The run would not fit in the subvolume's quota."""


class Layout:
    def __init__(self, cluster: Cluster, sizes: Sizes, logs: Path) -> None:
        self.cluster = cluster
        self.sizes = sizes
        self.log = logs / "layout.log"
        self.prepared: set[Prepare] = set()
        self.libcephfs = "unknown"

    def _requests(self, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        client = DirectClient(self.cluster, self.log)
        try:
            self.libcephfs = client.wait_ready().get("libcephfs", self.libcephfs)
            return [client.request(timeout=REQUEST_TIMEOUT, **request) for request in requests]
        finally:
            client.close()

    def reset(self, max_clients: int) -> int | None:
        """Remove what an earlier run left, make the run's dir; check the quota."""
        replies = self._requests({"op": "rmtree", "path": ROOT}, {"op": "quota", "path": "/"},
                                 {"op": "mkdirs", "path": ROOT})
        self.prepared.clear()
        quota: int | None = replies[1]["quota"]
        need = self.sizes.footprint(max_clients)
        if quota is not None and need > 0.95 * quota:
            raise QuotaError(
                f"the run needs {need >> 20} MiB on the subvolume at its fullest, its quota is "
                f"{quota >> 20} MiB: lower --seq-size/--rand-size or the largest N")
        return quota

    def prepare(self, what: Prepare | None, max_clients: int) -> None:
        """Lay out what a workload needs: once per run, or before every cell."""
        if what is None or (what in self.prepared and not what.every_cell):
            return
        if what is Prepare.SEQ_FILES:
            requests = [{"op": "fill", "path": f"{ROOT}/seq.{client}",
                         "size": self.sizes.seq_size} for client in range(max_clients)]
        elif what is Prepare.SHARED_FILE:
            requests = [{"op": "fill", "path": f"{ROOT}/shared.dat",
                         "size": self.sizes.rand_size}]
        elif what is Prepare.BIG_DIR:
            requests = [{"op": "rmtree", "path": f"{ROOT}/{BIG_DIR}"},
                        {"op": "mkfiles", "path": f"{ROOT}/{BIG_DIR}",
                         "count": self.sizes.dir_entries}]
        else:
            requests = [{"op": "rmtree", "path": f"{ROOT}/meta"},
                        {"op": "mkdirs", "path": f"{ROOT}/meta"}]
        self._requests(*requests)
        self.prepared.add(what)

    def removed(self, what: Prepare | None) -> None:
        """`what` is gone (a workload's steps removed it): lay it out again when needed."""
        if what is not None:
            self.prepared.discard(what)

    def remove(self) -> None:
        self._requests({"op": "rmtree", "path": ROOT})
