"""Names read ahead of a listing's next request (pure logic: a fake libcephfs read)."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from cephmount.ceph.errors import CephError
from cephmount.ceph.structs import DirEntry, DirHandle, NameBatch, StatX
from cephmount.fs.dirahead import ListingAhead

HANDLE = DirHandle(1, None)
FH = 7


class SlowDirectory:
    """A directory of numbered names whose reads finish only when let go."""

    def __init__(self) -> None:
        self.let_go = trio.Event()
        self.in_flight = 0
        self.overlapped = False
        self.fail: type[Exception] | None = None

    async def read(self, handle: DirHandle, offset: int) -> NameBatch:
        self.overlapped |= self.in_flight > 0
        self.in_flight += 1
        try:
            await self.let_go.wait()
            if self.fail is CephError:
                raise CephError(errno.EIO, "getdents")
            if self.fail is not None:
                raise self.fail("not libcephfs's")
            return NameBatch.of([DirEntry(b"n%d" % n, StatX.of_type(100 + n, 0o100000), n + 1)
                                 for n in range(offset, offset + 3)])
        finally:
            self.in_flight -= 1


async def _started(directory: SlowDirectory, nursery: trio.Nursery) -> ListingAhead:
    ahead = ListingAhead(directory.read)
    ahead.attach(nursery)
    ahead.start(FH, HANDLE, 3)
    await trio.testing.wait_all_tasks_blocked()
    return ahead


async def test_the_next_request_gets_the_names_read_ahead_once_the_read_is_over() -> None:
    directory = SlowDirectory()
    async with trio.open_nursery() as nursery:
        ahead = await _started(directory, nursery)
        ahead.start(FH, HANDLE, 3)  # one read per handle at a time
        assert directory.in_flight == 1
        nursery.start_soon(lambda: _let_go_later(directory))
        names = await ahead.take(FH, 3)
        assert names is not None
        assert [entry.name for entry in names.entries()] == [b"n3", b"n4", b"n5"]
        assert directory.in_flight == 0 and not directory.overlapped
        assert await ahead.take(FH, 6) is None  # taken once only
        assert ahead.used == 1


async def _let_go_later(directory: SlowDirectory) -> None:
    await trio.testing.wait_all_tasks_blocked()
    directory.let_go.set()


async def test_a_request_elsewhere_waits_for_the_read_and_gets_nothing() -> None:
    """A request at another offset (a seek) reads for itself, but only once the
    handle is free: libcephfs's directory handle is not safe to share."""
    directory = SlowDirectory()
    async with trio.open_nursery() as nursery:
        ahead = await _started(directory, nursery)
        nursery.start_soon(lambda: _let_go_later(directory))
        assert await ahead.take(FH, 0) is None
        assert directory.in_flight == 0


async def test_releasing_the_handle_waits_for_the_read() -> None:
    directory = SlowDirectory()
    async with trio.open_nursery() as nursery:
        ahead = await _started(directory, nursery)
        nursery.start_soon(lambda: _let_go_later(directory))
        await ahead.drop(FH)
        assert directory.in_flight == 0
        assert await ahead.take(FH, 3) is None


@pytest.mark.parametrize("error", [CephError, RuntimeError])
async def test_a_failed_read_is_forgotten_for_the_request_to_meet_itself(
        error: type[Exception], caplog: pytest.LogCaptureFixture) -> None:
    """Reading ahead is an optimisation: an error that is not libcephfs's (a bug, no
    thread to be had) ends only the read ahead, not the mount's nursery, and is logged."""
    directory = SlowDirectory()
    directory.fail = error
    async with trio.open_nursery() as nursery:
        ahead = await _started(directory, nursery)
        nursery.start_soon(lambda: _let_go_later(directory))
        assert await ahead.take(FH, 3) is None
        ahead.start(FH, HANDLE, 3)  # and a new read may start
        directory.fail = None
        names = await ahead.take(FH, 3)
        assert names is not None and [entry.offset for entry in names.entries()] == [4, 5, 6]
    logged = "reading the names of a listing ahead failed" in caplog.text
    assert logged == (error is RuntimeError)


async def test_nothing_is_read_ahead_before_the_mount_runs() -> None:
    directory = SlowDirectory()
    ahead = ListingAhead(directory.read)
    ahead.start(FH, HANDLE, 3)
    assert directory.in_flight == 0
    assert await ahead.take(FH, 3) is None
