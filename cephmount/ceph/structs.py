"""Plain values and handles passed across the ceph client layer."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cephmount.ceph._libcephfs import ffi


@dataclass(frozen=True, slots=True)
class Credentials:
    """Whom a call acts for: libcephfs checks permissions against these."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


ROOT = Credentials(0, 0)


class _Now(enum.Enum):
    NOW = "now"


NOW = _Now.NOW
"""Pass as `atime_ns`/`mtime_ns` to `setattr` for the server's current time."""

TimeArg = int | _Now | None


# struct ceph_statx and struct dirent on x86_64: unpacking the bytes at once is
# 5x faster than reading their cffi fields one by one.
# tests/unit/test_ceph_ffi_layout.py checks both.
STATX_FORMAT = struct.Struct("=5IH2x5Q8qQ")
DIRENT_FORMAT = struct.Struct("=Qq2xB256s5x")  # d_ino, d_off, d_type, d_name
_NS = 1_000_000_000


class StatX(NamedTuple):
    """An inode's attributes; times in integer nanoseconds since the epoch.

    A named tuple, not a dataclass: one is built per listed name and per
    attribute reply, and a tuple is built several times faster.

    `mask` holds the CEPH_STATX_* bits that are valid: always all of them for
    getattr/lookup, possibly fewer for readdir (which never asks the MDS).
    `version` changes whenever the inode changes.
    """

    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    blocks: int
    blksize: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime_ns: int
    version: int
    mask: int

    @classmethod
    def of_type(cls, number: int, mode: int) -> StatX:
        """What a plain directory entry tells: the inode's number and type, nothing else."""
        return cls(number, mode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    @classmethod
    def from_cdata(cls, stx: Any, number: int) -> StatX:
        """Copy a `struct ceph_statx *` into Python ints; `ino` is `number` (see vino.py)."""
        (mask, blksize, nlink, uid, gid, mode, _ino, size, blocks, _dev, rdev,
         a_sec, a_nsec, c_sec, c_nsec, m_sec, m_nsec, b_sec, b_nsec,
         version) = STATX_FORMAT.unpack(ffi.buffer(stx))
        return cls(
            ino=number, mode=mode, nlink=nlink, uid=uid, gid=gid, rdev=rdev, size=size,
            blocks=blocks, blksize=blksize,
            atime_ns=a_sec * _NS + a_nsec,
            mtime_ns=m_sec * _NS + m_nsec,
            ctime_ns=c_sec * _NS + c_nsec,
            btime_ns=b_sec * _NS + b_nsec,
            version=version, mask=mask,
        )


@dataclass(frozen=True, slots=True)
class Inode:
    """A libcephfs `Inode *` and its inode number.

    Holding an Inode object means nothing by itself: the reference it stands
    for is libcephfs's. Every CephClient method that returns an Inode hands the
    caller one reference, to be given back with `put(inode)` (one) or
    `forget(inode, n)` (n at once). An Inode must not be used after its last
    reference is given back, nor after its client is closed.
    """

    ino: int
    ptr: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class FileHandle:
    """An open file (`Fh *`); close it with `close(fh)`.

    `inode` is the file's `Inode *`, valid for as long as the file is open: the
    Fh holds a reference to it in libcephfs.
    """

    ino: int
    ptr: Any = field(repr=False)
    inode: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class DirHandle:
    """An open directory (`ceph_dir_result *`); release it with `releasedir`."""

    ino: int
    ptr: Any = field(repr=False)


class DirEntry(NamedTuple):
    """One directory entry (a named tuple, built once per listed name).

    `offset` is where the entry after this one starts: pass it back to
    `readdir` to continue. `inode` is set only when the caller asked for
    inodes, and then carries one reference like any other returned Inode.
    """

    name: bytes
    stat: StatX
    offset: int
    inode: Inode | None = None


class NameBatch:
    """Directory entries as `ceph_getdents` writes them: `struct dirent` records
    (DIRENT_FORMAT), kept as they are.

    A plain READDIR's reply is sent from them by pyfuse3's `readdir_reply_dirents`
    in one call, with no Python object per name; the numbers are read as a strided
    view of the records. A batch is immutable; `since` shares its records.
    """

    __slots__ = ("records",)
    _WORDS = DIRENT_FORMAT.size // 8  # a record's length in 64-bit words; d_ino is the first

    def __init__(self, records: memoryview) -> None:
        """`records`: bytes of whole records (a multiple of DIRENT_FORMAT.size)."""
        self.records = records

    @classmethod
    def of(cls, entries: list[DirEntry]) -> NameBatch:
        """The records of entries read otherwise (a snapshot's, renumbered)."""
        return cls(memoryview(b"".join(
            DIRENT_FORMAT.pack(entry.stat.ino, entry.offset, entry.stat.mode >> 12, entry.name)
            for entry in entries)))

    def __len__(self) -> int:
        return len(self.records) // DIRENT_FORMAT.size

    def since(self, index: int) -> NameBatch:
        """The entries from `index` on."""
        return NameBatch(self.records[index * DIRENT_FORMAT.size:])

    def offset_after(self, index: int) -> int:
        """Where the listing continues after the entry at `index`."""
        return int(DIRENT_FORMAT.unpack_from(self.records, index * DIRENT_FORMAT.size)[1])

    def numbers(self, stop: int) -> memoryview:
        """The inode numbers of the first `stop` entries."""
        return self.records.cast("Q")[:stop * self._WORDS:self._WORDS]

    def entries(self) -> list[DirEntry]:
        """Each entry with its name, number, type (`stat.mode`) and next offset."""
        return [DirEntry(name[:name.index(0)], StatX.of_type(number, kind << 12), next_offset)
                for number, next_offset, kind, name in DIRENT_FORMAT.iter_unpack(self.records)]


@dataclass(frozen=True, slots=True)
class Lock:
    """A POSIX byte-range lock (struct flock, whence is always SEEK_SET)."""

    type: int
    start: int
    length: int
    pid: int = 0
