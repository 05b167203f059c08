"""The stats xattr answers getfattr's two asks alike (no cluster)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pyfuse3
import pytest

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.structs import Inode
from cephmount.fs import operations
from cephmount.fs.operations import STATS_XATTR, CephOperations


class FakeCeph:
    """What the stats read of AsyncCephClient."""

    def __init__(self) -> None:
        self.sync = self

    def waiting_lookups(self) -> int:
        return 0


def caller(pid: int) -> Any:
    return SimpleNamespace(pid=pid, uid=0, gid=0, umask=0o022)


async def ask(ops: CephOperations, pid: int) -> bytes:
    return await ops.getxattr(pyfuse3.ROOT_INODE, STATS_XATTR, caller(pid))


async def test_a_callers_size_ask_and_value_ask_get_the_same_stats() -> None:
    """getfattr sizes its buffer from the first ask; the first ask itself is counted."""
    ops = CephOperations(cast(AsyncCephClient, FakeCeph()), Inode(7, None))
    sized = await ask(ops, 100)
    assert await ask(ops, 100) == sized
    fresh = json.loads(await ask(ops, 100))  # a third ask: the stats as they are now
    assert fresh["op_stats"]["ops"]["getxattr"]["count"] == 2  # counted as they end


async def test_other_callers_and_late_asks_get_fresh_stats(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ops = CephOperations(cast(AsyncCephClient, FakeCeph()), Inode(7, None))
    first = json.loads(await ask(ops, 100))
    other = json.loads(await ask(ops, 200))
    assert "getxattr" not in first["op_stats"]["ops"]
    assert other["op_stats"]["ops"]["getxattr"]["count"] == 1
    monkeypatch.setattr(operations, "STATS_KEPT_S", 0.0)
    await ask(ops, 300)
    late = json.loads(await ask(ops, 300))
    assert late["op_stats"]["ops"]["getxattr"]["count"] == 3
