"""Attributes read before a change this node made never replace the newer ones cached
(no cluster)."""

from __future__ import annotations

import errno
from types import SimpleNamespace
from typing import Any, cast

import pyfuse3

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.structs import Inode, StatX
from cephmount.fs.operations import CephOperations
from tests.unit.test_bookkeeping import STAT

CALLER = SimpleNamespace(uid=0, gid=0, pid=0)


class FakeCeph:
    """Lookups answered from a list of attributes, oldest last."""

    def __init__(self, answers: list[StatX]) -> None:
        self.sync = self
        self._answers = answers

    def native_dir(self, inode: Inode, fuse_ino: int, *timeouts: Any) -> Any:
        raise OSError(errno.ENOSYS, "no native lookups here")

    def native_inode(self, inode: Inode, fuse_ino: int, ttl: float) -> Any:
        raise OSError(errno.ENOSYS, "no native attributes here")

    def take_lookup(self, parent: int, name: bytes, pid: int) -> None:
        return None

    def put(self, inode: Inode) -> None:
        pass

    async def lookup(self, parent: Inode, name: bytes, cred: Any) -> tuple[Inode, StatX]:
        stx = self._answers.pop(0)
        return Inode(stx.ino, None), stx


async def test_a_lookup_answer_read_before_a_newer_one_does_not_step_back() -> None:
    """A lookup's answer can wait for the trio thread while a write of this node's
    refreshes the file's attributes: the entry and the cache keep the newer size."""
    newer, older = STAT._replace(version=5, size=100), STAT._replace(version=4, size=10)
    ops = CephOperations(cast(AsyncCephClient, FakeCeph([newer, older])), Inode(1, None))
    first = await ops.lookup(pyfuse3.ROOT_INODE, b"a", CALLER)  # type: ignore[arg-type]
    second = await ops.lookup(pyfuse3.ROOT_INODE, b"b", CALLER)  # type: ignore[arg-type]
    assert first.st_size == second.st_size == 100
    cached = ops._attrs.get(STAT.ino)
    assert cached is not None and cached.size == 100
