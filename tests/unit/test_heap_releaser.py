"""When a mount hands free heap pages back: after enough churn, in the background, one at a time."""

from __future__ import annotations

import threading

import pytest
import trio

from cephmount.fs import heap
from cephmount.fs.heap import RELEASE_AFTER_BYTES, RELEASE_AFTER_FORGETS, HeapReleaser


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
