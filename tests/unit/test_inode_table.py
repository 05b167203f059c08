"""The inode table's bookkeeping: one libcephfs reference per known inode."""

from __future__ import annotations

import errno
from dataclasses import dataclass

import pyfuse3
import pytest

from cephmount.fs.inodes import InodeTable

ROOT_CEPH_INO = 0x10000000000


@dataclass(frozen=True)
class Handle:
    ino: int
    ref: int  # which libcephfs reference this stands for


def test_root_maps_to_fuse_root_and_others_keep_cephs_number() -> None:
    table = InodeTable(Handle(ROOT_CEPH_INO, 0))
    assert table.to_fuse(ROOT_CEPH_INO) == pyfuse3.ROOT_INODE
    assert table.to_fuse(0x10000000123) == 0x10000000123
    assert table.handle(pyfuse3.ROOT_INODE).ino == ROOT_CEPH_INO


def test_second_lookup_hands_back_its_reference() -> None:
    table = InodeTable(Handle(ROOT_CEPH_INO, 0))
    first, second = Handle(7, 1), Handle(7, 2)
    assert table.add_lookup(first) == (7, None)
    assert table.add_lookup(second) == (7, second)
    assert table.handle(7) is first


def test_forget_releases_the_reference_with_the_last_lookup() -> None:
    table = InodeTable(Handle(ROOT_CEPH_INO, 0))
    kept = Handle(7, 1)
    table.add_lookup(kept)
    table.add_lookup(Handle(7, 2))
    table.add_lookup(Handle(7, 3))
    assert table.forget(7, 2) is None
    assert table.forget(7, 1) is kept
    with pytest.raises(pyfuse3.FUSEError):
        table.handle(7)


def test_root_is_never_forgotten_and_drain_returns_all() -> None:
    root = Handle(ROOT_CEPH_INO, 0)
    table = InodeTable(root)
    table.add_lookup(Handle(9, 1))
    assert table.forget(pyfuse3.ROOT_INODE, 5) is None
    assert set(table.drain()) == {root, Handle(9, 1)}
    assert len(table) == 0


def test_unknown_inode_is_stale() -> None:
    table = InodeTable(Handle(ROOT_CEPH_INO, 0))
    with pytest.raises(pyfuse3.FUSEError) as stale:
        table.handle(12345)
    assert stale.value.errno == errno.ESTALE
    assert table.forget(12345, 1) is None


def test_a_new_hard_link_counts_a_lookup_without_a_new_reference() -> None:
    table = InodeTable(Handle(ROOT_CEPH_INO, 0))
    kept = Handle(7, 1)
    table.add_lookup(kept)
    table.count_lookup(7)
    assert table.forget(7, 1) is None
    assert table.forget(7, 1) is kept
    with pytest.raises(pyfuse3.FUSEError):
        table.count_lookup(7)


def test_an_adopted_inode_serves_until_the_kernels_forget() -> None:
    table = InodeTable(Handle(ROOT_CEPH_INO, 0))
    found = Handle(9, 1)
    assert table.adopt(found) == (found, None)
    again = Handle(9, 2)
    assert table.adopt(again) == (found, again)  # one reference kept, the other to put
    assert table.handle(9) is found
    assert table.forget(9, 3) is found  # however many lookups the kernel forgets
    with pytest.raises(pyfuse3.FUSEError):
        table.handle(9)
