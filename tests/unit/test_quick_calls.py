"""How a blocking call's result comes back to trio (pure logic: no cluster, real threads)."""

from __future__ import annotations

import threading
import time
from typing import cast

import pytest
import trio
import trio.testing

from cephmount.ceph.aio import QUICK_WAIT_S, AsyncCephClient
from cephmount.ceph.client import CephClient

SLOW_S = 0.2


def _client(max_threads: int = 16) -> AsyncCephClient:
    return AsyncCephClient(cast(CephClient, None), max_threads)


def _fail(message: str) -> None:
    raise ValueError(message)


def _slowly(value: int) -> int:
    time.sleep(SLOW_S)
    return value


async def test_a_quick_call_alone_is_waited_for_on_the_trio_thread() -> None:
    client = _client()
    assert await client.run(lambda: 42) == 42
    assert client.quick_calls == 1


async def test_a_calls_error_comes_back_however_it_is_waited_for() -> None:
    client = _client()
    with pytest.raises(ValueError, match="quick"):
        await client.run(lambda: _fail("quick"))
    with pytest.raises(ValueError, match="slow"):
        await client.run(lambda: (time.sleep(SLOW_S), _fail("slow")))
    assert client.quick_calls == 1


async def test_a_slow_call_leaves_trio_free_to_run_everything_else() -> None:
    client = _client()
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
    assert ticks >= SLOW_S / 0.01 / 2, ticks
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
