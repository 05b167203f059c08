"""The read cache: file data blocks bounded in bytes, plus attribute and entry caches.

Blocks are keyed by inode and block offset; a block never straddles two RADOS
objects (its size divides the file's object size), so one block is one object
read. The block cache is shared by the trio thread (reads) and the invalidation
thread (libcephfs callbacks), hence its lock. Each inode read has a generation
that every invalidation moves: a block fetched under an older generation is not
stored, so a callback racing a read cannot leave stale data behind. Generations
come from one counter and are never reused, so what the cache keeps of an inode
can go once the kernel forgets it. See docs/cache-and-coherence.md.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from cachetools import LRUCache

MAX_BLOCK = 1 << 20

BlockKey = tuple[int, int]  # (ceph ino, block offset)
# A block's data, read-only: as read from libcephfs, in a buffer of its own.
Block = bytes | memoryview
V = TypeVar("V")


def block_size_for(object_size: int) -> int:
    """The largest block up to MAX_BLOCK that divides the object size."""
    size = min(MAX_BLOCK, max(object_size, 4096))
    while object_size % size:
        size //= 2
    return max(size, 1)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    bytes_from_cache: int = 0
    bytes_fetched: int = 0
    evictions: int = 0
    invalidations: int = 0
    readahead_used: int = 0
    readahead_wasted: int = 0
    attr_hits: int = 0
    entry_hits: int = 0
    xattr_hits: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _CountingLRU(LRUCache[BlockKey, Block]):
    """An LRU that reports what it evicts, so indexes and counters stay true."""

    def __init__(self, maxsize: int, on_evict: Callable[[BlockKey], None]) -> None:
        super().__init__(maxsize=maxsize, getsizeof=len)
        self._on_evict = on_evict

    def popitem(self) -> tuple[BlockKey, Block]:
        key, value = super().popitem()
        self._on_evict(key)
        return key, value


class BlockCache:
    """File data blocks, LRU, never more than `capacity` bytes of data."""

    def __init__(self, capacity: int,
                 on_forgotten: Callable[[int], None] = lambda ino: None) -> None:
        """`on_forgotten(ino)` is called, under the cache's lock, once a forgotten inode
        has no block left here: what else is kept of it may go too."""
        self.capacity = capacity
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._blocks = _CountingLRU(capacity, self._evicted)
        self._by_ino: dict[int, set[int]] = {}
        self._generations: dict[int, int] = {}
        self._next_generation = itertools.count(1)
        self._forgotten: set[int] = set()  # forgotten by the kernel, blocks still here
        self._on_forgotten = on_forgotten
        self._unused_readahead: set[BlockKey] = set()

    @property
    def size(self) -> int:
        return int(self._blocks.currsize)

    def resize(self, capacity: int) -> None:
        """Hold at most `capacity` bytes from now on, dropping the least recently used."""
        with self._lock:
            while self._blocks.currsize > capacity:
                self._blocks.popitem()
            resized = _CountingLRU(capacity, self._evicted)
            while self._blocks:  # least recently used first, so the order carries over
                key, data = LRUCache.popitem(self._blocks)
                resized[key] = data
            self._blocks = resized
            self.capacity = capacity

    @property
    def tracked_inodes(self) -> int:
        """Inodes the cache keeps a generation of."""
        with self._lock:
            return len(self._generations)

    def generation(self, ino: int) -> int:
        """The generation to fetch a block of `ino` under, and to hand to `put`."""
        with self._lock:
            generation = self._generations.get(ino)
            if generation is None:
                generation = self._generations[ino] = next(self._next_generation)
            return generation

    def get(self, ino: int, offset: int) -> Block | None:
        with self._lock:
            data = self._blocks.get((ino, offset))
            if data is None:
                self.stats.misses += 1
                return None
            self.stats.hits += 1
            if (ino, offset) in self._unused_readahead:
                self._unused_readahead.discard((ino, offset))
                self.stats.readahead_used += 1
            return data

    def count_served(self, nbytes: int) -> None:
        with self._lock:
            self.stats.bytes_from_cache += nbytes

    def put(self, ino: int, offset: int, data: Block, generation: int,
            readahead: bool = False) -> bool:
        """Store a block fetched under `generation`; refuse it if the inode changed since."""
        with self._lock:
            self.stats.bytes_fetched += len(data)
            if self._generations.get(ino) != generation or len(data) > self.capacity:
                return False
            self._blocks[(ino, offset)] = data
            self._by_ino.setdefault(ino, set()).add(offset)
            if readahead:
                self._unused_readahead.add((ino, offset))
            return True

    def contains(self, ino: int, offset: int) -> bool:
        with self._lock:
            return (ino, offset) in self._blocks

    def invalidate(self, ino: int) -> None:
        """Drop every block of `ino` and refuse blocks fetched before now."""
        with self._lock:
            self._move_generation(ino)
            self.stats.invalidations += 1
            for offset in self._by_ino.pop(ino, ()):
                self._blocks.pop((ino, offset), None)
                self._forget_readahead((ino, offset))
            self._trim_if_forgotten(ino)

    def drop_range(self, ino: int, start: int, end: int, block_size: int) -> None:
        """A local write changed [start, end): drop the blocks it touches.

        A block is dropped when its span (a whole block, even if the file ended inside
        it) meets the range. The generation moves too, so a fetch that began before
        the write cannot store what it read.
        """
        with self._lock:
            self._move_generation(ino)
            offsets = self._by_ino.get(ino, set())
            for offset in [o for o in offsets if o < end and o + block_size > start]:
                self._blocks.pop((ino, offset), None)
                offsets.discard(offset)
                self._forget_readahead((ino, offset))
            if not offsets:
                self._by_ino.pop(ino, None)
                self._trim_if_forgotten(ino)

    def forget(self, ino: int) -> None:
        """The kernel forgot `ino`: drop what is kept of it once no block of it is left.

        Blocks stay (a file read again after the kernel dropped its inode is served
        from here); so must the record the change check compares with, until the LRU
        or an invalidation takes the last block.
        """
        with self._lock:
            self._forgotten.add(ino)
            if ino not in self._by_ino:
                self._trim_if_forgotten(ino)

    def remember(self, ino: int) -> None:
        """The kernel looked `ino` up again: keep what is kept of it."""
        with self._lock:
            self._forgotten.discard(ino)

    def _move_generation(self, ino: int) -> None:
        """Refuse blocks fetched before now. An inode without a generation has no
        fetch in flight whose block `put` would take: it stays without one."""
        if ino in self._generations:
            self._generations[ino] = next(self._next_generation)

    def _trim_if_forgotten(self, ino: int) -> None:
        """Called under the lock when `ino` has no block left."""
        if ino in self._forgotten:
            self._forgotten.discard(ino)
            self._generations.pop(ino, None)
            self._on_forgotten(ino)

    def _evicted(self, key: BlockKey) -> None:
        """Called under the lock by the LRU when it drops `key` for room."""
        self.stats.evictions += 1
        offsets = self._by_ino.get(key[0])
        if offsets is not None:
            offsets.discard(key[1])
            if not offsets:
                del self._by_ino[key[0]]
                self._trim_if_forgotten(key[0])
        self._forget_readahead(key)

    def _forget_readahead(self, key: BlockKey) -> None:
        if key in self._unused_readahead:
            self._unused_readahead.discard(key)
            self.stats.readahead_wasted += 1


class ExpiringMap(Generic[V]):
    """A map whose entries expire `ttl` seconds after they were set, `maxsize` entries at
    most (the oldest go first); ttl 0 keeps nothing.

    `update` changes an entry's value without giving it longer to live. Entries are
    kept in the order they were set, which is the order they expire in: setting one
    drops those expired from the front, and so does `purge`, which an idle mount
    calls now and then (`CephOperations.attach`) so that what a large listing left
    does not stay until the next set. An OrderedDict under a lock rather than
    cachetools' TTLCache, whose every call runs its timer and expiry: a listing drops
    the entry of each name it sends, and TTLCache's `pop` was 45% of a large
    listing's time (docs/performance.md).
    """

    def __init__(self, maxsize: int, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._enabled = ttl > 0
        self._ttl = ttl
        self._maxsize = maxsize
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[object, tuple[V, float]] = OrderedDict()

    def get(self, key: object) -> V | None:
        with self._lock:
            item = self._items.get(key)
        if item is None or self._clock() >= item[1]:
            return None
        return item[0]

    def set(self, key: object, value: V) -> None:
        if not self._enabled:
            return
        now = self._clock()
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (value, now + self._ttl)
            self._drop_front(now)

    def purge(self) -> None:
        """Drop the entries that have expired."""
        now = self._clock()
        with self._lock:
            self._drop_front(now)

    def _drop_front(self, now: float) -> None:
        while self._items:
            oldest = next(iter(self._items.values()))
            if len(self._items) <= self._maxsize and oldest[1] > now:
                break
            self._items.popitem(last=False)

    def update(self, key: object, value: V) -> None:
        """Replace the value of a live entry, keeping its expiry; no entry, no change."""
        with self._lock:
            item = self._items.get(key)
            if item is not None and self._clock() < item[1]:
                self._items[key] = (value, item[1])

    def drop(self, key: object) -> None:
        with self._lock:
            self._items.pop(key, None)

    def drop_all(self, keys: AbstractSet[Any]) -> None:
        """Drop every entry of `keys`, walking whichever of the two is smaller."""
        with self._lock:
            doomed = keys if len(keys) < len(self._items) else keys & self._items.keys()
            for key in doomed:
                self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def drop_where(self, predicate: Callable[[object], bool]) -> None:
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                del self._items[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
