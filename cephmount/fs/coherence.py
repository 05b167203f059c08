"""Coherence across nodes: the modes' promises, change detection, and the invalidation thread.

libcephfs calls our callbacks on its own threads while holding its client
lock: they only queue the event. A dedicated thread drops our cached blocks,
attributes and entries and tells the kernel, so neither libcephfs nor the trio
thread ever waits on the kernel. See docs/cache-and-coherence.md.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyfuse3
from cachetools import LRUCache

from cephmount.ceph.structs import StatX
from cephmount.fs.cache import BlockCache, ExpiringMap
from cephmount.fs.options import Coherence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoherencePolicy:
    """How long anything may be served from a cache without asking libcephfs.

    `attr_timeout`/`entry_timeout` are the kernel's; `cache_ttl` is ours for
    attributes and entries; `revalidate_after` is how old the last check of an
    open file's change counter may be before cached blocks are served again.
    A reader that has a file open sees another node's completed write within
    kernel timeout + cache_ttl (the kernel reads past its cached size only once
    it refreshes attributes, and drops stale pages when mtime or size moved).
    """

    attr_timeout: float
    entry_timeout: float
    cache_ttl: float
    revalidate_after: float
    direct_io: bool = False
    cache_data: bool = True


POLICIES = {
    Coherence.STRICT: CoherencePolicy(0.0, 0.0, 0.0, 0.0, direct_io=True, cache_data=False),
    Coherence.DEFAULT: CoherencePolicy(0.4, 0.4, 0.4, 0.4),
    Coherence.RELAXED: CoherencePolicy(30.0, 30.0, 30.0, 30.0),
}


@dataclass
class _Seen:
    version: int
    size: int
    mtime_ns: int
    checked_at: float


class ChangeTracker:
    """The change counter (stx_version), size and mtime last seen of each file."""

    def __init__(self, revalidate_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._revalidate_after = revalidate_after
        self._clock = clock
        self._seen: dict[int, _Seen] = {}

    def due(self, ino: int) -> bool:
        """Whether cached data of `ino` must be checked before it is served again."""
        seen = self._seen.get(ino)
        return seen is None or self._clock() - seen.checked_at >= self._revalidate_after

    def changed(self, stx: StatX) -> bool:
        """Record fresh attributes; True when the file changed since last seen."""
        before = self._seen.get(stx.ino)
        self._seen[stx.ino] = _Seen(stx.version, stx.size, stx.mtime_ns, self._clock())
        if before is None:
            return False
        return (before.version, before.size, before.mtime_ns) != (
            stx.version, stx.size, stx.mtime_ns)

    def known_size(self, ino: int) -> int | None:
        seen = self._seen.get(ino)
        return seen.size if seen else None

    def forget(self, ino: int) -> None:
        """Nothing cached of `ino` is left to check: drop its record (any thread)."""
        self._seen.pop(ino, None)

    def __len__(self) -> int:
        return len(self._seen)


class Invalidator:
    """Applies libcephfs's invalidation callbacks on a thread of its own."""

    def __init__(self, blocks: BlockCache, by_inode: Sequence[ExpiringMap],
                 entries: ExpiringMap, to_fuse: Callable[[int], int]) -> None:
        self._blocks = blocks
        self._by_inode = by_inode  # caches keyed by FUSE inode: attributes, xattrs
        self._entries = entries
        self._to_fuse = to_fuse
        self._events: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cephmount-invalidate",
                                         daemon=True)
        self.kernel_notifications = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        if self._thread.is_alive():
            self._events.put(None)
            if wait:
                self._thread.join(timeout=10)

    # Called on libcephfs threads: queue and return at once.
    def on_inode_invalidate(self, ino: int, offset: int, length: int) -> None:
        self._events.put(("inode", ino))

    def on_dentry_invalidate(self, dir_ino: int, ino: int, name: bytes) -> None:
        self._events.put(("dentry", dir_ino, name))

    def on_inode_release(self, ino: int) -> None:
        """The MDS wants references back; the kernel's forgets return them in time."""

    # Called by the filesystem itself, from the trio thread.
    def file_changed(self, ino: int) -> None:
        """Drop our copy of a file now; tell the kernel from the thread."""
        self._drop_inode(ino)
        self._events.put(("kernel-inode", ino))

    def _run(self) -> None:
        while (event := self._events.get()) is not None:
            try:
                self._apply(event)
            except Exception:  # never let one bad event stop coherence
                log.exception("invalidation %r failed", event)

    def _apply(self, event: tuple) -> None:
        kind = event[0]
        if kind == "inode":
            self._drop_inode(event[1])
            self._notify(pyfuse3.invalidate_inode, self._to_fuse(event[1]))
        elif kind == "kernel-inode":
            self._notify(pyfuse3.invalidate_inode, self._to_fuse(event[1]))
        elif kind == "dentry":
            parent, name = self._to_fuse(event[1]), event[2]
            self._entries.drop((parent, name))
            self._notify(pyfuse3.invalidate_entry, parent, name)

    def drop_kernel_cache_now(self, fuse_ino: int) -> None:
        """Drop the kernel's pages (a directory's: its cached listing) before returning;
        for a worker thread, never the trio thread."""
        self._notify(pyfuse3.invalidate_inode, fuse_ino)

    def _drop_inode(self, ino: int) -> None:
        self._blocks.invalidate(ino)
        fuse_ino = self._to_fuse(ino)
        for cache in self._by_inode:
            cache.drop(fuse_ino)

    def _notify(self, call: Callable[..., None], *args: object) -> None:
        try:
            call(*args)
            self.kernel_notifications += 1
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTCONN, errno.EBADF):
                raise


