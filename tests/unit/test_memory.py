"""A fragmented heap's free pages go back to the system: no cluster, this process's malloc."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys

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


# A fresh process with the mount's malloc settings; each script prints a count of
# minor page faults.
TUNED = """
import ctypes, resource, threading
from cephmount.host import memory
memory.tune_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
"""

BUFFER_FAULTS = TUNED + """
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(64):
    buffer = libc.malloc(1 << 20)
    ctypes.memset(buffer, 1, 1 << 20)
    libc.free(buffer)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

CROSS_THREAD_FAULTS = TUNED + """
def touched_buffers():
    buffers = [libc.malloc(1 << 20) for _ in range(32)]
    for buffer in buffers:
        ctypes.memset(buffer, 1, 1 << 20)
    return buffers

freed = touched_buffers()
above = libc.malloc(256 << 10)  # from the top: the freed buffers are not the top glibc trims
for buffer in freed:
    libc.free(buffer)
faults = []

def other_thread():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    touched_buffers()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

thread = threading.Thread(target=other_thread)
thread.start()
thread.join()
print(faults[0])
"""
# Faulting in about one 1 MiB buffer's pages, not one per buffer used.
FEW_FAULTS = 4 * (1 << 20) // resource.getpagesize()


def _faults(script: str) -> int:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, timeout=60, check=True)
    return int(result.stdout)


def test_a_freed_data_buffer_is_reused_not_faulted_in_again() -> None:
    """64 reads' worth of 1 MiB buffers fault in the pages of about one, not of 64."""
    faults = _faults(BUFFER_FAULTS)
    assert faults < FEW_FAULTS, faults


def test_a_buffer_freed_by_one_thread_is_reused_by_another() -> None:
    """A FUSE request's buffer is freed by one thread and the next one allocated by
    another (ours, pyfuse3's, libcephfs's): with an arena per thread, each arena grows
    by the buffers the others freed, and the mount's RSS with it."""
    faults = _faults(CROSS_THREAD_FAULTS)
    assert faults < FEW_FAULTS, faults
