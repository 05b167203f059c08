"""Reads through the block cache, with readahead for sequential readers.

A read is cut into cache blocks; each block comes from the cache or from one
libcephfs read. A reader whose reads follow on from each other gets the next
blocks fetched concurrently in the background, so several object reads are in
flight at once where ceph-fuse has one. Fetches of one block are never done
twice at the same time: a second reader waits for the first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import trio

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.structs import FileHandle
from cephmount.fs.cache import Block, BlockCache, BlockKey
from cephmount.fs.heap import HeapReleaser

READAHEAD_BLOCKS = 8


@dataclass
class OpenFile:
    """One open file of the kernel's, with what reads need to know about it."""

    handle: FileHandle
    fuse_ino: int
    flags: int
    block_size: int
    next_offset: int = -1  # where a sequential reader's next read starts
    readahead_end: int = 0  # readahead has been started up to here
    busy: int = 0  # background fetches using `handle`
    unsynced: bool = False  # written through since the last fsync
    lost_writes: bool = False  # a dead predecessor may have lost writes through it
    idle: trio.Event = field(default_factory=trio.Event)

    @property
    def ino(self) -> int:
        return self.handle.ino

    @property
    def writable(self) -> bool:
        return bool(self.flags & (os.O_WRONLY | os.O_RDWR))


class CachedReader:
    def __init__(self, ceph: AsyncCephClient, blocks: BlockCache, heap: HeapReleaser) -> None:
        self._ceph = ceph
        self._blocks = blocks
        self._heap = heap
        self._inflight: dict[BlockKey, trio.Event] = {}
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Background fetches run in the mount's nursery."""
        self._nursery = nursery

    async def read(self, of: OpenFile, offset: int, size: int, file_size: int | None) -> Block:
        start = offset - offset % of.block_size
        parts: list[Block] = []
        position = start
        while position < offset + size:
            block = await self._block(of, position)
            parts.append(block)
            if len(block) < of.block_size:
                break  # end of file
            position += of.block_size
        whole = parts[0] if len(parts) == 1 else b"".join(parts)  # one block: no copy
        data = whole[offset - start: offset - start + size]
        self._blocks.count_served(len(data))
        self._read_ahead(of, offset, size, file_size)
        return data

    async def _block(self, of: OpenFile, position: int) -> Block:
        key = (of.ino, position)
        while (pending := self._inflight.get(key)) is not None:
            await pending.wait()
        cached = self._blocks.get(*key)
        if cached is not None:
            return cached
        return await self._fetch(of, position, readahead=False)

    async def _fetch(self, of: OpenFile, position: int, readahead: bool) -> Block:
        key = (of.ino, position)
        done = self._inflight[key] = trio.Event()
        try:
            generation = self._blocks.generation(of.ino)
            data = await self._ceph.read(of.handle, position, of.block_size)
            self._heap.moved(len(data))
            self._blocks.put(of.ino, position, data, generation, readahead=readahead)
            return data
        finally:
            del self._inflight[key]
            done.set()

    def _read_ahead(self, of: OpenFile, offset: int, size: int, file_size: int | None) -> None:
        sequential = offset == of.next_offset
        of.next_offset = offset + size
        if not sequential or self._nursery is None:
            of.readahead_end = 0
            return
        window_end = offset + size + READAHEAD_BLOCKS * of.block_size
        if file_size is not None:
            window_end = min(window_end, file_size)
        position = max(of.readahead_end, offset + size)
        position -= position % of.block_size
        while position < window_end:
            key = (of.ino, position)
            if key not in self._inflight and not self._blocks.contains(*key):
                of.busy += 1
                self._nursery.start_soon(self._prefetch, of, position)
            position += of.block_size
        of.readahead_end = max(of.readahead_end, window_end)

    async def _prefetch(self, of: OpenFile, position: int) -> None:
        try:
            if (of.ino, position) not in self._inflight:
                await self._fetch(of, position, readahead=True)
        except OSError:
            pass  # a failed readahead costs nothing: the demand read reports errors
        finally:
            of.busy -= 1
            if of.busy == 0:
                of.idle.set()

    async def quiesce(self, of: OpenFile) -> None:
        """Wait until no background fetch uses `of`'s handle, before it is released."""
        while of.busy:
            of.idle = trio.Event()
            await of.idle.wait()
