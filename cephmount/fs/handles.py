"""File handle numbers (`fh`) and what each stands for, kept where a successor finds them.

The kernel names an open file or directory by the `fh` its server gave at
open. When a server dies and another takes over the same FUSE connection,
the kernel goes on sending the old numbers; the successor reads this table,
which the dead server kept in a shared file mapping (memory writes only, no
system call per open), and opens each handle again by inode number when it
is first used.

Each record is 16 bytes: the Ceph inode number, the open flags, the kind (0
for a free slot) and whether data was written through the handle since its
last fsync. `fh` is the slot's index plus one; the kind is written last so
that a record is never seen half made.

The written-since-fsync mark tells a successor which handles may have lost
data: what a dead server had acknowledged but libcephfs had not yet written
back died with it. It is set before the first such write is answered: in the
mapping, or by a native writer with `pwrite` on the table's file
(`unsynced_mark`). The successor reports that on the handle's next fsync or
close, as the kernel reports a writeback error, instead of letting it pass.
"""

from __future__ import annotations

import enum
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

RECORD = struct.Struct("<QIBB2x")
KIND_AT, UNSYNCED_AT = 12, 13
FIRST_SLOTS = 4096


class HandleKind(enum.IntEnum):
    FREE = 0
    FILE = 1
    DIRECTORY = 2


@dataclass(frozen=True, slots=True)
class HandleRecord:
    ceph_ino: int
    flags: int
    kind: HandleKind
    unsynced: bool


class HandleStore:
    """Allocates `fh` numbers and records them in a file: at `path`, where a successor
    process can read it, or in memory (a memfd) for a successor in this process (a
    standalone mount's new Ceph session)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self._fd = os.memfd_create("cephmount-handles", os.MFD_CLOEXEC)
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        size = os.fstat(self._fd).st_size
        self._map = self._mapping(max(size, FIRST_SLOTS * RECORD.size))
        self._free = [slot for slot in reversed(range(self._slots()))
                      if self._kind(slot) == HandleKind.FREE]

    def _mapping(self, size: int) -> mmap.mmap:
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        return mmap.mmap(self._fd, size)

    def _slots(self) -> int:
        return len(self._map) // RECORD.size

    def _kind(self, slot: int) -> int:
        return self._map[slot * RECORD.size + KIND_AT]

    def allocate(self, ceph_ino: int, flags: int, kind: HandleKind) -> int:
        if not self._free:
            self._grow()
        slot = self._free.pop()
        offset = slot * RECORD.size
        RECORD.pack_into(self._map, offset, ceph_ino, flags, HandleKind.FREE, 0)
        self._map[offset + KIND_AT] = kind
        return slot + 1

    def _grow(self) -> None:
        old = self._slots()
        mapping = self._mapping(2 * len(self._map))
        self._map.close()
        self._map = mapping
        self._free.extend(reversed(range(old, self._slots())))

    def free(self, fh: int) -> None:
        slot = fh - 1
        if 0 <= slot < self._slots() and self._kind(slot) != HandleKind.FREE:
            self._map[slot * RECORD.size + KIND_AT] = HandleKind.FREE
            self._free.append(slot)

    def get(self, fh: int) -> HandleRecord | None:
        """What `fh` was opened as, or None for a number never given (or freed)."""
        slot = fh - 1
        if not 0 <= slot < self._slots():
            return None
        ceph_ino, flags, kind, unsynced = RECORD.unpack_from(self._map, slot * RECORD.size)
        if kind == HandleKind.FREE:
            return None
        return HandleRecord(ceph_ino, flags, HandleKind(kind), bool(unsynced))

    def mark_unsynced(self, fh: int, unsynced: bool) -> None:
        """Record that data went through `fh` since its last fsync (or that it was synced)."""
        self._map[(fh - 1) * RECORD.size + UNSYNCED_AT] = unsynced

    def unsynced_mark(self, fh: int) -> tuple[int, int]:
        """Where `fh`'s written-since-fsync mark is in the table's file, for a native
        writer to set with `pwrite` (the mapping moves when it grows): (fd, offset)."""
        return self._fd, (fh - 1) * RECORD.size + UNSYNCED_AT

    def mark_all_synced(self) -> None:
        """Everything written through every handle is durable (the client was unmounted)."""
        for slot in range(self._slots()):
            self._map[slot * RECORD.size + UNSYNCED_AT] = 0

    def in_use(self) -> int:
        return self._slots() - len(self._free)

    def close(self) -> None:
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
