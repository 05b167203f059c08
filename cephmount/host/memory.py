"""glibc's malloc in a long-lived mount: tuned at start, its free pages handed back as it runs."""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # from glibc's malloc.h
# Above the largest data buffer: blocks and FUSE requests are at most 1 MiB.
MMAP_THRESHOLD = 4 << 20
# Free space kept at a heap's top, as glibc keeps it with its own threshold: below
# this, every freed buffer at the top was handed back and the next one faulted in.
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

_libc = ctypes.CDLL(None)  # a foreign call: the GIL is released while it runs


def tune_malloc() -> None:
    """Reuse the pages of 1 MiB data buffers; keep freed ones from piling up.

    Reads and writes move 1 MiB buffers through many threads (ours and
    libcephfs's). Above the mmap threshold each is mapped afresh and its pages
    faulted in and zeroed: a third of a mount's CPU during a cold sequential read
    (perf; docs/performance.md). Below it they come from the heaps and reuse
    freed pages. glibc's own threshold climbs as it likes and every thread gets
    an arena, so freed buffers stayed mapped (a mount with a 32 MiB cache grew by
    300 MiB reading 600 MiB): a fixed threshold, and the mount hands free pages
    back now and then (fs/heap.py, `release_free_memory`). One arena for all
    threads: a buffer is often freed by another thread than the one that
    allocates the next (a block fetched by a worker and evicted by the FUSE
    thread; libcephfs's messages), and with an arena each, each arena grows by
    what the others freed, which only a release gives back (docs/performance.md).
    """
    _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    _libc.mallopt(M_ARENA_MAX, 1)


def release_free_memory() -> None:
    """Give the system back the whole free pages inside glibc's heaps (`malloc_trim(0)`).

    glibc returns memory on its own only from the top of a heap. Churning files
    leaves the heaps fragmented: libcephfs's long-lived cache entries (up to 16,384
    dentries) sit among the freed records of inodes that came and went, so the
    freed pages stay resident and the RSS creeps up while the memory in use stays
    flat (docs/reliability.md, "A long-lived mount stays flat"). Blocks other
    threads' malloc for the time it walks the heaps (milliseconds): call it now
    and then, from a worker thread.
    """
    _libc.malloc_trim(0)
