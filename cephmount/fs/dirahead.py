"""Names of a listing read from libcephfs while the kernel takes the last reply.

A plain READDIR of a large directory is a chain: the kernel asks, a worker thread
reads the next names from libcephfs (which waits for the MDS whenever its cached
part of the directory runs out), the reply goes back, the kernel hands it to the
program, and only then asks again. Reading the next batch as soon as a reply has
gone out lets libcephfs's wait overlap the rest of the chain.

Invariants:
- At most one read is in flight per directory handle, and nothing else uses that
  handle (libcephfs's `ceph_dir_result`, which has a position of its own and is
  not safe to share between threads) until it is over: `take` and `drop` wait
  for it before returning.
- Only plain READDIR's names are read ahead: they carry no inode references, so
  one read ahead and never asked for costs memory only, and is simply dropped.
- A read that fails is forgotten: the next request reads for itself and meets
  the error then, as it would have without the read ahead. An error that is not
  libcephfs's is logged, and ends nothing but the read ahead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from cephmount.ceph.errors import CephError
from cephmount.ceph.structs import DirHandle, NameBatch

log = logging.getLogger(__name__)

Fetch = Callable[[DirHandle, int], Awaitable[NameBatch]]


class _Read:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.done = trio.Event()
        self.entries: NameBatch | None = None


class ListingAhead:
    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._reads: dict[int, _Read] = {}  # directory handle number -> its read
        self._nursery: trio.Nursery | None = None
        self.used = 0  # reads a request took; for the mount's stats

    def attach(self, nursery: trio.Nursery) -> None:
        """Reads run in the mount's nursery; none before this."""
        self._nursery = nursery

    def start(self, fh: int, handle: DirHandle, offset: int) -> None:
        """Read the names from `offset` on for the next request on `fh`."""
        if self._nursery is None or fh in self._reads:
            return
        read = _Read(offset)
        self._nursery.start_soon(self._run, handle, read)
        self._reads[fh] = read

    async def _run(self, handle: DirHandle, read: _Read) -> None:
        try:
            read.entries = await self._fetch(handle, read.offset)
        except CephError:
            pass
        except Exception:
            log.exception("reading the names of a listing ahead failed")
        finally:
            read.done.set()

    async def take(self, fh: int, offset: int) -> NameBatch | None:
        """The names read ahead on `fh` if they start at `offset`; None otherwise.
        Either way, no read of `fh` is in flight when this returns."""
        read = self._reads.pop(fh, None)
        if read is None:
            return None
        await read.done.wait()
        if read.offset != offset or read.entries is None:
            return None
        self.used += 1
        return read.entries

    async def drop(self, fh: int) -> None:
        """Forget what was read ahead on `fh`, once no read of it is in flight."""
        await self.take(fh, -1)
