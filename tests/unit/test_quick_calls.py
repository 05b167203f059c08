"""How a blocking call's result comes back to trio (pure logic: no cluster, real threads)."""

from __future__ import annotations

import os
import threading
import time
from typing import cast

import outcome
import pytest
import trio
import trio.testing

from cephmount.ceph import aio
from cephmount.ceph.aio import QUICK_WAIT_S, AsyncCephClient, _QuickWaiter, _Result
from cephmount.ceph.client import CephClient

SLOW_S = 0.3


@pytest.fixture
def roomy_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quick wait long enough for a thread to be woken on a loaded machine."""
    monkeypatch.setattr(aio, "QUICK_WAIT_S", 1.0)


def _client(max_threads: int = 16) -> AsyncCephClient:
    return AsyncCephClient(cast(CephClient, None), max_threads)


def _fail(message: str) -> None:
    raise ValueError(message)


def _slowly(value: int) -> int:
    time.sleep(SLOW_S)
    return value


async def test_a_quick_call_alone_is_waited_for_on_the_trio_thread(roomy_wait: None) -> None:
    client = _client()
    assert await client.run(lambda: 42) == 42
    assert client.quick_calls == 1


async def test_a_calls_error_comes_back_however_it_is_waited_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client()
    with pytest.raises(ValueError, match="quick"):
        await client.run(lambda: _fail("quick"))
    monkeypatch.setattr(aio, "QUICK_WAIT_S", 0.0)
    with pytest.raises(ValueError, match="slow"):
        await client.run(lambda: (time.sleep(SLOW_S), _fail("slow")))
    assert client.limiter.borrowed_tokens == 0


async def test_a_result_is_taken_whichever_thread_comes_first() -> None:
    """The worker may deliver before trio starts waiting in trio, or after."""
    waiter = _QuickWaiter(lambda: -1)
    early = _Result()
    assert early.quick(0, waiter) is None
    early.deliver(outcome.Value(1))
    assert await early.wait() == 1
    late = _Result()
    threading.Timer(0.05, late.deliver, (outcome.Value(2),)).start()
    assert late.quick(0, waiter) is None
    assert await late.wait() == 2


async def test_a_cancelled_caller_starts_no_call() -> None:
    client, started = _client(), []
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.run(lambda: started.append(1))
    assert scope.cancelled_caught and not started
    assert client.limiter.borrowed_tokens == 0


async def _ticks_during_a_slow_call(client: AsyncCephClient) -> int:
    """How often a task of 10 ms ticks ran on the trio thread while a slow call ran."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        await trio.sleep(0)
        assert await client.run(lambda: _slowly(7)) == 7
        nursery.cancel_scope.cancel()
    return ticks


async def test_a_slow_call_leaves_trio_free_to_run_everything_else() -> None:
    client = _client()
    ticks = await _ticks_during_a_slow_call(client)
    assert ticks >= 5, ticks  # none at all if the trio thread waited for the call
    assert client.quick_calls == 0


async def test_a_call_beside_others_in_flight_is_waited_for_in_trio() -> None:
    """Then trio has their results to take too: no call blocks it, even briefly."""
    client = _client()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run, lambda: _slowly(1))
        await trio.testing.wait_all_tasks_blocked()
        started = time.monotonic()
        assert await client.run(lambda: 2) == 2
        assert time.monotonic() - started < SLOW_S / 2
    assert client.quick_calls == 0


async def test_no_more_calls_run_at_once_than_the_limiter_allows() -> None:
    client = _client(max_threads=2)
    running, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(QUICK_WAIT_S * 100)
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(client.run, call)
    assert most == 2


async def test_a_quick_wait_ends_when_requests_come(roomy_wait: None) -> None:
    """The trio thread stops waiting for a call once requests wait for it (the fd
    pyfuse3's readers make readable), and takes them while the call goes on."""
    waiting = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    request = threading.Timer(0.05, os.eventfd_write, (waiting, 1))
    try:
        client = AsyncCephClient(cast(CephClient, None), waiting=lambda: waiting)
        request.start()
        ticks = await _ticks_during_a_slow_call(client)
        # 0.3 s of call, 0.25 s of it after the request came: blocked for all of it
        # (no tick at all) if the request went unseen
        assert ticks >= 10, ticks
        assert client.quick_calls == 0

        os.eventfd_read(waiting)  # no request waits: the next call is quick again,
        assert await client.run(lambda: 8) == 8  # though the last one rang the bell late
        assert client.quick_calls == 1
    finally:
        request.join()
        os.close(waiting)


async def test_a_task_ready_to_run_runs_before_the_trio_thread_waits(
        roomy_wait: None) -> None:
    """A task another made runnable is not held up by the wait for a call."""
    client = _client()
    woken, ran_at = trio.Event(), []

    async def sleeper() -> None:
        await woken.wait()
        ran_at.append(time.monotonic())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        woken.set()
        started = time.monotonic()
        assert await client.run(lambda: _slowly(9)) == 9
    assert ran_at[0] - started < SLOW_S / 2
