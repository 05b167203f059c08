"""The FUSE operations: pyfuse3 requests mapped onto libcephfs's low-level API.

Every request runs as a trio task on the FUSE thread; every libcephfs call goes
to a worker thread through the async client, carrying the caller's credentials
so that Ceph checks permissions for that caller, as ceph-fuse does.
See docs/filesystem.md for the thread model.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NamedTuple, NoReturn, ParamSpec, TypeVar, cast, overload

import pyfuse3
import trio
from cachetools import LRUCache, TTLCache

from cephmount.ceph.aio import AsyncCephClient, until_granted
from cephmount.ceph.client import CAPABILITY_XATTR
from cephmount.ceph.errors import CephError
from cephmount.ceph.structs import (
    NOW,
    ROOT,
    Credentials,
    DirEntry,
    DirHandle,
    FileHandle,
    Inode,
    Lock,
    NameBatch,
    StatX,
)
from cephmount.fs.cache import Block, BlockCache, ExpiringMap, block_size_for
from cephmount.fs.coherence import (
    POLICIES,
    ChangeTracker,
    CoherencePolicy,
    Invalidator,
    ListingVersions,
)
from cephmount.fs.dirahead import ListingAhead
from cephmount.fs.handles import HandleKind, HandleRecord, HandleStore
from cephmount.fs.heap import HeapReleaser
from cephmount.fs.inodes import InodeTable
from cephmount.fs.native import NativeHandlers
from cephmount.fs.opstats import OpStats
from cephmount.fs.options import Coherence
from cephmount.fs.reads import CachedReader, OpenFile

log = logging.getLogger(__name__)

READDIR_BATCH = 256  # READDIRPLUS: each entry holds a reference until sent
NAMES_BATCH = 4096  # plain READDIR: four replies' worth of names (no references)
# How often expired entries leave our attribute, name and xattr caches when no new
# entry pushes them out.
PURGE_EVERY_S = 10.0
# After a listing, a stat of one entry (`ls -l`, `du`) fetches the attributes (or the
# asked-for shared xattr) of the entries listed next too, in one thread hop.
PREFETCH_ENTRIES = 32
# Our POSIX lock owner for appends; other nodes are other clients, so they conflict.
APPEND_LOCK_OWNER = 0x63657068
# flock(2) operations as POSIX lock types: flock locks are whole-file POSIX locks here.
FLOCK_TYPES = {fcntl.LOCK_SH: fcntl.F_RDLCK, fcntl.LOCK_EX: fcntl.F_WRLCK,
               fcntl.LOCK_UN: fcntl.F_UNLCK}
ATTR_CACHE_ENTRIES = 65536
# Read on the mount's root (`getfattr -n cephmount.stats MOUNT`): the cache counters and,
# under "op_stats", the per-request counters and request sizes, as JSON.
STATS_XATTR = b"cephmount.stats"
# getfattr asks for the stats' size, then for the stats in a buffer of about that size:
# the second ask of a caller within this long gets what the first was answered.
STATS_KEPT_S = 1.0
# Namespaces anyone may read (the kernel checks no permission): one cached answer
# serves every caller. `ls -l` asks for ACLs and security labels of every entry.
SHARED_XATTR_PREFIXES = (b"security.", b"system.")
TIME_FIELDS = ("atime_ns", "mtime_ns")
NOW_TOLERANCE_NS = 1_000_000_000
# Flags that acted when a file was first opened and must not act again when a
# successor server opens it anew for the same kernel handle.
FIRST_OPEN_ONLY = os.O_CREAT | os.O_EXCL | os.O_TRUNC
# Never handed to libcephfs. The kernel already sends an O_DIRECT descriptor's reads
# and writes straight here; libcephfs would then write them to the OSDs past its own
# cache and leave the cache's old data of the range to every other reader on this
# node, until the caps go (ceph-fuse shows it too: fsx found it).
KERNEL_ONLY = os.O_DIRECT
P = ParamSpec("P")
R = TypeVar("R")


def ceph_errors(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn a CephError into the FUSEError the kernel understands; count the request.

    Anything else unexpected is logged and answered with EIO: pyfuse3 ends the
    whole session on an exception that is not a FUSEError, and one bad request
    must not take the mount down with it.
    """

    name = method.__name__

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        failed = True
        try:
            result = await method(*args, **kwargs)
            failed = False
            return result
        except pyfuse3.FUSEError:
            raise
        except CephError as exc:
            operations = cast(CephOperations, args[0])
            if exc.errno == errno.ESHUTDOWN and operations.on_session_lost is not None:
                operations.on_session_lost()  # does not return: a successor answers
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("%s failed", name)
            raise pyfuse3.FUSEError(errno.EIO) from None
        finally:
            operations = cast(CephOperations, args[0])
            operations.op_stats.record(name, time.perf_counter() - started, failed)

    return wrapper


def _times_now(changes: dict[str, Any]) -> bool:
    """Whether `changes` sets only times, each within a second of the clock."""
    now = time.time_ns()
    return bool(changes) and all(
        key in TIME_FIELDS and abs(value - now) <= NOW_TOLERANCE_NS
        for key, value in changes.items())


class Unsent(NamedTuple):
    """Entries of a listing read from libcephfs that a reply had no room for."""

    start: int  # the offset the first of them is at
    # READDIRPLUS's, each with a reference to its inode, or a plain READDIR's names
    entries: list[DirEntry] | NameBatch


NOTHING_UNSENT = Unsent(-1, [])


class CallerGroups:
    """Supplementary groups of a calling pid, read from /proc as ceph-fuse does, briefly cached."""

    def __init__(self) -> None:
        self._cache: TTLCache[int, tuple[int, ...]] = TTLCache(maxsize=4096, ttl=1.0)

    def credentials(self, ctx: pyfuse3.RequestContext) -> Credentials:
        groups = self._cache.get(ctx.pid)
        if groups is None:
            groups = self._read(ctx.pid)
            self._cache[ctx.pid] = groups
        return Credentials(ctx.uid, ctx.gid, groups)

    @staticmethod
    def _read(pid: int) -> tuple[int, ...]:
        if pid <= 0:
            return ()
        try:
            return tuple(sorted(pyfuse3.get_sup_groups(pid)))
        except (OSError, RuntimeError):  # the caller is gone already
            return ()


