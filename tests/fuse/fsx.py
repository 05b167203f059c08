"""A randomized single-file exerciser in the manner of fsx: every read checked against a model.

One file on a mount gets a seeded random sequence of operations: reads, writes (past
the end too, leaving holes), truncates up and down, close and reopen, mmap reads,
MAP_SHARED writes with msync, O_DIRECT reads and writes (page-aligned, from mmap'd
buffers), fsync and, where the filesystem has them, fallocate's allocate, keep-size
and punch-hole. A bytearray holds what the file must contain; every read, every map
and the size after every operation are compared with it. The sequence depends only
on the seed and the options, never on what the filesystem answered, so the same
seed replays the same operations on another mount (ceph-fuse as the reference).

Where shared maps are not to be had (strict mode: `direct_io`), the shared-map
operations instead check that the kernel refuses them with ENODEV, and mmap reads
use private maps.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import random
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

PAGE = mmap.PAGESIZE
MAX_SIZE = 256 << 10
MAX_IO = 64 << 10
FULL_CHECK_EVERY = 250
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOCATE_MODES = {"allocate": 0, "keep_size": FALLOC_FL_KEEP_SIZE,
                   "punch_hole": FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}
WEIGHTS = {"read": 12, "write": 12, "truncate": 4, "reopen": 2, "map_read": 5,
           "map_write": 5, "direct_read": 4, "direct_write": 4, "fsync": 1,
           "allocate": 2, "keep_size": 2, "punch_hole": 3}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if _libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Mismatch(AssertionError):
    """The file differs from the model."""


@dataclass(frozen=True)
class Op:
    name: str
    offset: int = 0
    length: int = 0

    def __str__(self) -> str:
        return f"{self.name}({self.offset:#x}, {self.length:#x})"


class Exerciser:
    """Drive `path` with the operations of `seed`; `shared_maps` False for strict mode,
    `direct` False to leave O_DIRECT out."""

    def __init__(self, path: Path, seed: int, shared_maps: bool = True,
                 direct: bool = True) -> None:
        self.path = path
        self.seed = seed
        self.shared_maps = shared_maps
        self.direct = direct
        self.model = bytearray()
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._recent: deque[Op] = deque(maxlen=20)
        self._done = 0
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.fallocate_modes = _supported_fallocate_modes(fd)
        os.close(fd)
        self._fd = self._direct = -1
        self._open()

    # -- the run --------------------------------------------------------------------

    def run(self, count: int) -> Counter[str]:
        """Do `count` operations; raise Mismatch (with the seed and recent ops) on a difference."""
        names = [name for name in WEIGHTS
                 if (name not in FALLOCATE_MODES or name in self.fallocate_modes)
                 and (self.direct or not name.startswith("direct_"))]
        weights = [WEIGHTS[name] for name in names]
        try:
            for _ in range(count):
                op = self._choose(self._rng.choices(names, weights)[0])
                self._recent.append(op)
                getattr(self, f"_{op.name}")(op)
                self._check_size()
                self._done += 1
                self.counts[op.name] += 1
                if self._done % FULL_CHECK_EVERY == 0:
                    self._check_all()
            self._check_all()
        finally:
            self._close()
        return self.counts

    def _choose(self, name: str) -> Op:
        """Offsets and lengths from the model only, so the sequence replays anywhere."""
        rng = self._rng
        size = len(self.model)
        if name in ("reopen", "fsync"):
            return Op(name)
        if name == "truncate":
            return Op(name, rng.randrange(MAX_SIZE + 1))
        if name.startswith("direct_"):
            offset = rng.randrange(MAX_SIZE // PAGE) * PAGE
            return Op(name, offset, rng.randrange(1, MAX_IO // PAGE + 1) * PAGE)
        if name in ("read", "map_read"):
            if size == 0:
                return Op("read", 0, rng.randrange(1, MAX_IO))
            offset = rng.randrange(size)
            return Op(name, offset, rng.randrange(1, min(MAX_IO, size - offset) + 1))
        offset = rng.randrange(MAX_SIZE)
        return Op(name, offset, rng.randrange(1, min(MAX_IO, MAX_SIZE - offset) + 1))

    # -- operations ------------------------------------------------------------------

    def _read(self, op: Op) -> None:
        self._compare(op, op.offset, op.length, os.pread(self._fd, op.length, op.offset))

    def _write(self, op: Op) -> None:
        data = self._rng.randbytes(op.length)
        written = os.pwrite(self._fd, data, op.offset)
        self._expect(op, written == op.length, f"wrote {written}")
        self._model_write(op.offset, data)

    def _truncate(self, op: Op) -> None:
        os.ftruncate(self._fd, op.offset)
        self._model_resize(op.offset)

    def _reopen(self, op: Op) -> None:
        self._close()
        self._open()

    def _fsync(self, op: Op) -> None:
        os.fsync(self._fd)

    def _map_read(self, op: Op) -> None:
        flags = mmap.MAP_SHARED if self.shared_maps else mmap.MAP_PRIVATE
        with mmap.mmap(self._fd, len(self.model), flags=flags, prot=mmap.PROT_READ) as mapped:
            self._compare(op, op.offset, op.length, mapped[op.offset:op.offset + op.length])

    def _map_write(self, op: Op) -> None:
        end = op.offset + op.length
        if not self.shared_maps:
            self._expect_refused_shared_map(op)
            return
        data = self._rng.randbytes(op.length)
        if end > len(self.model):
            os.ftruncate(self._fd, end)
            self._model_resize(end)
        with mmap.mmap(self._fd, end, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE) as mapped:
            mapped[op.offset:end] = data
            mapped.flush()
        self._model_write(op.offset, data)

    def _expect_refused_shared_map(self, op: Op) -> None:
        """Strict mode: the kernel refuses shared maps of direct_io files (documented)."""
        if not self.model:
            os.ftruncate(self._fd, 1)
            self._model_resize(1)
        try:
            mmap.mmap(self._fd, len(self.model), flags=mmap.MAP_SHARED,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE).close()
        except OSError as exc:
            self._expect(op, exc.errno == errno.ENODEV, f"shared map failed with {exc}")
            return
        raise self._mismatch(op, "a shared map of a direct_io file was not refused")

    def _direct_read(self, op: Op) -> None:
        with mmap.mmap(-1, op.length) as buffer:
            got = os.preadv(self._direct, [buffer], op.offset)
            self._compare(op, op.offset, op.length, buffer[:got])

    def _direct_write(self, op: Op) -> None:
        data = self._rng.randbytes(op.length)
        with mmap.mmap(-1, op.length) as buffer:
            buffer[:] = data
            written = os.pwritev(self._direct, [buffer], op.offset)
        self._expect(op, written == op.length, f"wrote {written}")
        self._model_write(op.offset, data)

    def _allocate(self, op: Op) -> None:
        fallocate(self._fd, FALLOCATE_MODES["allocate"], op.offset, op.length)
        if op.offset + op.length > len(self.model):
            self._model_resize(op.offset + op.length)

    def _keep_size(self, op: Op) -> None:
        fallocate(self._fd, FALLOCATE_MODES["keep_size"], op.offset, op.length)

    def _punch_hole(self, op: Op) -> None:
        fallocate(self._fd, FALLOCATE_MODES["punch_hole"], op.offset, op.length)
        end = min(op.offset + op.length, len(self.model))
        if op.offset < end:
            self.model[op.offset:end] = bytes(end - op.offset)

    # -- the model and checks --------------------------------------------------------

    def _model_write(self, offset: int, data: bytes) -> None:
        if offset > len(self.model):
            self._model_resize(offset)
        self.model[offset:offset + len(data)] = data

    def _model_resize(self, size: int) -> None:
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    def _compare(self, op: Op, offset: int, length: int, got: bytes) -> None:
        """`got` must be the model's `length` bytes at `offset`, cut at its end."""
        expected = bytes(self.model[offset:offset + length])
        if got != expected:
            at = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False))
                       if a != b), min(len(got), len(expected)))
            raise self._mismatch(op, f"{len(got)} bytes read at {offset:#x}, expected "
                                     f"{len(expected)}; first difference at {offset + at:#x}")

    def _check_size(self) -> None:
        size = os.fstat(self._fd).st_size
        if size != len(self.model):
            raise self._mismatch(self._recent[-1], f"size {size:#x}, expected "
                                                   f"{len(self.model):#x}")

    def _check_all(self) -> None:
        self._compare(Op("check"), 0, MAX_SIZE + PAGE, os.pread(self._fd, MAX_SIZE + PAGE, 0))

    def _expect(self, op: Op, condition: bool, what: str) -> None:
        if not condition:
            raise self._mismatch(op, what)

    def _mismatch(self, op: Op, what: str) -> Mismatch:
        recent = ", ".join(map(str, self._recent))
        return Mismatch(f"{self.path}: seed {self.seed}, operation {self._done + 1} {op}: "
                        f"{what}. Last operations: {recent}")

    # -- descriptors -----------------------------------------------------------------

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR)
        self._direct = os.open(self.path, os.O_RDWR | os.O_DIRECT)

    def _close(self) -> None:
        for fd in (self._fd, self._direct):
            if fd >= 0:
                os.close(fd)
        self._fd = self._direct = -1


def _supported_fallocate_modes(fd: int) -> set[str]:
    """The fallocate modes the filesystem has, tried on the empty file (left empty)."""
    supported = set()
    for name, mode in FALLOCATE_MODES.items():
        try:
            fallocate(fd, mode, 0, PAGE)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        else:
            supported.add(name)
    os.ftruncate(fd, 0)
    return supported

