"""The inode table: FUSE inode numbers, kernel lookup counts and libcephfs references.

Inode numbers are CephFS's own, so they are the same on every node and across
remounts; only the mount's root is renumbered to FUSE's root inode. Each entry
holds exactly one libcephfs reference, whatever the kernel's lookup count:
a lookup of a known inode hands its surplus reference back to be put, and the
entry's reference is put when the kernel forgets the last lookup.
See docs/inode-table.md.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import pyfuse3


class HasIno(Protocol):
    @property
    def ino(self) -> int: ...


HandleT = TypeVar("HandleT", bound=HasIno)


@dataclass
class _Entry(Generic[HandleT]):
    handle: HandleT
    lookups: int


class InodeTable(Generic[HandleT]):
    def __init__(self, root: HandleT) -> None:
        self._root_ino = root.ino
        self._entries: dict[int, _Entry[HandleT]] = {
            pyfuse3.ROOT_INODE: _Entry(root, 1)}

    @property
    def root(self) -> HandleT:
        return self._entries[pyfuse3.ROOT_INODE].handle

    def to_fuse(self, ceph_ino: int) -> int:
        return pyfuse3.ROOT_INODE if ceph_ino == self._root_ino else ceph_ino

    def to_fuse_all(self, ceph_inos: Iterable[int]) -> set[int]:
        """`to_fuse` of each, as a set: a listing's numbers at once."""
        numbers = set(ceph_inos)
        if self._root_ino in numbers:
            numbers.discard(self._root_ino)
            numbers.add(pyfuse3.ROOT_INODE)
        return numbers

    def handle(self, fuse_ino: int) -> HandleT:
        """The handle of an inode in the table; ESTALE for one it does not hold."""
        entry = self._entries.get(fuse_ino)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ESTALE)
        return entry.handle

    def add_lookup(self, handle: HandleT) -> tuple[int, HandleT | None]:
        """Count one kernel lookup of `handle`; return its FUSE number and a surplus to put."""
        fuse_ino = self.to_fuse(handle.ino)
        entry = self._entries.get(fuse_ino)
        if entry is None:
            self._entries[fuse_ino] = _Entry(handle, 1)
            return fuse_ino, None
        entry.lookups += 1
        return fuse_ino, handle

    def adopt(self, handle: HandleT) -> tuple[HandleT, HandleT | None]:
        """The entry's handle for an inode the kernel asked about but the table lacks.

        The kernel only asks about inodes it holds lookups of, so the table lost
        count of them: keep `handle` with no lookups counted (the kernel's next
        forget removes the entry). Returns the handle to use and a surplus to put.
        """
        fuse_ino = self.to_fuse(handle.ino)
        entry = self._entries.get(fuse_ino)
        if entry is None:
            self._entries[fuse_ino] = _Entry(handle, 0)
            return handle, None
        return entry.handle, handle

    def count_lookup(self, fuse_ino: int) -> None:
        """Count one more kernel lookup of a known inode (a new hard link's entry)."""
        entry = self._entries.get(fuse_ino)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ESTALE)
        entry.lookups += 1

    def forget(self, fuse_ino: int, count: int) -> HandleT | None:
        """Drop `count` lookups; return the handle to put when none are left."""
        entry = self._entries.get(fuse_ino)
        if entry is None or fuse_ino == pyfuse3.ROOT_INODE:
            return None
        entry.lookups -= count
        if entry.lookups > 0:
            return None
        del self._entries[fuse_ino]
        return entry.handle

    def drain(self) -> list[HandleT]:
        """Remove every entry (at unmount) and return the handles to put."""
        handles = [entry.handle for entry in self._entries.values()]
        self._entries.clear()
        return handles

    def __len__(self) -> int:
        return len(self._entries)
