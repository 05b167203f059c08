"""The file handle table a successor server reads."""

from __future__ import annotations

import os
from pathlib import Path

from cephmount.fs.handles import FIRST_SLOTS, HandleKind, HandleStore


def test_handles_are_distinct_and_reused_after_free() -> None:
    store = HandleStore()
    first = store.allocate(0x10000000001, os.O_RDONLY, HandleKind.FILE)
    second = store.allocate(0x10000000002, os.O_RDWR, HandleKind.DIRECTORY)
    assert first != second and first > 0 and second > 0
    store.free(first)
    assert store.get(first) is None
    assert store.allocate(0x10000000003, 0, HandleKind.FILE) == first
    assert store.in_use() == 2


def test_a_successor_reads_what_a_predecessor_recorded(tmp_path: Path) -> None:
    path = tmp_path / "handles"
    predecessor = HandleStore(path)
    fh = predecessor.allocate(0x10000000abc, os.O_WRONLY | os.O_APPEND, HandleKind.FILE)
    gone = predecessor.allocate(0x10000000abd, 0, HandleKind.FILE)
    predecessor.free(gone)
    predecessor.mark_unsynced(fh, True)
    # The predecessor dies without closing anything: only the mapping's content remains.
    successor = HandleStore(path)
    record = successor.get(fh)
    assert record is not None
    assert (record.ceph_ino, record.flags, record.kind, record.unsynced) == (
        0x10000000abc, os.O_WRONLY | os.O_APPEND, HandleKind.FILE, True)
    assert successor.get(gone) is None
    assert successor.allocate(1, 0, HandleKind.FILE) != fh
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_table_grows_past_its_first_size(tmp_path: Path) -> None:
    store = HandleStore(tmp_path / "handles")
    handles = [store.allocate(n + 1, 0, HandleKind.FILE) for n in range(FIRST_SLOTS + 10)]
    assert len(set(handles)) == len(handles)
    last = store.get(handles[-1])
    assert last is not None and last.ceph_ino == FIRST_SLOTS + 10
    assert HandleStore(tmp_path / "handles").in_use() == FIRST_SLOTS + 10


def test_unknown_numbers_are_none() -> None:
    store = HandleStore()
    assert store.get(0) is None
    assert store.get(1 << 40) is None


def test_a_clean_stop_marks_every_handle_synced(tmp_path: Path) -> None:
    store = HandleStore(tmp_path / "handles")
    fh = store.allocate(7, os.O_WRONLY, HandleKind.FILE)
    store.mark_unsynced(fh, True)
    store.mark_all_synced()
    record = HandleStore(tmp_path / "handles").get(fh)
    assert record is not None and not record.unsynced
