"""When the kernel may serve a directory's listing from its cache (pure logic)."""

from __future__ import annotations

import errno
from types import SimpleNamespace
from typing import Any, cast

import pyfuse3
import pytest

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.structs import Inode, StatX
from cephmount.fs.coherence import ListingVersions
from cephmount.fs.operations import CephOperations
from cephmount.fs.options import Coherence
from tests.unit.test_bookkeeping import STAT

DIR, ENTRY = 10, 11


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_an_unchanged_directory_keeps_its_listing() -> None:
    listings = ListingVersions(100)
    assert not listings.unchanged(DIR, STAT)  # never seen: nothing to keep
    assert listings.unchanged(DIR, STAT)
    for moved in ({"version": STAT.version + 1}, {"mtime_ns": STAT.mtime_ns + 1},
                  {"ctime_ns": STAT.ctime_ns + 1}):
        assert not listings.unchanged(DIR, STAT._replace(**moved))
        assert not listings.unchanged(DIR, STAT)
        assert listings.unchanged(DIR, STAT)


def test_a_directory_listed_then_statted_is_listed_afresh_for_a_while() -> None:
    clock = Clock()
    listings = ListingVersions(100, clock)
    assert listings.may_cache(DIR)
    listings.listed(ENTRY, DIR)
    for _ in range(ListingVersions.LOOKUPS_MEAN_STATS):
        listings.statted(ENTRY)
    assert not listings.may_cache(DIR)
    clock.now += ListingVersions.FRESH_FOR / 2
    assert not listings.may_cache(DIR)
    clock.now += ListingVersions.FRESH_FOR
    assert listings.may_cache(DIR)
    for _ in range(ListingVersions.LOOKUPS_MEAN_STATS - 1):
        listings.looked_up(DIR)  # a few lookups are no `ls -l`
    assert listings.may_cache(DIR)


def test_forgetting_a_directory_leaves_nothing_of_it() -> None:
    listings = ListingVersions(100)
    listings.unchanged(DIR, STAT)
    listings.may_cache(DIR)
    listings.listed(ENTRY, DIR)
    listings.forget(ENTRY)
    listings.forget(DIR)
    assert len(listings) == 0 and not listings.unchanged(DIR, STAT)


def test_the_entries_listed_after_one_are_those_ls_l_stats_next() -> None:
    listings = ListingVersions(100)
    listings.listing_started(DIR)
    for entry in range(100, 110):
        listings.listed(entry, DIR)
    assert listings.following(103, 3) == [104, 105, 106]
    assert listings.following(108, 5) == [109]
    assert listings.following(999, 5) == []  # never listed
    listings.listing_started(DIR)  # listed again from the start: the old order is gone
    listings.listed(105, DIR)
    assert listings.following(103, 3) == [] and listings.following(105, 3) == []


class FakeCeph:
    """The calls a getattr makes of AsyncCephClient; counts the batches fetched ahead."""

    def __init__(self) -> None:
        self.sync = self
        self.batches = 0

    async def getattr(self, inode: Any, cred: Any) -> StatX:
        return STAT

    async def for_each_inode(self, numbers: list[int], call: Any) -> list[StatX]:
        self.batches += 1
        return [STAT._replace(ino=number) for number in numbers]

    def drop_lookups(self) -> int:
        return 0

    def native_inode(self, inode: Any, fuse_ino: int, ttl: float) -> Any:
        raise OSError(errno.ENOSYS, "no native attributes here")


@pytest.mark.parametrize(("coherence", "batches"), [(Coherence.DEFAULT, 1),
                                                    (Coherence.STRICT, 0)])
async def test_attributes_are_fetched_ahead_only_where_they_can_be_kept(
        coherence: Coherence, batches: int) -> None:
    """Strict mode keeps no attributes: fetching 32 ahead for each stat would be waste
    (an `ls -l` of 50,000 entries in strict mode ran past the bench's time limit)."""
    ceph = FakeCeph()
    ops = CephOperations(cast(AsyncCephClient, ceph), Inode(7, None), coherence=coherence)
    ops._listings.listing_started(DIR)
    for entry in (pyfuse3.ROOT_INODE, 20, 21):
        ops._listings.listed(entry, DIR)
    await ops.getattr(pyfuse3.ROOT_INODE, SimpleNamespace(uid=0, gid=0, pid=0))  # type: ignore
    assert ceph.batches == batches
