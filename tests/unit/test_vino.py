"""Numbers for (inode number, snapshot id) pairs: see cephmount/ceph/vino.py."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cephmount.ceph.errors import CephError
from cephmount.ceph.vino import INO_MASK, NOSNAP, SNAPDIR, VinoNumbers, is_snapshot

inos = st.integers(min_value=1, max_value=INO_MASK)
snaps = st.one_of(st.just(NOSNAP), st.just(SNAPDIR), st.integers(min_value=1,
                                                                  max_value=NOSNAP - 1))


def test_a_head_inode_is_numbered_by_its_ceph_ino() -> None:
    numbers = VinoNumbers()
    assert numbers.number(2**40 + 7, NOSNAP) == 2**40 + 7
    assert not is_snapshot(2**40 + 7)


@given(inos, snaps, snaps)
def test_numbers_are_distinct_and_map_back(ino: int, snap: int, other: int) -> None:
    numbers = VinoNumbers()
    number = numbers.number(ino, snap)
    assert numbers.vino(number) == (ino, snap)
    assert is_snapshot(number) == (snap != NOSNAP)
    assert (numbers.number(ino, other) == number) == (other == snap)


@given(inos, st.integers(min_value=1, max_value=0x7FFE))
def test_small_snapshot_ids_are_found_again_by_another_process(ino: int, snap: int) -> None:
    """A successor server resolves such a number the kernel still holds."""
    assert VinoNumbers().vino(VinoNumbers().number(ino, snap)) == (ino, snap)
    assert VinoNumbers().vino(VinoNumbers().number(ino, SNAPDIR)) == (ino, SNAPDIR)


def test_a_tag_given_by_another_process_is_stale_not_misread() -> None:
    number = VinoNumbers().number(5 << 40, 10**9)
    with pytest.raises(CephError) as caught:
        VinoNumbers().vino(number)
    assert caught.value.errno == errno.ESTALE


def test_callbacks_never_give_tags() -> None:
    numbers = VinoNumbers()
    assert numbers.known_number(9, 10**9) is None
    given_number = numbers.number(9, 10**9)
    assert numbers.known_number(9, 10**9) == given_number
    assert numbers.known_number(9, 3) == 9 | 3 << 48
