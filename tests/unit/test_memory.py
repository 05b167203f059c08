"""A fragmented heap's free pages go back to the system: no cluster, this process's malloc."""

from __future__ import annotations

import ctypes
import os

from cephmount.host import memory
from tests.soak.churn import rss_bytes

CHUNK = 1024
CHUNKS = 64 * 1024  # 64 MiB
KEEP_EVERY = 16  # one live chunk per 16 KiB: no free space at the heap's top to shrink


def test_free_pages_among_live_chunks_are_given_back() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    chunks = [libc.malloc(CHUNK) for _ in range(CHUNKS)]
    for chunk in chunks:
        ctypes.memset(chunk, 1, CHUNK)
    kept = chunks[::KEEP_EVERY]
    for index, chunk in enumerate(chunks):
        if index % KEEP_EVERY:
            libc.free(chunk)
    try:
        freed = (CHUNKS - len(kept)) * CHUNK
        before = rss_bytes(os.getpid())
        memory.release_free_memory()
        assert before - rss_bytes(os.getpid()) >= freed // 2, (before, freed)
    finally:
        for chunk in kept:
            libc.free(chunk)