class ListingVersions:
    """Whether the kernel may serve a directory's listing from its own cache.

    The kernel caches a listing (FOPEN_CACHE_DIR) and drops it by itself only for
    changes made through this mount; another node's create, unlink or rename moves
    the directory's change counter and times, which an opendir's synced getattr sees
    (the MDS gathers them first). A directory that moved gets its cached listing
    dropped before the open is answered.

    A cached listing refreshes no names: the `stat` of each entry that follows
    (`ls -l`, `du`) then costs a LOOKUP, mostly an MDS round trip, where a fresh
    READDIRPLUS listing leaves a cheaper GETATTR. So a directory whose listing was
    followed by lookups or getattrs of its entries is listed afresh for a while.
    """

    LOOKUPS_MEAN_STATS = 16
    FRESH_FOR = 60.0  # seconds a directory that is listed and statted is listed afresh
    ORDERS_KEPT = 64  # directories whose listing order is kept

    def __init__(self, maxsize: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: LRUCache[int, tuple[int, int, int]] = LRUCache(maxsize=maxsize)
        self._stats: LRUCache[int, int] = LRUCache(maxsize=maxsize)  # since the last open
        self._statted: LRUCache[int, float] = LRUCache(maxsize=maxsize)
        # The order of the last READDIRPLUS listing of recent directories, and where
        # in it each entry came: what `ls -l` will stat after an entry.
        self._order: LRUCache[int, list[int]] = LRUCache(maxsize=self.ORDERS_KEPT)
        self._listed_at: LRUCache[int, tuple[int, int]] = LRUCache(maxsize=maxsize)
        self._per_inode: tuple[LRUCache, ...] = (
            self._seen, self._stats, self._statted, self._order, self._listed_at)
        self._clock = clock

    def may_cache(self, ino: int) -> bool:
        """Whether to let the kernel cache the listing at this open (not for a while
        after a listing was followed by lookups or getattrs of its entries)."""
        if self._stats.pop(ino, 0) >= self.LOOKUPS_MEAN_STATS:
            self._statted[ino] = self._clock() + self.FRESH_FOR
        self._stats[ino] = 0
        return self._statted.get(ino, 0.0) <= self._clock()

    def listing_started(self, parent_ino: int) -> None:
        """A READDIRPLUS listing of `parent_ino` starts from its first entry."""
        self._order[parent_ino] = []

    def listed(self, entry_ino: int, parent_ino: int) -> int:
        """`entry_ino` went to the kernel in a READDIRPLUS listing of `parent_ino`:
        its place in the listing."""
        order = self._order.get(parent_ino)
        if order is None:
            order = self._order[parent_ino] = []
        self._listed_at[entry_ino] = (parent_ino, len(order))
        order.append(entry_ino)
        return len(order) - 1

    def following(self, entry_ino: int, count: int) -> list[int]:
        """Up to `count` entries listed right after `entry_ino` (none if it was not)."""
        parent, index = self._listed_at.get(entry_ino, (0, -1))
        order = self._order.get(parent, [])
        if not 0 <= index < len(order) or order[index] != entry_ino:
            return []
        return order[index + 1:index + 1 + count]

    def looked_up(self, parent_ino: int) -> None:
        """Count a lookup of an entry of `parent_ino`."""
        count = self._stats.get(parent_ino)
        if count is not None:
            self._stats[parent_ino] = count + 1

    def statted(self, entry_ino: int) -> None:
        """Count a getattr of an entry a listing sent."""
        parent, _ = self._listed_at.get(entry_ino, (None, 0))
        if parent is not None:
            self.looked_up(parent)

    def unchanged(self, ino: int, stx: StatX) -> bool:
        """Whether `ino` looks as at the last call; remember how it looks now."""
        now = (stx.version, stx.mtime_ns, stx.ctime_ns)
        same = self._seen.get(ino) == now
        self._seen[ino] = now
        return same

    def forget(self, ino: int) -> None:
        for per_inode in self._per_inode:
            per_inode.pop(ino, None)

    def __len__(self) -> int:
        """Records kept, over every inode: a long-lived mount's must stay flat."""
        return sum(len(per_inode) for per_inode in self._per_inode)
