"""A node-wide memory budget shared among the workers' caches.

Each worker costs about `WORKER_BASE` beyond its data cache (Python, libcephfs
with its own object cache, buffers: docs/daemon.md has the measurement). The
budget left after those is split evenly among the volumes, never above what a
volume asked for, never below `MIN_CACHE`; a mount that would push the shares
below that is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

WORKER_BASE = 160 << 20
MIN_CACHE = 16 << 20


class BudgetExceeded(Exception):
    pass


@dataclass(frozen=True)
class MemoryBudget:
    total: int | None  # None: no budget, each volume gets what it asks for

    def shares(self, wanted: dict[str, int]) -> dict[str, int]:
        """The cache bytes of each volume (by mount id) for the volumes given."""
        if self.total is None or not wanted:
            return dict(wanted)
        each = (self.total - WORKER_BASE * len(wanted)) // len(wanted)
        if each < MIN_CACHE:
            raise BudgetExceeded(
                f"the memory budget ({self.total >> 20} MiB) does not fit {len(wanted)} "
                f"volumes: each needs {(WORKER_BASE + MIN_CACHE) >> 20} MiB at least")
        return {mount_id: min(want, each) for mount_id, want in wanted.items()}
