"""When a mount hands free heap pages back: after enough churn, in the background, one at a time."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from cephmount.fs import heap
from cephmount.fs.heap import (
    HOLD_BACK_BYTES,
    RELEASE_AFTER_BYTES,
    RELEASE_AFTER_FORGETS,
    RELEASE_INTERVAL_S,
    HeapReleaser,
)


class HeldRelease:
    """Stands in for malloc_trim: signals each call and holds it until let go."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        self.entered.release()
        self.go.wait(10)

    async def entry(self) -> None:
        """Wait until the next call has begun."""
        await trio.to_thread.run_sync(self.entered.acquire)


@pytest.fixture
def release(monkeypatch: pytest.MonkeyPatch) -> HeldRelease:
    held = HeldRelease()
    monkeypatch.setattr(heap.memory, "release_free_memory", held)
    return held


async def test_data_and_forgets_each_bring_a_release(release: HeldRelease) -> None:
    release.go.set()
    releaser = HeapReleaser()
    async with trio.open_nursery() as nursery:
        releaser.attach(nursery)
        releaser.moved(RELEASE_AFTER_BYTES - 1)
        releaser.forgotten(RELEASE_AFTER_FORGETS - 1)
        assert releaser.releases == 0
        releaser.moved(1)
        await release.entry()
    async with trio.open_nursery() as nursery:  # the first release is over
        releaser.attach(nursery)
        releaser.forgotten(RELEASE_AFTER_FORGETS)
        await release.entry()
    assert (release.calls, releaser.releases) == (2, 2)


async def test_the_caller_never_waits_and_releases_never_overlap(release: HeldRelease) -> None:
    releaser = HeapReleaser()
    async with trio.open_nursery() as nursery:
        releaser.attach(nursery)
        releaser.moved(RELEASE_AFTER_BYTES)  # returns while the release is held
        await release.entry()
        releaser.moved(2 * RELEASE_AFTER_BYTES)
        assert releaser.releases == 1
        release.go.set()
    async with trio.open_nursery() as nursery:  # the first release is over
        releaser.attach(nursery)
        releaser.moved(RELEASE_AFTER_BYTES)
        await release.entry()
    assert (release.calls, releaser.releases) == (2, 2)


@pytest.fixture
def inline_releases(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Releases run in the trio thread, each noting the trio time it ran at."""
    times: list[float] = []

    async def run_inline(function: object, *args: object) -> None:
        await trio.lowlevel.checkpoint()
        times.append(trio.current_time())

    monkeypatch.setattr(heap.trio.to_thread, "run_sync", run_inline)
    return times


async def test_data_calls_for_a_release_at_most_once_an_interval(
        inline_releases: list[float], mock_clock: trio.testing.MockClock) -> None:
    """A data stream is not made to fault its buffers in afresh every 16 MiB; the
    release it called for meanwhile still comes, after the interval."""
    releaser = HeapReleaser()
    async with trio.open_nursery() as nursery:
        releaser.attach(nursery)
        releaser.moved(RELEASE_AFTER_BYTES)
        await trio.testing.wait_all_tasks_blocked()
        assert len(inline_releases) == 1
        releaser.moved(RELEASE_AFTER_BYTES)
        mock_clock.jump(RELEASE_INTERVAL_S / 2)
        releaser.moved(4 * RELEASE_AFTER_BYTES)
        await trio.testing.wait_all_tasks_blocked()
        assert len(inline_releases) == 1
        mock_clock.jump(RELEASE_INTERVAL_S / 2)
        await trio.testing.wait_all_tasks_blocked()
        assert inline_releases[1] - inline_releases[0] == RELEASE_INTERVAL_S
        assert releaser.releases == 2


@pytest.mark.parametrize("data_release_waiting", [False, True])
async def test_forgets_call_for_a_release_at_once(
        inline_releases: list[float], mock_clock: trio.testing.MockClock,
        data_release_waiting: bool) -> None:
    """Inode churn moves little data: its releases are not held back, nor is a data
    release already waiting when the forgets come due."""
    releaser = HeapReleaser()
    async with trio.open_nursery() as nursery:
        releaser.attach(nursery)
        releaser.moved(RELEASE_AFTER_BYTES)
        await trio.testing.wait_all_tasks_blocked()
        if data_release_waiting:
            releaser.moved(RELEASE_AFTER_BYTES)
            await trio.testing.wait_all_tasks_blocked()
        releaser.forgotten(RELEASE_AFTER_FORGETS)
        await trio.testing.wait_all_tasks_blocked()
        assert inline_releases == [inline_releases[0]] * 2


async def test_a_fast_stream_does_not_hold_a_release_back_for_long(
        inline_releases: list[float], mock_clock: trio.testing.MockClock) -> None:
    """Free pages pile up as data moves: a waiting release goes at once after
    HOLD_BACK_BYTES, whatever the interval."""
    releaser = HeapReleaser()
    async with trio.open_nursery() as nursery:
        releaser.attach(nursery)
        releaser.moved(RELEASE_AFTER_BYTES)
        await trio.testing.wait_all_tasks_blocked()
        releaser.moved(HOLD_BACK_BYTES - 1)
        await trio.testing.wait_all_tasks_blocked()
        assert len(inline_releases) == 1
        releaser.moved(1)
        await trio.testing.wait_all_tasks_blocked()
        assert inline_releases == [inline_releases[0]] * 2
