"""Erase a secret from this process's command line, as /proc/PID/cmdline shows it.

kubelet hands the PV's Secret to the driver inside its argv, which any local
user can read in /proc while the driver runs (mounting can take seconds).
Python keeps its own copy of the arguments, so the kernel's copy (the bytes
between `arg_start` and `arg_end` of /proc/self/stat) can be overwritten.
"""

from __future__ import annotations


def _argument_area() -> tuple[int, int]:
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    # Fields after the command name start at number 3; arg_start and arg_end are 48 and 49.
    return int(fields[48 - 3]), int(fields[49 - 3])


def erase(needle: bytes) -> None:
    """Overwrite every occurrence of `needle` in the process's argv with `*`."""
    if not needle:
        return
    start, end = _argument_area()
    with open("/proc/self/mem", "r+b", buffering=0) as memory:
        memory.seek(start)
        area = memory.read(end - start)
        at = area.find(needle)
        while at >= 0:
            memory.seek(start + at)
            memory.write(b"*" * len(needle))
            at = area.find(needle, at + len(needle))
