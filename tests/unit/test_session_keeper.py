"""SessionKeeper's own logic, on fakes: one reconnection for every request that meets
a loss, each request retried once, failed reconnections answered EIO and not retried
in a loop. The real thing (a real eviction) is in tests/fuse/test_faults.py."""

from __future__ import annotations

import errno
import threading
from typing import Any, cast

import pyfuse3
import pytest
import trio

from cephmount.ceph.client import CephClient
from cephmount.fs import session
from cephmount.fs.operations import CephOperations
from cephmount.fs.session import SessionKeeper, SessionLost


class FakeClient:
    def __init__(self, number: int) -> None:
        self.number = number
        self.lost = False
        self.call_in_flight = threading.Event()
        self.call_in_flight.set()

    def abort(self) -> None:
        self.call_in_flight.wait()  # as CephClient.abort waits for calls in flight
        self.lost = True


class FakeOperations:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    async def getattr(self, inode: int, ctx: Any) -> int:
        await trio.sleep(0.01)
        if self.client.lost:
            raise SessionLost
        return self.client.number

    def detach(self, wait: bool = True) -> None:
        pass

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
        async with trio.open_nursery() as requests:
            for _ in range(10):
                requests.start_soon(getattr_of, keeper, answers)
    assert answers == [2] * 10 and cluster.attempts == 2


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
