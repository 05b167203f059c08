"""What the trio thread does when told of a lookup, an unlink or a getattr answered
in C (no cluster)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pyfuse3

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.structs import Inode, StatX
from cephmount.fs.operations import CephOperations
from tests.unit.test_attribute_order import FakeCeph
from tests.unit.test_bookkeeping import STAT

CALLER = SimpleNamespace(uid=0, gid=0, pid=0)
ROOT = pyfuse3.ROOT_INODE
DIRECTORY = STAT._replace(ino=1, mode=0o40755, mtime_ns=1_000)
CHANGED_DIRECTORY = DIRECTORY._replace(mtime_ns=2_000, version=DIRECTORY.version + 1)


class TellingCeph(FakeCeph):
    """libcephfs's own view when the trio thread is told: `now` (by default the
    directory's, after the unlink)."""

    def __init__(self, answers: list[StatX], now: StatX = CHANGED_DIRECTORY) -> None:
        super().__init__(answers)
        self.now = now

    def cached_getattr(self, inode: Inode) -> StatX:
        return self.now


async def mounted() -> CephOperations:
    ops = CephOperations(cast(AsyncCephClient, TellingCeph([STAT])), Inode(1, None))
    await ops.lookup(ROOT, b"doomed", CALLER)  # type: ignore[arg-type]
    ops._attrs.set(ROOT, DIRECTORY)
    return ops


async def test_the_name_and_its_files_attributes_are_forgotten() -> None:
    ops = await mounted()
    assert ops._names.get((ROOT, b"doomed")) == STAT.ino
    ops.unlinked(ROOT, b"doomed")
    assert ops._names.get((ROOT, b"doomed")) is None
    assert ops._attrs.get(STAT.ino) is None


async def test_the_directorys_attributes_are_kept_true() -> None:
    ops = await mounted()
    ops.unlinked(ROOT, b"doomed")
    kept = ops._attrs.get(ROOT)
    assert kept is not None and kept.mtime_ns == CHANGED_DIRECTORY.mtime_ns


async def test_a_directory_the_table_does_not_hold_loses_its_cached_attributes() -> None:
    ops = await mounted()
    stranger: Any = 4242
    ops._attrs.set(stranger, DIRECTORY._replace(ino=stranger))
    ops.unlinked(stranger, b"doomed")
    assert ops._attrs.get(stranger) is None


class FindingCeph(TellingCeph):
    """A lookup handler in C found `STAT` for the caller: its entry waits to be taken."""

    def __init__(self) -> None:
        super().__init__([])
        self.waiting = {(ROOT, b"found", 1234): (Inode(STAT.ino, None), STAT)}

    def take_lookup(self, parent: int, name: bytes, pid: int) -> Any:
        return self.waiting.pop((parent, name, pid), None)


async def test_a_lookup_answered_in_c_is_counted_and_cached() -> None:
    ceph = FindingCeph()
    ops = CephOperations(cast(AsyncCephClient, ceph), Inode(1, None))
    ops.looked_up(ROOT, b"found", 1234)
    assert not ceph.waiting
    assert ops._names.get((ROOT, b"found")) == STAT.ino
    cached = ops._attrs.get(STAT.ino)
    assert cached is not None and cached.size == STAT.size
    assert ops._inodes.forget(STAT.ino, 1) is not None  # one lookup counted


APPENDED = STAT._replace(size=STAT.size + 100, mtime_ns=STAT.mtime_ns + 1,
                         version=STAT.version + 1)


async def cached_file(now: StatX) -> CephOperations:
    """A file whose attributes the change checks saw as `STAT`, a block of it cached."""
    ops = CephOperations(cast(AsyncCephClient, TellingCeph([STAT], now)), Inode(1, None))
    await ops.lookup(ROOT, b"log", CALLER)  # type: ignore[arg-type]
    assert ops.blocks.put(STAT.ino, 0, b"old", ops.blocks.generation(STAT.ino))
    return ops


async def test_attributes_sent_that_moved_drop_the_files_blocks() -> None:
    ops = await cached_file(APPENDED)
    ops.attributes_sent(STAT.ino)
    assert not ops.blocks.contains(STAT.ino, 0)


async def test_attributes_sent_unchanged_keep_the_files_blocks() -> None:
    ops = await cached_file(STAT)
    ops.attributes_sent(STAT.ino)
    assert ops.blocks.contains(STAT.ino, 0)
