"""How a blocking call's result comes back to trio (pure logic: no cluster, real threads)."""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import cast

import outcome
import pytest
import trio
import trio.testing

from cephmount.ceph.aio import AsyncCephClient, _Doorbell, _Result
from cephmount.ceph.client import CephClient

SLOW_S = 0.3


def _client(max_threads: int = 16) -> AsyncCephClient:
    return AsyncCephClient(cast(CephClient, None), max_threads)


def _fail(message: str) -> None:
    raise ValueError(message)


def _slowly(value: int) -> int:
    time.sleep(SLOW_S)
    return value


async def test_a_calls_value_or_error_comes_back() -> None:
    client = _client()
    assert await client.run(lambda: 42) == 42
    with pytest.raises(ValueError, match="slow"):
        await client.run(lambda: (time.sleep(SLOW_S), _fail("slow")))
    assert client.limiter.borrowed_tokens == 0


async def test_a_result_is_taken_whichever_thread_comes_first() -> None:
    """The worker may deliver before the task starts waiting in trio, or after."""
    early = _Result(_Doorbell())
    early.deliver(outcome.Value(1))
    assert await early.wait() == 1
    late = _Result(_Doorbell())
    threading.Timer(0.05, late.deliver, (outcome.Value(2),)).start()
    assert await late.wait() == 2


async def test_a_ring_left_by_an_earlier_call_does_not_end_the_wait() -> None:
    """A bell is used again: a call whose outcome was in before its ring came left it."""
    bell = _Doorbell()
    bell.ring()
    result = _Result(bell)
    threading.Timer(0.05, result.deliver, (outcome.Value(3),)).start()
    assert await result.wait() == 3


async def test_a_cancelled_caller_starts_no_call() -> None:
    client, started = _client(), []
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.run(lambda: started.append(1))
    assert scope.cancelled_caught and not started
    assert client.limiter.borrowed_tokens == 0


async def test_a_started_call_is_not_abandoned_when_its_caller_is_cancelled() -> None:
    """What the call returns (a reference, a handle) reaches the caller all the same;
    the cancellation comes at the caller's next checkpoint."""
    client, got = _client(), []
    with trio.move_on_after(SLOW_S / 6) as scope:
        got.append(await client.run(lambda: _slowly(7)))
        await trio.sleep(0)
    assert got == [7] and scope.cancelled_caught
    assert client.limiter.borrowed_tokens == 0


async def test_a_slow_call_leaves_trio_free_to_run_everything_else() -> None:
    client, ticks = _client(), 0

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
    assert ticks >= 5, ticks  # none at all if the trio thread waited for the call


async def test_a_task_made_ready_runs_while_a_call_goes_on() -> None:
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


async def test_a_call_beside_others_in_flight_comes_back_on_its_own() -> None:
    client = _client()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run, lambda: _slowly(1))
        await trio.testing.wait_all_tasks_blocked()
        started = time.monotonic()
        assert await client.run(lambda: 2) == 2
        assert time.monotonic() - started < SLOW_S / 2


async def test_no_more_calls_run_at_once_than_the_limiter_allows() -> None:
    client = _client(max_threads=2)
    running, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(client.run, call)
    assert most == 2


async def test_calls_keep_no_more_fds_than_were_ever_in_flight() -> None:
    client = _client()
    before = len(os.listdir("/proc/self/fd"))

    async def calls() -> None:
        for _ in range(50):
            await client.run(lambda: time.sleep(0.001))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(calls)
    assert len(os.listdir("/proc/self/fd")) - before <= 4


async def test_a_call_that_gets_no_bell_gives_its_token_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of file descriptors, a call fails, and later calls are not stalled by it."""
    client = _client(max_threads=1)

    def no_fds(*args: object) -> int:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    with monkeypatch.context() as patched:
        patched.setattr(os, "eventfd", no_fds)
        for _ in range(2):
            with pytest.raises(OSError):
                await client.run(lambda: 1)
    assert client.limiter.borrowed_tokens == 0
    with trio.fail_after(5):
        assert await client.run(lambda: 2) == 2


async def test_a_ring_that_comes_while_the_bell_is_cleared_is_not_lost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The outcome is looked for after the bell is cleared, never before: a call that
    ends between the two would otherwise leave the wait with no ring to come."""
    bell = _Doorbell()
    bell.ring()  # left by an earlier call
    result = _Result(bell)
    clear = _Doorbell.clear

    def deliver_then_clear(self: _Doorbell) -> None:
        result.deliver(outcome.Value(4))
        clear(self)

    monkeypatch.setattr(_Doorbell, "clear", deliver_then_clear)
    rescue = threading.Timer(SLOW_S * 5, bell.ring)  # a wait that lost the ring ends
    rescue.start()
    started = time.monotonic()
    try:
        assert await result.wait() == 4
    finally:
        rescue.cancel()
    assert time.monotonic() - started < SLOW_S
