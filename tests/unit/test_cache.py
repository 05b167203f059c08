"""The block cache, expiring maps and change tracking: pure logic, no cluster."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cephmount.ceph.structs import StatX
from cephmount.fs.cache import MAX_BLOCK, BlockCache, ExpiringMap, block_size_for
from cephmount.fs.coherence import ChangeTracker

KiB = 1024


@pytest.mark.parametrize("object_size, block", [(4 << 20, MAX_BLOCK), (1 << 20, 1 << 20),
                                                (64 * KiB, 64 * KiB), (3 << 20, MAX_BLOCK),
                                                (3 * 64 * KiB, 3 * 64 * KiB)])
def test_blocks_divide_the_object_size(object_size: int, block: int) -> None:
    assert block_size_for(object_size) == block
    assert object_size % block_size_for(object_size) == 0


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40), st.integers(1, 300)),
                max_size=200))
def test_never_more_bytes_than_the_limit(puts: list[tuple[int, int, int]]) -> None:
    cache = BlockCache(capacity=1000)
    for ino, index, size in puts:
        cache.put(ino, index * 300, bytes(size), cache.generation(ino))
        assert cache.size <= 1000


def test_least_recently_used_goes_first_and_is_counted() -> None:
    cache = BlockCache(capacity=300)
    for offset in (0, 100, 200):
        cache.put(1, offset, bytes(100), cache.generation(1))
    assert cache.get(1, 0) is not None  # 0 is now the most recent
    cache.put(1, 300, bytes(100), cache.generation(1))

    assert not cache.contains(1, 100)
    assert cache.contains(1, 0) and cache.contains(1, 200) and cache.contains(1, 300)
    assert cache.stats.evictions == 1


def test_a_block_fetched_before_an_invalidation_is_refused() -> None:
    cache = BlockCache(capacity=1 << 20)
    generation = cache.generation(7)
    cache.put(7, 0, b"old", generation)
    cache.invalidate(7)  # a callback arrives while a read is in flight

    assert not cache.put(7, 4096, b"fetched before", generation)
    assert cache.get(7, 0) is None and cache.get(7, 4096) is None
    assert cache.put(7, 0, b"new", cache.generation(7))


def test_a_write_drops_only_the_blocks_it_touches() -> None:
    cache = BlockCache(capacity=1 << 20)
    for offset in (0, 4096, 8192):
        cache.put(3, offset, bytes(4096), cache.generation(3))
    cache.put(3, 12288, bytes(10), cache.generation(3))  # short: the file ended in it

    cache.drop_range(3, 4096 + 10, 4096 + 20, block_size=4096)
    cache.drop_range(3, 12288 + 500, 12288 + 600, block_size=4096)  # past the old end

    assert cache.contains(3, 0) and cache.contains(3, 8192)
    assert not cache.contains(3, 4096) and not cache.contains(3, 12288)


def test_readahead_counts_used_and_wasted() -> None:
    cache = BlockCache(capacity=1 << 20)
    cache.put(1, 0, b"a", cache.generation(1), readahead=True)
    cache.put(1, 10, b"b", cache.generation(1), readahead=True)
    cache.get(1, 0)
    cache.get(1, 0)
    cache.invalidate(1)

    assert cache.stats.readahead_used == 1
    assert cache.stats.readahead_wasted == 1


def test_hits_misses_and_bytes() -> None:
    cache = BlockCache(capacity=1 << 20)
    assert cache.get(1, 0) is None
    cache.put(1, 0, b"abc", cache.generation(1))
    assert cache.get(1, 0) == b"abc"
    cache.count_served(3)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.bytes_from_cache,
            cache.stats.bytes_fetched) == (1, 1, 3, 3)


def test_expiring_map_expires_and_zero_ttl_keeps_nothing() -> None:
    now = [0.0]
    names: ExpiringMap[int] = ExpiringMap(10, ttl=1.0, clock=lambda: now[0])
    names.set("a", 1)
    assert names.get("a") == 1
    now[0] = 1.5
    assert names.get("a") is None

    off: ExpiringMap[int] = ExpiringMap(10, ttl=0)
    off.set("a", 1)
    assert off.get("a") is None


def test_expiring_map_update_keeps_the_expiry() -> None:
    """A local change refreshes a cached value, never how long it may be trusted."""
    now = [0.0]
    attrs: ExpiringMap[int] = ExpiringMap(10, ttl=1.0, clock=lambda: now[0])
    attrs.update("absent", 1)
    assert attrs.get("absent") is None
    attrs.set("a", 1)
    now[0] = 0.9
    attrs.update("a", 2)
    assert attrs.get("a") == 2
    now[0] = 1.0
    assert attrs.get("a") is None
    attrs.update("a", 3)
    assert attrs.get("a") is None


def test_expiring_map_holds_maxsize_entries_dropping_the_oldest_and_the_expired() -> None:
    now = [0.0]
    names: ExpiringMap[int] = ExpiringMap(3, ttl=1.0, clock=lambda: now[0])
    for key in "abc":
        names.set(key, 1)
        now[0] += 0.1
    names.set("a", 2)  # set again: the newest now
    names.set("d", 3)
    assert [names.get(key) for key in "abcd"] == [2, None, 1, 3]
    assert len(names) == 3
    now[0] = 1.25  # c (set at 0.2) has expired, a (0.3) and d (0.3) have not
    names.set("e", 4)
    assert len(names) == 3 and names.get("c") is None


def test_purge_drops_the_expired_entries_only() -> None:
    now = [0.0]
    attrs: ExpiringMap[int] = ExpiringMap(10, ttl=1.0, clock=lambda: now[0])
    attrs.set("old", 1)
    now[0] = 0.5
    attrs.set("new", 2)
    now[0] = 1.2
    attrs.purge()
    assert len(attrs) == 1 and attrs.get("new") == 2


STAT = StatX(mask=0, ino=9, mode=0o100644, nlink=1, uid=0, gid=0, rdev=0, size=10, blocks=1,
             blksize=4096, atime_ns=0, mtime_ns=5, ctime_ns=5, btime_ns=0, version=3)


def test_change_tracker_sees_version_size_and_mtime_moves() -> None:
    now = [0.0]
    tracker = ChangeTracker(revalidate_after=0.5, clock=lambda: now[0])
    assert tracker.due(9)
    assert not tracker.changed(STAT)  # first sight is no change
    assert not tracker.due(9)
    now[0] = 0.6
    assert tracker.due(9)
    assert not tracker.changed(STAT._replace(atime_ns=99))
    for moved in (STAT._replace(version=4), STAT._replace(version=4, size=11),
                  STAT._replace(version=4, size=11, mtime_ns=6)):
        assert tracker.changed(moved)
    assert tracker.known_size(9) == 11
