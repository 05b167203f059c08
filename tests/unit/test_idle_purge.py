"""An idle mount does not keep what a large listing left in its caches (no cluster)."""

from __future__ import annotations

from typing import cast

import pytest
import trio

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.structs import Inode
from cephmount.fs import operations
from cephmount.fs.operations import CephOperations
from tests.unit.test_bookkeeping import STAT
from tests.unit.test_listing_versions import FakeCeph


async def test_expired_entries_leave_an_idle_mounts_caches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing sets an entry on an idle mount, which is what pushed expired ones out."""
    monkeypatch.setattr(operations, "PURGE_EVERY_S", 0.05)
    ops = CephOperations(cast(AsyncCephClient, FakeCeph()), Inode(7, None))
    for number in range(100):
        ops._attrs.set(number, STAT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ops._purge_expired)
        await trio.sleep(ops._policy.cache_ttl + 0.2)
        assert len(ops._attrs) == 0
        ops.detach()  # and the purging ends with the instance's session
        await trio.sleep(0.2)
        assert not nursery.child_tasks