class CephOperations(pyfuse3.Operations):
    """A CephFS subtree as a FUSE filesystem."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False
    enable_posix_locks = True
    enable_flock_locks = True
    enable_readdirplus_auto = True  # a plain `ls` gets names, not lookups (READDIR)

    def __init__(self, ceph: AsyncCephClient, root: Inode,
                 coherence: Coherence = Coherence.DEFAULT, cache_bytes: int = 256 << 20,
                 read_only: bool = False, handles: HandleStore | None = None,
                 on_init: Callable[[], None] | None = None,
                 on_session_lost: Callable[[], NoReturn] | None = None) -> None:
        """`handles` keeps the kernel's file handles where a successor finds them;
        `on_init` runs inside the kernel's INIT request, before any other;
        `on_session_lost` runs when the cluster has evicted or blocklisted the client
        (libcephfs then fails every call with ESHUTDOWN for good) and does not return:
        it ends a worker, leaving the request to a successor with a new session
        (docs/daemon.md), or raises for the SessionKeeper of a standalone mount
        (fs/session.py), which retries it on a new session. Without it such
        requests fail with ESHUTDOWN."""
        super().__init__()
        self._on_init = on_init
        self.on_session_lost = on_session_lost
        self._handles = handles if handles is not None else HandleStore()
        self._ceph = ceph
        self._inodes: InodeTable[Inode] = InodeTable(root)
        self._policy: CoherencePolicy = POLICIES[coherence]
        self._read_only = read_only
        self._callers = CallerGroups()
        self._files: dict[int, OpenFile] = {}
        self._open_for_writing: Counter[int] = Counter()  # ceph inode -> open handles
        self._dirs: dict[int, DirHandle] = {}
        # Entries read from libcephfs but not yet sent, per directory handle, with the
        # offset they start at: the next READDIRPLUS usually asks for exactly those.
        self._unsent: dict[int, Unsent] = {}
        self._ahead = ListingAhead(
            lambda handle, offset: self._ceph.readdir_names(handle, offset, NAMES_BATCH))
        self._listings = ListingVersions(ATTR_CACHE_ENTRIES)
        self._changes = ChangeTracker(self._policy.revalidate_after)
        self.blocks = BlockCache(cache_bytes if self._policy.cache_data else 0,
                                 on_forgotten=self._changes.forget)
        self._attrs: ExpiringMap[StatX] = ExpiringMap(ATTR_CACHE_ENTRIES, self._policy.cache_ttl)
        self._names: ExpiringMap[int] = ExpiringMap(ATTR_CACHE_ENTRIES, self._policy.cache_ttl)
        self._heap = HeapReleaser()
        self._lock_owners: dict[int, set[int]] = {}  # ceph inode -> owners that took locks
        self._native = NativeHandlers(ceph.sync, self._policy, root.ino, self._inodes.handle,
                                      self._handles.unsynced_mark,
                                      self._lock_owners.__contains__, not read_only)
        self._reader = CachedReader(ceph, self.blocks, self._heap)
        self._append_locks: dict[int, trio.Lock] = {}
        self._block_sizes: LRUCache[int, int] = LRUCache(maxsize=ATTR_CACHE_ENTRIES)
        self._xattrs: ExpiringMap[dict[bytes, bytes | None]] = ExpiringMap(
            ATTR_CACHE_ENTRIES, self._policy.cache_ttl)
        self.reopened_handles = 0
        self.session_losses = 0
        self._detached = False
        self.op_stats = OpStats()
        self._stats_kept: tuple[int, float, bytes] | None = None  # (pid, when, answer)
        self.invalidator = Invalidator(self.blocks, (self._attrs, self._xattrs), self._names,
                                       self._inodes.to_fuse)

    def init(self) -> None:
        if self._on_init is not None:
            self._on_init()

    def attach(self, nursery: trio.Nursery) -> None:
        """Start coherence: callbacks to the invalidation thread, background reads."""
        self._reader.attach(nursery)
        self._heap.attach(nursery)
        self._ahead.attach(nursery)
        nursery.start_soon(self._purge_expired)
        self.invalidator.start()
        self._ceph.sync.register_callbacks(
            on_inode_invalidate=self.invalidator.on_inode_invalidate,
            on_dentry_invalidate=self.invalidator.on_dentry_invalidate,
            on_inode_release=self.invalidator.on_inode_release)

    def detach(self, wait: bool = True) -> None:
        """Stop coherence: the invalidation thread ends (after its current event, if
        not `wait`ing for it: a kernel notification may wait for a request). Any thread,
        once `close_native` ran on the trio thread or the main loop is over."""
        self._detached = True
        self._native.clear_all()
        self.invalidator.stop(wait)

    def close_native(self) -> None:
        """The Ceph session is lost: no request reaches a native handler of ours after
        this (`detach` then waits for the calls in flight). On the trio thread."""
        self._native.close()

    async def _purge_expired(self) -> None:
        """Drop expired entries of our caches now and then, until detached."""
        while not self._detached:
            await trio.sleep(PURGE_EVERY_S)
            for cache in (self._attrs, self._names, self._xattrs):
                cache.purge()

    def succeed(self, lost: CephOperations) -> None:
        """Take over the counters of an instance whose Ceph session was lost."""
        self.op_stats = lost.op_stats
        self.session_losses = lost.session_losses + 1

    def stats(self) -> dict[str, int]:
        counters = self.blocks.stats.as_dict()
        counters.update(cache_bytes=self.blocks.size, cache_limit=self.blocks.capacity,
                        kernel_notifications=self.invalidator.kernel_notifications,
                        inodes=len(self._inodes), open_handles=self._handles.in_use(),
                        reopened_handles=self.reopened_handles,
                        session_losses=self.session_losses,
                        tracked_inodes=len(self._changes),
                        generations=self.blocks.tracked_inodes,
                        append_locks=len(self._append_locks),
                        block_sizes=len(self._block_sizes),
                        listing_records=len(self._listings),
                        memory_releases=self._heap.releases,
                        names_read_ahead=self._ahead.used,
                        native_handles=self._native.handles,
                        native_lookup_dirs=self._native.lookup_dirs,
                        native_lookups_waiting=self._native.waiting_lookups())
        for op, answered in self._native.stats().items():
            counters[f"native_{op}{'es' if op.endswith('sh') else 's'}"] = answered["count"]
            counters[f"native_{op}_fallbacks"] = answered["fallbacks"]
        return counters

    def request_stats(self) -> dict[str, object]:
        """Per-request counters and request sizes, native handlers' included."""
        return self.op_stats.as_dict(self._native.stats())

    # -- helpers -----------------------------------------------------------------------

    def _entry(self, fuse_ino: int, stx: StatX) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = fuse_ino
        entry.generation = 0
        entry.entry_timeout = self._policy.entry_timeout
        entry.attr_timeout = self._policy.attr_timeout
        entry.st_mode = stx.mode
        entry.st_nlink = stx.nlink
        entry.st_uid = stx.uid
        entry.st_gid = stx.gid
        entry.st_rdev = stx.rdev
        entry.st_size = stx.size
        entry.st_blksize = stx.blksize
        entry.st_blocks = stx.blocks
        entry.st_atime_ns = stx.atime_ns
        entry.st_mtime_ns = stx.mtime_ns
        entry.st_ctime_ns = stx.ctime_ns
        entry.st_birthtime_ns = stx.btime_ns
        return entry

    def _remember(self, parent: int, name: bytes, handle: Inode,
                  stx: StatX) -> pyfuse3.EntryAttributes:
        """Count a lookup the kernel will hold, cache the name and describe the entry."""
        fuse_ino = self._count_lookup(handle)
        self._names.set((parent, name), fuse_ino)
        return self._fresh_attrs(fuse_ino, stx)

    def _count_lookup(self, handle: Inode) -> int:
        """Count a lookup of `handle` the kernel holds; put its reference if surplus."""
        fuse_ino, surplus = self._inodes.add_lookup(handle)
        if surplus is not None:
            self._ceph.sync.put(surplus)  # memory only: the table holds a reference
        else:
            self.blocks.remember(handle.ino)
        return fuse_ino

    @overload
    def _fresh_attrs(self, fuse_ino: int, stx: StatX) -> pyfuse3.EntryAttributes: ...

    @overload
    def _fresh_attrs(self, fuse_ino: int, stx: StatX, report_change: bool) -> bool: ...

    def _fresh_attrs(self, fuse_ino: int, stx: StatX,
                     report_change: bool = False) -> pyfuse3.EntryAttributes | bool:
        """Attributes just read from libcephfs: cache them, drop data of a changed file.

        Returns the entry for the kernel, or with `report_change` whether the file changed.
        Attributes older (by the change counter) than those cached were read before a
        change this node made and cached meanwhile (a lookup's answer waiting for the
        trio thread, a call that raced a write): the newer ones stay, and answer.
        """
        cached = self._attrs.get(fuse_ino)
        if cached is not None and cached.version > stx.version:
            return False if report_change else self._entry(fuse_ino, cached)
        self._attrs.set(fuse_ino, stx)
        changed = self._changes.changed(stx)
        if changed:
            self.invalidator.file_changed(stx.ino)
        self._native.attributes(fuse_ino, stx)
        return changed if report_change else self._entry(fuse_ino, stx)

    def _drop_attrs(self, fuse_ino: int) -> None:
        """Forget our cached attributes of `fuse_ino`: its next GETATTR, here or in C,
        asks libcephfs (answered from its caps, or by the MDS)."""
        self._attrs.drop(fuse_ino)
        self._native.expire(fuse_ino)

    def _drop_attrs_all(self, fuse_inos: set[int]) -> None:
        """`_drop_attrs` of each of `fuse_inos` (a listing's)."""
        self._attrs.drop_all(fuse_inos)
        self._native.expire_all(fuse_inos)

    def _changed_here(self, fuse_ino: int) -> None:
        """This node changed the inode: what we cached of its attributes is stale."""
        self._drop_attrs(fuse_ino)
        self._xattrs.drop(fuse_ino)

    def _name_changed(self, parent: int, name: bytes) -> None:
        """Before `name` in `parent` changes: forget what it named."""
        self._names.drop((parent, name))

    async def _refresh_attrs(self, fuse_ino: int) -> None:
        """After this node changed an inode: keep its cached attributes true to the change.

        The kernel asks for attributes after every write, and for a directory's after
        every change of its entries (to check permissions on the next path walk). When
        ours were dropped, each ask went to the MDS, which with writers on other nodes
        waits for the file's or directory's lock (2.5 ms a write in fio's 4 KiB random
        r/w on two nodes). libcephfs's own view includes our change (the MDS's reply
        carried the directory's new attributes); the entry keeps the expiry of its last
        check against the MDS, so other nodes' changes show no later than before.
        Nothing to keep without a live entry: then the next ask goes to the MDS anyway
        (unless answered in C: a directory's there must not tell of our own change).
        """
        if not self._keeps_attrs(fuse_ino):
            return
        try:
            handle = await self._handle(fuse_ino)
        except (CephError, pyfuse3.FUSEError):  # the change is done: never fail it here
            self._drop_attrs(fuse_ino)
            return
        self._keep_attrs(fuse_ino, handle)

    def _keeps_attrs(self, fuse_ino: int) -> bool:
        """Whether attributes of `fuse_ino` are kept where a change of ours must show:
        our cache, or a directory's handlers in C (`NativeHandlers.kept`)."""
        return self._attrs.get(fuse_ino) is not None or self._native.serves_directory(fuse_ino)

    def _keep_attrs(self, fuse_ino: int, handle: Inode) -> None:
        """`_refresh_attrs` once the inode's `handle` is known: memory only."""
        try:
            stx = self._ceph.sync.cached_getattr(handle)
        except CephError:  # the change is done: never fail it here
            self._drop_attrs(fuse_ino)
            return
        self._attrs.update(fuse_ino, stx)
        self._native.kept(fuse_ino, stx)

    async def _made(self, parent: int, name: bytes, handle: Inode,
                    stx: StatX) -> pyfuse3.EntryAttributes:
        """After this node made `name` in `parent`."""
        await self._refresh_attrs(parent)
        return self._remember(parent, name, handle, stx)

    async def _handle(self, fuse_ino: int) -> Inode:
        """The libcephfs inode behind a FUSE inode number the kernel sent.

        The kernel sends only numbers it holds lookups of; should the table not
        have one, libcephfs finds the inode by number (ESTALE only once it is
        gone from the cluster), as ceph-fuse does.
        """
        try:
            return self._inodes.handle(fuse_ino)
        except pyfuse3.FUSEError:
            pass
        handle, surplus = self._inodes.adopt(await self._ceph.lookup_inode(fuse_ino))
        if surplus is not None:
            await self._ceph.put(surplus)
        log.info("inode %d was not in the inode table: found it by number", fuse_ino)
        return handle

    def _writable(self) -> None:
        if self._read_only:
            raise pyfuse3.FUSEError(errno.EROFS)

    def _cred(self, ctx: pyfuse3.RequestContext) -> Credentials:
        return self._callers.credentials(ctx)

    async def _file(self, fh: int) -> OpenFile:
        of = self._files.get(fh)
        return of if of is not None else await self._reopen_file(fh)

    def _record(self, fh: int, kind: HandleKind) -> HandleRecord:
        """What a predecessor opened `fh` as; EBADF if nothing."""
        record = self._handles.get(fh)
        if record is None or record.kind != kind:
            raise pyfuse3.FUSEError(errno.EBADF)
        return record

    async def _reopen_file(self, fh: int) -> OpenFile:
        """Open again, by inode, a file a predecessor server had open as `fh`.

        Permission was checked at the first open, so this one acts as root.
        """
        record = self._record(fh, HandleKind.FILE)
        fuse_ino = self._inodes.to_fuse(record.ceph_ino)
        inode = await self._handle(fuse_ino)
        handle = await self._ceph.open(inode, record.flags & ~(FIRST_OPEN_ONLY | KERNEL_ONLY),
                                       ROOT)
        of = await self._open_file(fuse_ino, handle, record.flags)
        of.unsynced = of.lost_writes = record.unsynced
        if record.unsynced:
            log.warning("handle %d of inode %d: writes since its last fsync may have died "
                        "with the previous worker or Ceph session; its next fsync or close "
                        "reports EIO",
                        fh, record.ceph_ino)
        self._add_file(fh, of, created=False)
        self.reopened_handles += 1
        return of

    async def _new_file(self, of: OpenFile, unchanged: bool,
                        created: bool = False) -> pyfuse3.FileInfo:
        """Register an open file; the kernel keeps its pages only if the file is unchanged.

        An O_APPEND file bypasses the page cache: the kernel's cached write path cuts a
        write at the first page it does not hold and sends each piece on its own, and
        two appends of one write() let another node's line in between.
        """
        fh = self._handles.allocate(of.ino, of.flags, HandleKind.FILE)
        self._add_file(fh, of, created)
        keep = unchanged and self._policy.cache_data
        direct_io = self._policy.direct_io or bool(of.flags & os.O_APPEND)
        return pyfuse3.FileInfo(fh=fh, direct_io=direct_io, keep_cache=keep)

    def _add_file(self, fh: int, of: OpenFile, created: bool) -> None:
        """`fh` is open as `of` (a file CREATE made if `created`)."""
        self._files[fh] = of
        if of.writable:
            self._open_for_writing[of.ino] += 1
        if created:
            self._native.created(fh, of)
        else:
            self._native.opened(fh, of)

    async def _open_file(self, fuse_ino: int, handle: FileHandle, flags: int) -> OpenFile:
        if not self.blocks.capacity:  # strict mode, or cache_size=0: no data cache
            return OpenFile(handle, fuse_ino, flags, block_size=0)
        block_size = self._block_sizes.get(handle.ino)
        if block_size is None:
            inode = await self._handle(fuse_ino)
            block_size = block_size_for(await self._ceph.object_size(inode))
            self._block_sizes[handle.ino] = block_size
        return OpenFile(handle, fuse_ino, flags, block_size)

    async def _close_to_open(self, fuse_ino: int, cred: Credentials) -> bool:
        """Check the file's change counter at open; True when our cached data still holds."""
        stx = await self._ceph.getattr(await self._handle(fuse_ino), cred)
        seen_before = self._changes.known_size(stx.ino) is not None
        return seen_before and not self._fresh_attrs(fuse_ino, stx, report_change=True)

    # -- names -------------------------------------------------------------------------

    @ceph_errors
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        """The directory's native lookup handler answers names it found itself
        (`looked_up`) and absent ones; one whose number is made here comes with the
        entry (docs/performance.md, "Lookups on the reading thread")."""
        found = self._native.take_lookup(parent_inode, name, ctx.pid)
        if found is None:
            cached = self._cached_entry(parent_inode, name)
            if cached is not None:
                return cached
            parent = await self._handle(parent_inode)
            self._native.serve_lookups(parent_inode, parent)
            found = await self._ceph.lookup(parent, name, self._cred(ctx))
        self._listings.looked_up(parent_inode)
        return self._remember(parent_inode, name, *found)

    def looked_up(self, parent_inode: int, name: bytes, pid: int) -> None:
        """What `lookup` does with libcephfs's answer, for a LOOKUP answered in C
        (fs/native.py): told before any request the answer let through, so the
        kernel's lookup is counted before its forget can come."""
        found = self._native.take_lookup(parent_inode, name, pid)
        if found is None:  # the client is closed: its references went with it
            return
        self._listings.looked_up(parent_inode)
        self._remember(parent_inode, name, *found)

    def _cached_entry(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes | None:
        """A lookup answered from our caches: a known inode, its name and attributes fresh."""
        fuse_ino = self._names.get((parent, name))
        if fuse_ino is None or self._native.writing(fuse_ino):
            return None
        stx = self._attrs.get(fuse_ino)
        if stx is None:
            return None
        try:
            self._inodes.count_lookup(fuse_ino)
        except pyfuse3.FUSEError:
            return None
        self.blocks.stats.entry_hits += 1
        return self._entry(fuse_ino, stx)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for fuse_ino, nlookup in inode_list:
            handle = self._inodes.forget(fuse_ino, nlookup)
            if handle is not None:
                self._native.forgotten(fuse_ino)
                self._forgotten(handle.ino)
                with contextlib.suppress(CephError):  # a lost session has nothing to give back
                    await self._ceph.put(handle)
        self._heap.forgotten(len(inode_list))

    def _forgotten(self, ino: int) -> None:
        """The kernel holds `ino` no more: trim what is kept per inode, so that a
        long-lived mount stays flat (docs/cache-and-coherence.md, "Bounded")."""
        self._block_sizes.pop(ino, None)
        self._listings.forget(self._inodes.to_fuse(ino))
        lock = self._append_locks.get(ino)
        if lock is not None and not lock.locked():  # one in use stays with its holder
            del self._append_locks[ino]
        self.blocks.forget(ino)

    @ceph_errors
    async def getattr(self, inode: int,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        # One the native handler handed back (every file written natively has one)
        # may have told the change checks nothing, and our entry misses native writes.
        stx = None if self._native.serves_attributes(inode) else self._attrs.get(inode)
        if stx is not None:
            self.blocks.stats.attr_hits += 1
            return self._entry(inode, stx)
        self._listings.statted(inode)
        cred = self._cred(ctx)
        stx = await self._ceph.getattr(await self._handle(inode), cred)
        entry = self._fresh_attrs(inode, stx)
        await self._prefetch_attrs(inode, cred)
        return entry

    def attributes_sent(self, inode: int) -> None:
        """A GETATTR answered in C (fs/native.py) sent attributes that moved since the
        change checks last saw them: they check libcephfs's view now, before any
        request the answer let through (a read of what another node appended); or
        the first after a listing sent it, which counts as a stat of the listing."""
        self._listings.statted(inode)
        try:
            handle = self._inodes.handle(inode)
        except pyfuse3.FUSEError:  # forgotten meanwhile: nothing of it is cached
            return
        try:
            stx = self._ceph.sync.cached_getattr(handle)
        except CephError:  # a lost session: drop what we cached of it
            self._drop_attrs(inode)
            self.invalidator.file_changed(handle.ino)
            return
        self._fresh_attrs(inode, stx)

    async def _prefetch_attrs(self, inode: int, cred: Credentials) -> None:
        """Attributes of the entries listed after `inode`, which `ls -l` stats next:
        fetched now (after the listing, so as fresh as any getattr) and cached."""
        fetched = await self._fetch_ahead(inode, lambda number: self._attrs.get(number) is None,
                                          functools.partial(self._ceph.sync.getattr, cred=cred))
        for number, stx in fetched:
            if isinstance(stx, StatX):
                self._fresh_attrs(number, stx)

    async def _fetch_ahead(self, inode: int, missing: Callable[[int], bool],
                           call: Callable[[Inode], R]) -> list[tuple[int, R | CephError]]:
        """`call` on each entry listed after `inode` whose answer is `missing` from our
        caches, in one thread hop; nothing where the caches keep nothing (strict)."""
        if not self._policy.cache_ttl:
            return []
        numbers = [number for number in self._listings.following(inode, PREFETCH_ENTRIES)
                   if missing(number)]
        if not numbers:
            return []
        return list(zip(numbers, await self._ceph.for_each_inode(numbers, call), strict=True))

    @ceph_errors
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        changes: dict[str, Any] = {}
        if fields.update_mode:
            changes["mode"] = attr.st_mode
        if fields.update_uid:
            changes["uid"] = attr.st_uid
        if fields.update_gid:
            changes["gid"] = attr.st_gid
        if fields.update_size:
            changes["size"] = attr.st_size
        if fields.update_atime:
            changes["atime_ns"] = attr.st_atime_ns
        if fields.update_mtime:
            changes["mtime_ns"] = attr.st_mtime_ns
        handle = await self._handle(inode)
        self._changed_here(inode)
        stx = await self._setattr(handle, await self._setattr_cred(ctx, changes, fh), changes)
        if fields.update_size:
            self.invalidator.file_changed(stx.ino)
        return self._fresh_attrs(inode, stx)

    async def _setattr_cred(self, ctx: pyfuse3.RequestContext, changes: dict[str, Any],
                            fh: int | None) -> Credentials:
        """Whom a setattr acts for: `ftruncate` goes by the descriptor, not the mode.

        A truncate through a handle opened for writing was allowed when the file
        was opened (POSIX: a file created with mode 0 may be truncated through the
        descriptor that created it); Ceph would check the caller against the mode.
        """
        if fh is not None and changes.keys() == {"size"} and (await self._file(fh)).writable:
            return ROOT
        return self._cred(ctx)

    async def _setattr(self, handle: Inode, cred: Credentials,
                       changes: dict[str, Any]) -> StatX:
        """Apply `changes`; times set to "now" by a writer who is not the owner, too.

        pyfuse3 turns the kernel's "now" (utimensat's UTIME_NOW, `touch`) into
        explicit times, which only the owner may set; "now" needs write access
        only. When Ceph refuses times that are now (within a second) to a caller
        who is not the owner, they are set again as "now", for which Ceph checks
        write access: a time that is now is all the caller gets either way.
        """
        try:
            return await self._ceph.setattr(handle, cred, **changes)
        except CephError as exc:
            if exc.errno != errno.EPERM or not _times_now(changes):
                raise
        now: dict[str, Any] = dict.fromkeys(changes, NOW)
        return await self._ceph.setattr(handle, cred, **now)

    @ceph_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._ceph.readlink(await self._handle(inode), self._cred(ctx))

    @ceph_errors
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        self._name_changed(parent_inode, name)
        handle, stx = await self._ceph.mknod(
            await self._handle(parent_inode), name, mode, rdev, self._cred(ctx))
        return await self._made(parent_inode, name, handle, stx)

    @ceph_errors
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        self._name_changed(parent_inode, name)
        handle, stx = await self._ceph.mkdir(
            await self._handle(parent_inode), name, mode, self._cred(ctx))
        return await self._made(parent_inode, name, handle, stx)

    @ceph_errors
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        self._name_changed(parent_inode, name)
        handle, stx = await self._ceph.symlink(
            await self._handle(parent_inode), name, target, self._cred(ctx))
        return await self._made(parent_inode, name, handle, stx)

    @ceph_errors
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        handle = await self._handle(inode)
        self._name_changed(new_parent_inode, new_name)
        stx = await self._ceph.link(handle, await self._handle(new_parent_inode), new_name,
                                    self._cred(ctx))
        self._inodes.count_lookup(inode)
        self._names.set((new_parent_inode, new_name), inode)
        await self._refresh_attrs(new_parent_inode)
        return self._fresh_attrs(inode, stx)

    @ceph_errors
    async def unlink(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._forget_name(parent_inode, name)
        await self._ceph.unlink(await self._handle(parent_inode), name, self._cred(ctx))
        await self._refresh_attrs(parent_inode)

    def unlinked(self, parent_inode: int, name: bytes) -> None:
        """What `unlink` does after libcephfs, for an UNLINK answered in C (fs/native.py).

        pyfuse3 calls this before it takes any request the answer let through, so
        no later request sees the name or the attributes as they were.
        """
        self._forget_name(parent_inode, name)
        if not self._keeps_attrs(parent_inode):
            return
        try:
            handle = self._inodes.handle(parent_inode)
        except pyfuse3.FUSEError:  # not this instance's (a session replaced meanwhile)
            self._drop_attrs(parent_inode)
            return
        self._keep_attrs(parent_inode, handle)

    @ceph_errors
    async def rmdir(self, parent_inode: int, name: bytes,
                    ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._forget_name(parent_inode, name)
        await self._ceph.rmdir(await self._handle(parent_inode), name, self._cred(ctx))
        await self._refresh_attrs(parent_inode)

    @ceph_errors
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        cred = self._cred(ctx)
        old_parent = await self._handle(parent_inode_old)
        new_parent = await self._handle(parent_inode_new)
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)  # libcephfs has no atomic exchange
        if flags & pyfuse3.RENAME_NOREPLACE:
            await self._refuse_existing(new_parent, name_new, cred)
        self._forget_name(parent_inode_old, name_old)
        self._forget_name(parent_inode_new, name_new)
        await self._ceph.rename(old_parent, name_old, new_parent, name_new, cred)
        for parent in {parent_inode_old, parent_inode_new}:
            await self._refresh_attrs(parent)

    def _forget_name(self, parent: int, name: bytes) -> None:
        """A name goes away: drop it and the attributes of what it named (nlink, ctime)."""
        fuse_ino = self._names.get((parent, name))
        if fuse_ino is not None:
            self._drop_attrs(fuse_ino)
        self._name_changed(parent, name)

    async def _refuse_existing(self, parent: Inode, name: bytes, cred: Credentials) -> None:
        """EEXIST when `name` exists. Not atomic with the rename: libcephfs has no flags."""
        try:
            handle, _ = await self._ceph.lookup(parent, name, cred)
        except CephError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        await self._ceph.put(handle)
        raise pyfuse3.FUSEError(errno.EEXIST)

    # -- files -------------------------------------------------------------------------

    @ceph_errors
    async def open(self, inode: int, flags: int,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
            self._writable()
        cred = self._cred(ctx)
        unchanged = await self._close_to_open(inode, cred)
        handle = await self._ceph.open(await self._handle(inode), flags & ~KERNEL_ONLY, cred)
        if flags & os.O_TRUNC:
            self._changed_here(inode)
            self.invalidator.file_changed(handle.ino)
            unchanged = False
        return await self._new_file(await self._open_file(inode, handle, flags), unchanged)

    @ceph_errors
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._writable()
        cred = self._cred(ctx)
        self._name_changed(parent_inode, name)
        made = self._native.take_created(parent_inode, name, ctx.pid)  # fs/native.py
        if made is None:
            made = await self._ceph.create(
                await self._handle(parent_inode), name, mode, flags & ~KERNEL_ONLY, cred)
        handle, stx, fh = made
        entry = await self._made(parent_inode, name, handle, stx)
        # No capabilities yet, and the writes strip any set meanwhile: the kernel's
        # ask before the first write needs no thread hop.
        self._remember_xattr(entry.st_ino, CAPABILITY_XATTR, None)
        of = await self._open_file(entry.st_ino, fh, flags)
        return await self._new_file(of, unchanged=False, created=True), entry

    @ceph_errors
    async def read(  # type: ignore[override]  # pyfuse3 replies from any buffer
            self, fh: int, off: int, size: int) -> Block:
        """Read through our block cache, or straight from libcephfs.

        Straight when the file is not cached (strict mode) or open for writing here:
        every write moves the change counter, so the next check drops the file's
        blocks before they serve much, and filling whole blocks for short random
        reads cost four times the reads themselves (fio 4 KiB 70/30 r/w).
        libcephfs still caches the data while it holds the caps.
        """
        of = await self._file(fh)
        data: Block
        if not of.block_size or self._open_for_writing[of.ino]:
            data = await self._ceph.read(of.handle, off, size)
            self._heap.moved(len(data))
        else:
            if self._changes.due(of.ino):
                await self._revalidate(of)
            data = await self._reader.read(of, off, size, self._changes.known_size(of.ino))
        self.op_stats.bytes_read += len(data)
        self.op_stats.record_size("read", size)
        return data

    async def _revalidate(self, of: OpenFile) -> None:
        """Ask libcephfs whether the file moved on; drop what we cached of it if it did."""
        stx = await self._ceph.getattr(await self._handle(of.fuse_ino), ROOT)
        self._fresh_attrs(of.fuse_ino, stx)

    @ceph_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        of = await self._file(fh)
        if not of.unsynced:
            self._handles.mark_unsynced(fh, True)
            of.unsynced = True
        if of.flags & os.O_APPEND:
            self._changed_here(of.fuse_ino)
            written = await self._append(of, buf)
        else:
            written = await self._ceph.write(of.handle, off, buf)
            self.blocks.drop_range(of.ino, off, off + written, of.block_size)
            await self._refresh_attrs(of.fuse_ino)
            self._native.written(fh, of)
        self._heap.moved(len(buf))
        self.op_stats.bytes_written += written
        self.op_stats.record_size("write", len(buf))
        return written

    async def _written_natively(self, of: OpenFile) -> None:
        """`of` stopped writing natively: its writes may have outdated our blocks and
        the attributes we keep (`getattr` refreshed them only while it wrote)."""
        self.blocks.invalidate(of.ino)
        await self._refresh_attrs(of.fuse_ino)

    async def _append(self, of: OpenFile, data: bytes) -> int:
        """Append at the end of the file as the cluster knows it, not the kernel's idea of it.

        The kernel picks an O_APPEND offset from its cached size, which another node's
        appends have made stale; the client's `try_append` serialises appends across
        nodes. A lock of a local owner that covers the append lock lets the append
        through (the writer may be that owner). While another node's lock is in the
        way this polls, holding neither a worker thread nor the file's append lock
        between tries, so unlocks (which wait for the append lock) are never stuck.
        """
        lock = self._append_locks.setdefault(of.ino, trio.Lock())

        async def attempt() -> int | None:
            async with lock:
                return await self._ceph.try_append(
                    of.handle, data, APPEND_LOCK_OWNER, tuple(self._lock_owners.get(of.ino, ())))

        await until_granted(attempt)
        self.invalidator.file_changed(of.ino)
        return len(data)

    @ceph_errors
    async def flush(self, fh: int) -> None:
        """close(2) waits for nothing, as on ceph-fuse (whose flush writes nothing back).

        libcephfs writes buffered data back in the background, and a node that opens
        or reads the file recalls the caps, which makes it write back first: coherence
        does not need the data written at close. fsync(2) makes it durable and reports
        writeback errors. Waiting here (a data fsync) cost 2 ms per close. A close
        does report writes a dead predecessor may have lost (see fs/handles.py).
        """
        of = self._files.get(fh)
        if of is None:
            if self._record(fh, HandleKind.FILE).unsynced:
                of = await self._file(fh)
            else:
                return
        self._report_lost_writes(of)

    def _report_lost_writes(self, of: OpenFile) -> None:
        """EIO once for a handle whose writes may have died with a predecessor."""
        if of.lost_writes:
            of.lost_writes = False
            raise pyfuse3.FUSEError(errno.EIO)

    @ceph_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        of = await self._file(fh)
        self._report_lost_writes(of)
        # The next write marks it unsynced again. Native writes may have marked it.
        native = await self._native.stop_writes(fh)
        if native:
            await self._written_natively(of)
        await self._ceph.fsync(of.handle, datasync)
        if of.unsynced or native:
            await self._confirm_session(of)
            self._handles.mark_unsynced(fh, False)
            of.unsynced = False

    async def _confirm_session(self, of: OpenFile) -> None:
        """Fail (ESHUTDOWN: `on_session_lost`) if the client was evicted before the fsync.

        libcephfs 16's fsync of an evicted client returns 0 though it dropped the
        buffered data (measured: another client then found the file empty). Its
        synced getattr does fail: the eviction took the caps, so it asks the MDS;
        on a live session with the caps it is answered from memory.
        """
        await self._ceph.getattr(await self._handle(of.fuse_ino), ROOT)

    @ceph_errors
    async def release(self, fh: int) -> None:
        self._handles.free(fh)
        of = self._files.pop(fh, None)
        if of is not None:
            if of.writable:
                self._open_for_writing[of.ino] -= 1
                if not self._open_for_writing[of.ino]:
                    del self._open_for_writing[of.ino]
            if self._native.clear(fh):
                await self._written_natively(of)
            await self._reader.quiesce(of)
            await self._ceph.release(of.handle)

    @ceph_errors
    async def fallocate(self, fh: int, mode: int, offset: int, length: int) -> None:
        """Modes as libcephfs takes them (EOPNOTSUPP for the rest, as on ceph-fuse)."""
        self._writable()
        of = await self._file(fh)
        self._changed_here(of.fuse_ino)
        await self._ceph.fallocate(of.handle, mode, offset, length)
        self.blocks.drop_range(of.ino, offset, offset + length, of.block_size)
        self.invalidator.file_changed(of.ino)

    # -- locks (docs/filesystem.md, "Locks") ------------------------------------------

    @ceph_errors
    async def getlk(self, inode: int, fh: int, owner: int, type: int, start: int,
                    length: int, pid: int,
                    ctx: pyfuse3.RequestContext) -> tuple[int, int, int, int]:
        of = await self._file(fh)
        found = await self._ceph.getlk(of.handle, Lock(type, start, length, pid), owner)
        return found.type, found.start, found.length, found.pid

    @ceph_errors
    async def setlk(self, inode: int, fh: int, owner: int, type: int, start: int,
                    length: int, pid: int, sleep: bool, ctx: pyfuse3.RequestContext) -> None:
        await self._set_lock(await self._file(fh), owner, Lock(type, start, length, pid), sleep)

    @ceph_errors
    async def flock(self, inode: int, fh: int, owner: int, op: int,
                    ctx: pyfuse3.RequestContext) -> None:
        """A flock lock is a POSIX lock on the whole file, of the open file's own owner.

        libcephfs 16 has no flock call on an Fh (only `ceph_flock` on its own
        descriptors), so this does what Linux's NFS client does: flock and fcntl
        locks then conflict with each other, and ceph-fuse's flock locks do not see
        ours. docs/filesystem.md says what this means.
        """
        try:
            kind = FLOCK_TYPES[op & ~fcntl.LOCK_NB]
        except KeyError:
            raise pyfuse3.FUSEError(errno.EINVAL) from None
        await self._set_lock(await self._file(fh), owner, Lock(kind, 0, 0),
                             wait=not op & fcntl.LOCK_NB)

    async def _set_lock(self, of: OpenFile, owner: int, lock: Lock, wait: bool) -> None:
        """Take, change or release `owner`'s lock; waiting polls, so it holds no thread.

        Owners that never took a lock on the file here have nothing to release:
        close(2) of every descriptor asks, and must not cost an MDS round trip.
        An unlock waits for an append in flight, which may be relying on the lock.
        """
        owners = self._lock_owners.get(of.ino, set())
        if lock.type == fcntl.F_UNLCK:
            if owner not in owners:
                return
            async with self._append_locks.get(of.ino) or contextlib.nullcontext():
                await self._ceph.setlk(of.handle, lock, owner)
            if lock.start == 0 and lock.length == 0:
                self._drop_lock_owner(of.ino, owner)
            return

        async def attempt() -> bool | None:
            try:
                await self._ceph.setlk(of.handle, lock, owner)
            except CephError as exc:
                if exc.errno != errno.EAGAIN or not wait:
                    raise
                return None
            holders = self._lock_owners.setdefault(of.ino, set())
            holders.add(owner)
            if len(holders) == 1:  # the file's first
                self._native.lock_owners_changed(of.ino)
            return True

        await until_granted(attempt)  # an interrupt (a signal to the waiter) cancels it

    def _drop_lock_owner(self, ino: int, owner: int) -> None:
        owners = self._lock_owners.get(ino)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del self._lock_owners[ino]
                self._native.lock_owners_changed(ino)

    # -- directories -------------------------------------------------------------------

    @ceph_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        """Open a directory; outside strict mode the kernel may cache its listing.

        It keeps the listing it has only if the directory has not moved since
        (see `ListingVersions`). A listing from the kernel's cache still counts as
        an open of every entry (docs/cache-and-coherence.md, "Listings, too"): our
        cached attributes are dropped, so that `ls -l` asks libcephfs.
        """
        cred = self._cred(ctx)
        inode_handle = await self._handle(inode)
        info = pyfuse3.FileInfo(keep_cache=False)
        if self._policy.cache_data:
            stx = await self._ceph.getattr(inode_handle, cred)
            unchanged = self._listings.unchanged(inode, stx)
            if not unchanged:
                await trio.to_thread.run_sync(self.invalidator.drop_kernel_cache_now, inode)
            if self._listings.may_cache(inode):
                info.cache_readdir = True
                info.keep_cache = unchanged
            if info.keep_cache:
                self._attrs.clear()
                self._native.expire_attributes()
        handle = await self._ceph.opendir(inode_handle, cred)
        info.fh = self._handles.allocate(handle.ino, 0, HandleKind.DIRECTORY)
        self._dirs[info.fh] = handle
        return info

    async def _dir(self, fh: int) -> DirHandle:
        handle = self._dirs.get(fh)
        if handle is None:
            record = self._record(fh, HandleKind.DIRECTORY)
            fuse_ino = self._inodes.to_fuse(record.ceph_ino)
            handle = await self._ceph.opendir(await self._handle(fuse_ino), ROOT)
            self._dirs[fh] = handle
            self.reopened_handles += 1
        return handle

    @ceph_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        """Reply from `start_id` on; offsets are libcephfs's own, stable across calls.

        For READDIRPLUS the kernel counts a lookup of every entry it accepts, so the
        table counts one too, with the reference each entry of the batch carries;
        entries the reply had no room for keep theirs until the next request (or
        releasedir). A plain READDIR counts none: its names are sent as libcephfs
        wrote them, a batch a call (`NameBatch`). `.` and `..` come first, as on
        ceph-fuse, and carry none (the kernel counts none).
        An error after entries were sent ends the reply short instead: the kernel
        asks again from the last one and meets the error then, and a request
        retried on a new session (fs/session.py) never sends an entry twice.
        """
        handle = await self._dir(fh)
        parent = self._inodes.to_fuse(handle.ino)
        if start_id == 0 and token.plus:
            self._listings.listing_started(parent)
        offset = start_id
        while True:
            try:
                batch = await (self._next_entries(fh, handle, offset) if token.plus
                               else self._next_names(fh, handle, offset))
            except CephError:
                if offset != start_id:
                    return
                raise
            if not len(batch):
                return
            rest: list[DirEntry] | NameBatch
            if isinstance(batch, NameBatch):  # read the next names while these are sent
                self._ahead.start(fh, handle, batch.offset_after(len(batch) - 1))
                offset, rest = self._reply_names(token, batch, offset)
            else:
                offset, rest = await self._reply_entries(token, batch, parent, offset)
            if len(rest):
                self._unsent[fh] = Unsent(offset, rest)
                return

    async def _unsent_at(self, fh: int, offset: int) -> list[DirEntry] | NameBatch | None:
        """What the last reply on `fh` had no room for, if it starts at `offset`;
        else None, and the references of what it was are put."""
        unsent = self._unsent.pop(fh, NOTHING_UNSENT)
        if unsent.start == offset:
            return unsent.entries
        await self._put_entries(unsent.entries)
        return None

    async def _next_names(self, fh: int, handle: DirHandle, offset: int) -> NameBatch:
        """A plain READDIR's names from `offset` on: those the last reply had no room
        for, else those read ahead after it (fs/dirahead.py), else a new batch."""
        unsent = await self._unsent_at(fh, offset)
        if isinstance(unsent, NameBatch):
            return unsent
        if unsent is not None:  # READDIRPLUS's, asked for by a plain READDIR
            await self._put_entries(unsent)
        ahead = await self._ahead.take(fh, offset)
        if ahead is not None:
            return ahead
        return await self._ceph.readdir_names(handle, offset, NAMES_BATCH)

    async def _next_entries(self, fh: int, handle: DirHandle, offset: int) -> list[DirEntry]:
        """READDIRPLUS's entries from `offset` on, each with its inode: those the last
        reply had no room for, else a new batch (names read ahead are dropped)."""
        unsent = await self._unsent_at(fh, offset)
        if isinstance(unsent, list):
            return unsent
        await self._ahead.drop(fh)  # no read may use the handle meanwhile
        return await self._ceph.readdir_batch(handle, offset, READDIR_BATCH,
                                              want_inodes=True, dots=True)

    async def _put_entries(self, entries: list[DirEntry] | NameBatch) -> None:
        """Put the references of READDIRPLUS entries (names carry none)."""
        if isinstance(entries, NameBatch):
            return
        for item in entries:
            if item.inode is not None:
                await self._ceph.put(item.inode)

    def _reply_names(self, token: pyfuse3.ReaddirToken, batch: NameBatch,
                     offset: int) -> tuple[int, NameBatch]:
        """Send what fits of a plain READDIR's names; return the offset after the
        last one sent (`offset` if none) and those not sent. A listing drops the
        cached attributes of what it shows, as `_reply_entry` does."""
        sent = pyfuse3.readdir_reply_dirents(token, batch.records, 0, self._inodes.root.ino)
        self._drop_attrs_all(self._inodes.to_fuse_all(batch.numbers(sent)))
        return (batch.offset_after(sent - 1) if sent else offset), batch.since(sent)

    async def _reply_entries(self, token: pyfuse3.ReaddirToken, batch: list[DirEntry],
                             parent: int, offset: int) -> tuple[int, list[DirEntry]]:
        """Send what fits of a READDIRPLUS batch; return the offset after the last
        one sent (`offset` if none) and those not sent, which keep their references
        (put here if sending fails)."""
        sent = 0
        try:
            while sent < len(batch) and self._reply_entry(token, batch[sent], parent):
                offset = batch[sent].offset
                sent += 1
        except BaseException:
            await self._put_entries(batch[sent:])
            raise
        return offset, batch[sent:]

    def _reply_entry(self, token: pyfuse3.ReaddirToken, item: DirEntry, parent: int) -> bool:
        """Send one entry of a READDIRPLUS and count the kernel's lookup of it (`.`
        and `..` carry no inode). False when the reply is full.

        A listing is an open of every entry it shows (close-to-open for `ls -l`):
        its attributes are what the MDS put in its readdir reply, which lacks what
        writers on other nodes have not reported yet, so the kernel gets them
        already expired and its stat of the entry comes to `getattr`, which asks
        libcephfs (answered from its caps, or the MDS, which recalls the writers'
        sizes) rather than our cache. ceph-fuse's listings give no attributes.
        """
        fuse_ino = self._inodes.to_fuse(item.stat.ino)
        entry = self._entry(fuse_ino, item.stat)
        entry.attr_timeout = 0
        if not pyfuse3.readdir_reply(token, item.name, entry, item.offset):
            return False
        self._drop_attrs(fuse_ino)
        if item.inode is not None:
            self._count_lookup(item.inode)
            if self._listings.listed(fuse_ino, parent) < ListingVersions.LOOKUPS_MEAN_STATS:
                self._native.tell_next_getattr(fuse_ino)  # a stat of it counts (`statted`)
        return True

    @ceph_errors
    async def releasedir(self, fh: int) -> None:
        await self._ahead.drop(fh)  # first: the read ahead may be using the handle
        unsent = self._unsent.pop(fh, NOTHING_UNSENT)
        handle = self._dirs.pop(fh, None)
        self._handles.free(fh)
        await self._put_entries(unsent.entries)
        if handle is not None:
            await self._ceph.releasedir(handle)

    @ceph_errors
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        """Wait until the MDS has made this node's changes of the directory durable.

        The MDS answers a create, rename or unlink before its journal holds it;
        the write-temp, rename, fsync-directory pattern needs this to wait for it.
        """
        handle = await self._handle(self._inodes.to_fuse((await self._dir(fh)).ino))
        await self._ceph.sync_inode(handle, datasync)

    @ceph_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        vfs = await self._ceph.statfs(self._inodes.root)
        data = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                     "f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(data, name, getattr(vfs, name))
        return data

    # -- extended attributes -----------------------------------------------------------

    def _stats_answer(self, pid: int) -> bytes:
        """The stats as JSON; a caller's second ask soon after its first gets the same.

        Every ask is a request the stats count, and a busy mount's move on between
        getfattr's ask for the size and its ask for the value: a longer value than the
        buffer it sized failed it with ERANGE.
        """
        now = time.monotonic()
        kept = self._stats_kept
        self._stats_kept = None
        if kept is not None and kept[0] == pid and now - kept[1] < STATS_KEPT_S:
            return kept[2]
        answer = json.dumps({**self.stats(), "op_stats": self.request_stats()}).encode()
        self._stats_kept = (pid, now, answer)
        return answer

    @ceph_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        if name == STATS_XATTR and inode == pyfuse3.ROOT_INODE:
            return self._stats_answer(ctx.pid)
        if not name.startswith(SHARED_XATTR_PREFIXES):
            return await self._ceph.getxattr(await self._handle(inode), name, self._cred(ctx))
        known = self._xattrs.get(inode)
        if known is not None and name in known:
            self.blocks.stats.xattr_hits += 1
            value = known[name]
        else:
            value = await self._fetch_xattr(inode, name, ctx)
            self._remember_xattr(inode, name, value)
            await self._prefetch_xattr(inode, name, self._cred(ctx))
        if value is None:
            raise pyfuse3.FUSEError(errno.ENODATA)
        return value

    def _remember_xattr(self, inode: int, name: bytes, value: bytes | None) -> None:
        """Cache an answer; of file capabilities, only their absence.

        The kernel asks for `security.capability` before every write through the
        page cache, to strip it: the absence is cached, because the write itself
        strips capabilities set meanwhile on another node (CephClient.write). A
        value is not: the kernel would remove capabilities that are gone already,
        and a failed removal fails the write.
        """
        if name == CAPABILITY_XATTR and value is not None:
            return
        known = self._xattrs.get(inode)
        if known is None:
            self._xattrs.set(inode, {name: value})
        else:
            known[name] = value  # keeps the entry's expiry

    async def _prefetch_xattr(self, inode: int, name: bytes, cred: Credentials) -> None:
        """The same xattr of the entries listed after `inode` (`ls -l` asks every
        entry for `security.selinux`), in one thread hop."""
        fetched = await self._fetch_ahead(
            inode, lambda number: name not in (self._xattrs.get(number) or {}),
            functools.partial(self._ceph.sync.getxattr, name=name, cred=cred))
        for number, value in fetched:
            if isinstance(value, bytes):
                self._remember_xattr(number, name, value)
            elif value.errno == errno.ENODATA:
                self._remember_xattr(number, name, None)

    async def _fetch_xattr(self, inode: int, name: bytes,
                           ctx: pyfuse3.RequestContext) -> bytes | None:
        """An xattr's value, None when the inode has none of that name."""
        try:
            return await self._ceph.getxattr(await self._handle(inode), name, self._cred(ctx))
        except CephError as exc:
            if exc.errno == errno.ENODATA:
                return None
            raise

    @ceph_errors
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._changed_here(inode)
        await self._ceph.setxattr(await self._handle(inode), name, value, self._cred(ctx))

    @ceph_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self._ceph.listxattr(await self._handle(inode), self._cred(ctx))

    @ceph_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._changed_here(inode)
        await self._ceph.removexattr(await self._handle(inode), name, self._cred(ctx))

    # -- teardown ----------------------------------------------------------------------

    async def release_all(self) -> None:
        """Close every handle and put every reference: called once the kernel is gone."""
        self._native.clear_all()
        for of in self._files.values():
            await self._reader.quiesce(of)
            await self._ceph.release(of.handle)
        for fh, dir_handle in self._dirs.items():
            await self._ahead.drop(fh)
            await self._ceph.releasedir(dir_handle)
        for unsent in self._unsent.values():
            await self._put_entries(unsent.entries)
        self._files.clear()
        self._dirs.clear()
        self._unsent.clear()
        for inode in self._inodes.drain():
            await self._ceph.put(inode)
