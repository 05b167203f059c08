"""What the block cache and change tracker keep per inode goes when the kernel forgets it,
without ever letting a read that raced an invalidation store what it fetched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cephmount.ceph.structs import StatX
from cephmount.fs.cache import BlockCache
from cephmount.fs.coherence import ChangeTracker

STAT = StatX(mask=0, ino=7, mode=0o100644, nlink=1, uid=0, gid=0, rdev=0, size=10, blocks=1,
             blksize=4096, atime_ns=0, mtime_ns=5, ctime_ns=5, btime_ns=0, version=3)


def tracked() -> tuple[BlockCache, ChangeTracker]:
    changes = ChangeTracker(revalidate_after=1.0)
    return BlockCache(capacity=1000, on_forgotten=changes.forget), changes


def test_a_forgotten_inode_without_blocks_leaves_nothing() -> None:
    cache, changes = tracked()
    changes.changed(STAT)
    cache.put(7, 0, b"x", cache.generation(7))
    cache.invalidate(7)
    cache.drop_range(7, 0, 10, 4096)

    cache.forget(7)

    assert cache.tracked_inodes == 0 and len(changes) == 0


def test_a_forgotten_inode_keeps_its_record_while_blocks_of_it_are_cached() -> None:
    """A file read again after the kernel dropped its inode is served from the cache:
    the record the change check compares with must stay as long as its blocks."""
    cache, changes = tracked()
    changes.changed(STAT)
    cache.put(7, 0, bytes(600), cache.generation(7))

    cache.forget(7)
    assert cache.tracked_inodes == 1 and changes.known_size(7) == 10
    assert changes.changed(STAT._replace(version=4))  # a change is still seen

    cache.put(8, 0, bytes(600), cache.generation(8))  # evicts inode 7's last block
    assert cache.tracked_inodes == 1 and changes.known_size(7) is None


def test_the_last_block_going_by_a_write_or_an_invalidation_trims_too() -> None:
    cache, changes = tracked()
    for ino in (7, 8):
        changes.changed(STAT._replace(ino=ino))
        cache.put(ino, 0, b"x", cache.generation(ino))
        cache.forget(ino)
    cache.drop_range(7, 0, 1, 4096)
    cache.invalidate(8)
    assert cache.tracked_inodes == 0 and len(changes) == 0


def test_looked_up_again_before_its_blocks_go_it_is_kept() -> None:
    cache, changes = tracked()
    changes.changed(STAT)
    cache.put(7, 0, b"x", cache.generation(7))
    cache.forget(7)
    cache.remember(7)
    cache.invalidate(7)
    assert cache.tracked_inodes == 1 and changes.known_size(7) == 10


def test_a_fetch_begun_before_an_invalidation_and_a_forget_stores_nothing() -> None:
    cache, _ = tracked()
    before = cache.generation(7)
    cache.invalidate(7)
    cache.forget(7)
    assert not cache.put(7, 0, b"stale", before)
    fresh = cache.generation(7)
    assert fresh != before
    assert cache.put(7, 0, b"new", fresh)


def test_callbacks_for_inodes_never_read_keep_nothing() -> None:
    cache, _ = tracked()
    for ino in range(100):
        cache.invalidate(ino)
        cache.drop_range(ino, 0, 10, 4096)
    assert cache.tracked_inodes == 0


OPS = st.lists(st.tuples(st.sampled_from(["fetch", "late-put", "invalidate", "write", "forget",
                                          "remember"]),
                         st.integers(0, 4), st.integers(0, 3)), max_size=60)


@given(OPS)
def test_no_stale_block_is_ever_stored_and_everything_goes_in_the_end(
        ops: list[tuple[str, int, int]]) -> None:
    cache, changes = tracked()
    current: dict[int, list[int]] = {}  # generations taken since the inode last changed
    stale: dict[int, list[int]] = {}  # generations taken before it changed
    for op, ino, block in ops:
        changes.changed(STAT._replace(ino=ino))
        if op == "fetch":
            generation = cache.generation(ino)
            current.setdefault(ino, []).append(generation)
            assert cache.put(ino, block * 300, bytes(300), generation)
        elif op == "late-put":
            for generation in stale.get(ino, []):
                assert not cache.put(ino, block * 300, bytes(300), generation)
        elif op in ("invalidate", "write"):
            if op == "invalidate":
                cache.invalidate(ino)
            else:
                cache.drop_range(ino, block * 300, block * 300 + 1, 300)
            stale.setdefault(ino, []).extend(current.pop(ino, []))
        elif op == "forget":
            cache.forget(ino)
        else:
            cache.remember(ino)
    for ino in range(5):
        cache.forget(ino)
        cache.invalidate(ino)
    assert cache.tracked_inodes == 0 and len(changes) == 0
