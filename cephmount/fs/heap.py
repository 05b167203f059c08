"""When a mount hands the free pages of glibc's heaps back to the system.

Two kinds of churn leave free pages resident in the heaps (host/memory.py):
- inodes that come and go fragment them: libcephfs's long-lived cache entries sit
  among the freed records of inodes that went (docs/reliability.md);
- data buffers: reads and writes move 1 MiB buffers, which come from the heaps
  (below the mmap threshold, so that their pages are reused rather than mapped and
  zeroed afresh for every request) and leave free chunks between peaks.

After every RELEASE_AFTER_FORGETS forgotten inodes or RELEASE_AFTER_BYTES of data
moved, whichever comes first, one release runs in a worker thread, in the
background: a request never waits for it, and releases never overlap.

A release hands back every free page, and a data stream then faults its next
buffers in afresh: releasing after every 16 MiB of a write stream re-faulted most of
its pages (measured in docs/performance.md). So releases that data alone calls for come at
most once every RELEASE_INTERVAL_S: one called for sooner waits, and stands for all
the data moved meanwhile, up to HOLD_BACK_BYTES (then it goes at once, so that a fast
stream cannot pile up free pages for a whole interval). That waiting release is also
the one that follows the last burst, so the heaps are trimmed within
RELEASE_INTERVAL_S of data stopping. Forgets are not held back: inode churn moves
little data.
"""

from __future__ import annotations

import math

import trio

from cephmount.host import memory

RELEASE_AFTER_FORGETS = 1024
RELEASE_AFTER_BYTES = 16 << 20
RELEASE_INTERVAL_S = 1.0
HOLD_BACK_BYTES = 64 << 20


class HeapReleaser:
    def __init__(self) -> None:
        self.releases = 0
        self._forgets = 0
        self._bytes = 0
        self._releasing = False
        self._last_release = -math.inf  # trio time a release ended
        self._held_back: trio.CancelScope | None = None  # a data release waiting
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Releases run in the mount's nursery; none before this."""
        self._nursery = nursery

    def forgotten(self, count: int) -> None:
        """The kernel forgot `count` inodes."""
        self._forgets += count
        self._release_if_due()

    def moved(self, size: int) -> None:
        """A buffer of `size` bytes was read from or written to libcephfs."""
        self._bytes += size
        self._release_if_due()

    def _release_if_due(self) -> None:
        forgets_due = self._forgets >= RELEASE_AFTER_FORGETS
        if self._held_back is not None and (forgets_due or self._bytes >= HOLD_BACK_BYTES):
            self._held_back.cancel()  # the waiting release goes now
        due = forgets_due or self._bytes >= RELEASE_AFTER_BYTES
        if not due or self._releasing or self._nursery is None:
            return
        self._releasing = True
        self._nursery.start_soon(self._release, self._forgets < RELEASE_AFTER_FORGETS)

    async def _release(self, for_data_only: bool) -> None:
        try:
            if for_data_only:
                with trio.CancelScope() as self._held_back:
                    await trio.sleep_until(self._last_release + RELEASE_INTERVAL_S)
                self._held_back = None
            self._forgets = self._bytes = 0
            self.releases += 1
            await trio.to_thread.run_sync(memory.release_free_memory)
        finally:
            self._last_release = trio.current_time()
            self._releasing = False
