"""A long-lived mount stays flat: files come and go, its bookkeeping and memory do not grow.

A CI-sized run of tests/soak/churn.py; `python -m tests.soak.long_run` is the long one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cephmount.devcluster import ClientEnv
from tests.fuse.conftest import cephmount_at, cephmount_cli, scratch_dir
from tests.soak.churn import churn, rss_bytes, stats

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

WARM_UP_FILES = 2000
FILES = 6000
# Per-inode counters may lag by what the kernel has not forgotten yet.
SLACK_INODES = 64
# What the process may grow by after its warm-up: allocator noise, not a leak.
SLACK_RSS = 16 << 20
PER_INODE = ("inodes", "tracked_inodes", "generations", "append_locks", "block_sizes",
             "listing_records")


@pytest.fixture
def soak_mount(client_env: ClientEnv, mount_root: Path) -> Iterator[Path]:
    with cephmount_at(client_env, mount_root / "soak") as mountpoint:
        yield mountpoint


def test_bookkeeping_and_memory_stay_flat_as_files_come_and_go(soak_mount: Path) -> None:
    listing = json.loads(cephmount_cli("list", "--json").stdout)
    pid = next(m["pid"] for m in listing if m["mountpoint"] == str(soak_mount))
    with scratch_dir(soak_mount, "soak") as directory:
        churn(directory, WARM_UP_FILES)
        before, rss_before = stats(soak_mount), rss_bytes(pid)
        churn(directory, FILES)
        after, rss_after = stats(soak_mount), rss_bytes(pid)

    grown = {name: after[name] - before[name] for name in PER_INODE}
    assert all(growth <= SLACK_INODES for growth in grown.values()), grown
    # The heaps' free pages went back to the system as inodes were forgotten.
    assert after["memory_releases"] > before["memory_releases"], (before, after)
    assert rss_after - rss_before <= SLACK_RSS, (rss_before, rss_after)
