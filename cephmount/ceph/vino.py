"""One number for libcephfs's (inode number, snapshot id) pair.

libcephfs names an inode by its vinodeno: the inode number and a snapshot
id. The live ("head") inode has the snapshot id CEPH_NOSNAP; a directory's
`.snap` is the directory's own inode number with CEPH_SNAPDIR; a file or
directory as a snapshot kept it has the snapshot's id. So a snapshot shares
its inode number with the live inode, and numbering by inode number alone
makes `d/.snap` the same inode as `d` (the kernel refuses such a loop).

`Inode.ino`, `FileHandle.ino`, `DirHandle.ino` and `StatX.ino` therefore
carry a *number*: the inode number itself for a head inode (so head numbers
are CephFS's own, the same on every node), and for a snapshot inode the inode
number in the low 48 bits with a 16-bit tag for the snapshot id above it, as
ceph-fuse does. Every cache keyed by these numbers keeps a snapshot's data
and attributes apart from the head's. Tags:

- 0: the head;
- 1 to 0x7FFE: the snapshot id equal to the tag, the same in every process,
  so a successor server finds such an inode again by number alone;
- 0x7FFF: a `.snap` directory;
- 0x8000 to 0xFFFF: larger snapshot ids, given out by this client in the
  order it meets them. Another process does not know them: it answers ESTALE.

See docs/inode-table.md.
"""

from __future__ import annotations

import errno
import threading

from cephmount.ceph._libcephfs import CEPH_NOSNAP as NOSNAP
from cephmount.ceph._libcephfs import CEPH_SNAPDIR as SNAPDIR
from cephmount.ceph.errors import CephError

INO_BITS = 48
INO_MASK = (1 << INO_BITS) - 1
SNAPDIR_TAG = 0x7FFF
FIRST_GIVEN_TAG = 0x8000
TAG_LIMIT = 0x10000


def is_snapshot(number: int) -> bool:
    """Whether `number` names a snapshot inode or a `.snap` directory."""
    return number > INO_MASK


class VinoNumbers:
    """Numbers for vinodenos and back; thread-safe (libcephfs calls run in many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given: dict[int, int] = {}  # snapshot id -> tag, for ids past the fixed tags
        self._snaps: dict[int, int] = {}  # tag -> snapshot id

    def number(self, ino: int, snap: int) -> int:
        """The number of (ino, snap); a new tag if `snap` needs one. EOVERFLOW past ~32k."""
        tag = self._fixed_tag(snap)
        if tag is None:
            tag = self._given_tag(snap)
        return ino | tag << INO_BITS

    def known_number(self, ino: int, snap: int) -> int | None:
        """The number of (ino, snap), None if it would need a tag not yet given."""
        tag = self._fixed_tag(snap)
        if tag is None:
            tag = self._given.get(snap)
        return None if tag is None else ino | tag << INO_BITS

    def vino(self, number: int) -> tuple[int, int]:
        """(ino, snap) of a number; ESTALE for a tag this client never gave."""
        ino, tag = number & INO_MASK, number >> INO_BITS
        if tag == 0:
            return ino, NOSNAP
        if tag == SNAPDIR_TAG:
            return ino, SNAPDIR
        if tag < FIRST_GIVEN_TAG:
            return ino, tag
        snap = self._snaps.get(tag)
        if snap is None:
            raise CephError(errno.ESTALE, "vino", f"snapshot tag {tag:#x} is not this client's")
        return ino, snap

    @staticmethod
    def _fixed_tag(snap: int) -> int | None:
        if snap == NOSNAP:
            return 0
        if snap == SNAPDIR:
            return SNAPDIR_TAG
        return snap if 0 < snap < SNAPDIR_TAG else None

    def _given_tag(self, snap: int) -> int:
        with self._lock:
            tag = self._given.get(snap)
            if tag is None:
                tag = FIRST_GIVEN_TAG + len(self._given)
                if tag >= TAG_LIMIT:
                    raise CephError(errno.EOVERFLOW, "vino",
                                    "too many snapshots with large ids seen by this mount")
                self._given[snap] = tag
                self._snaps[tag] = snap
            return tag
