"""SessionKeeper's own logic, on fakes: one reconnection for every request that meets
a loss, each request retried once, failed reconnections answered EIO and not retried
in a loop. The real thing (a real eviction) is in tests/fuse/test_faults.py."""

from __future__ import annotations

import errno
import threading
from types import SimpleNamespace
from typing import Any, cast

import pyfuse3
import pytest
import trio

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.client import CephClient
from cephmount.ceph.errors import CephError
from cephmount.ceph.structs import DirEntry, DirHandle, Inode, StatX
from cephmount.fs import operations, session
from cephmount.fs.handles import HandleStore
from cephmount.fs.operations import CephOperations
from cephmount.fs.options import Coherence
from cephmount.fs.session import SessionKeeper, SessionLost, session_lost


class FakeClient:
    def __init__(self, number: int) -> None:
        self.number = number
        self.lost = False
        self.call_in_flight = threading.Event()
        self.call_in_flight.set()
        self.aborted = False

    def abort(self) -> None:
        self.call_in_flight.wait()  # as CephClient.abort waits for calls in flight
        self.lost = self.aborted = True


class FakeOperations:
    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.native_closed_before_abort: bool | None = None

    async def getattr(self, inode: int, ctx: Any) -> int:
        await trio.sleep(0.01)
        if self.client.lost:
            raise SessionLost
        return self.client.number

    def detach(self, wait: bool = True) -> None:
        pass

    def close_native(self) -> None:
        self.native_closed_before_abort = not self.client.aborted

    def succeed(self, lost: FakeOperations) -> None:
        pass

    def attach(self, nursery: trio.Nursery) -> None:
        pass


class Cluster:
    """Hands out clients; `down` makes connecting fail, `evicting` evicts at once."""

    def __init__(self) -> None:
        self.attempts = 0
        self.down = False
        self.evicting = False

    def connect(self) -> CephClient:
        self.attempts += 1
        if self.down:
            raise OSError(errno.ETIMEDOUT, "no answer from the monitors")
        client = FakeClient(self.attempts)
        client.lost = self.evicting
        return cast(CephClient, client)


def keeper_for(cluster: Cluster, nursery: trio.Nursery) -> SessionKeeper:
    keeper = SessionKeeper("/mnt", cluster.connect(), cluster.connect,
                           lambda client: cast(CephOperations, FakeOperations(
                               cast(FakeClient, client))))
    keeper.attach(nursery)
    cast(FakeOperations, keeper.current).client.lost = True
    return keeper


async def getattr_of(keeper: SessionKeeper, answers: list[int]) -> None:
    answers.append(await keeper.getattr(1, None))  # type: ignore[arg-type]


async def test_requests_that_meet_a_loss_share_one_new_session() -> None:
    cluster = Cluster()
    answers: list[int] = []
    async with trio.open_nursery() as nursery:
        keeper = keeper_for(cluster, nursery)
        lost = cast(FakeOperations, keeper.current)
        async with trio.open_nursery() as requests:
            for _ in range(10):
                requests.start_soon(getattr_of, keeper, answers)
    assert answers == [2] * 10 and cluster.attempts == 2
    # No request reaches the lost client's handlers in C once it may be freed.
    assert lost.native_closed_before_abort and lost.client.aborted


async def test_a_failed_reconnection_answers_eio_and_waits_before_the_next() -> None:
    cluster = Cluster()
    async with trio.open_nursery() as nursery:
        keeper = keeper_for(cluster, nursery)
        cluster.down = True
        for _ in range(3):
            with pytest.raises(pyfuse3.FUSEError) as failed:
                await getattr_of(keeper, [])
            assert failed.value.errno == errno.EIO
    assert cluster.attempts == 2  # the mount's own and one retry, not one per request


async def test_a_request_is_retried_once() -> None:
    cluster = Cluster()
    async with trio.open_nursery() as nursery:
        keeper = keeper_for(cluster, nursery)
        cluster.evicting = True
        with pytest.raises(pyfuse3.FUSEError) as failed:
            await getattr_of(keeper, [])
        assert failed.value.errno == errno.EIO and cluster.attempts == 2
        cluster.evicting = False
        answers: list[int] = []
        await getattr_of(keeper, answers)  # the next request reconnects
        assert answers == [3]


async def test_a_lost_client_stuck_in_a_call_does_not_hold_the_mount(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "DROP_WAIT_S", 0.1)
    cluster = Cluster()
    answers: list[int] = []
    async with trio.open_nursery() as nursery:
        keeper = keeper_for(cluster, nursery)
        stuck = cast(FakeOperations, keeper.current).client
        stuck.call_in_flight.clear()
        with trio.fail_after(10):
            await getattr_of(keeper, answers)
        stuck.call_in_flight.set()
    assert answers == [2]


STAT = StatX(mask=0, ino=0, mode=0o100644, nlink=1, uid=0, gid=0, rdev=0, size=0, blocks=0,
             blksize=4096, atime_ns=0, mtime_ns=0, ctime_ns=0, btime_ns=0, version=1)
ENTRIES = 5


class FakeCeph:
    """What a listing asks of AsyncCephClient; the session is lost after `batches` batches."""

    def __init__(self, batches: int) -> None:
        self.sync = self
        self.batches = batches

    def register_callbacks(self, **callbacks: Any) -> None:
        pass

    def abort(self) -> None:
        pass

    def drop_lookups(self) -> int:
        return 0

    async def opendir(self, inode: Inode, cred: Any) -> DirHandle:
        return DirHandle(inode.ino, None)

    async def readdir_batch(self, handle: DirHandle, offset: int, limit: int,
                            **kwargs: Any) -> list[DirEntry]:
        if self.batches == 0:
            raise CephError(errno.ESHUTDOWN, "ll_readdir")
        self.batches -= 1
        return [DirEntry(f"e{n}".encode(), STAT._replace(ino=100 + n), n + 1)
                for n in range(offset, min(offset + limit, ENTRIES))]


async def test_a_listing_retried_on_a_new_session_repeats_no_entry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "READDIR_BATCH", 2)
    sent: list[bytes] = []

    def reply(token: Any, name: bytes, entry: Any, offset: int) -> bool:
        sent.append(name)
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    handles = HandleStore()
    clients = iter([FakeCeph(batches=1), FakeCeph(batches=99)])

    def build(client: CephClient) -> CephOperations:
        # strict: the listing goes to libcephfs, with no kernel cache of it to manage
        return CephOperations(cast(AsyncCephClient, client), Inode(1, None), handles=handles,
                              coherence=Coherence.STRICT, on_session_lost=session_lost)

    async with trio.open_nursery() as nursery:
        keeper = SessionKeeper("/mnt", cast(CephClient, next(clients)),
                               lambda: cast(CephClient, next(clients)), build)
        keeper.attach(nursery)
        info = await keeper.opendir(1, SimpleNamespace(uid=0, gid=0, pid=0))  # type: ignore
        token = SimpleNamespace(plus=True)
        offset = 0
        while True:  # as the kernel lists: from the last entry it got, until none come
            before = len(sent)
            await keeper.readdir(info.fh, offset, token)  # type: ignore[arg-type]
            if len(sent) == before:
                break
            offset = int(sent[-1][1:]) + 1
        keeper.detach()
    assert sent == [f"e{n}".encode() for n in range(ENTRIES)]
