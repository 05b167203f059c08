"""The FUSE operations: pyfuse3 requests mapped onto libcephfs's low-level API.

Every request runs as a trio task on the FUSE thread; every libcephfs call goes
to a worker thread through the async client, carrying the caller's credentials
so that Ceph checks permissions for that caller, as ceph-fuse does.
See docs/filesystem.md for the thread model.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any, ParamSpec, TypeVar

import pyfuse3
from cachetools import TTLCache

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.errors import CephError
from cephmount.ceph.structs import Credentials, DirHandle, FileHandle, Inode, StatX
from cephmount.fs.inodes import InodeTable

log = logging.getLogger(__name__)

READDIR_BATCH = 256
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class KernelCaching:
    """How long the kernel may keep what we tell it, and how it treats file data."""

    attr_timeout: float = 1.0
    entry_timeout: float = 1.0
    direct_io: bool = False


def ceph_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn a CephError into the FUSEError the kernel understands."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except CephError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None

    return wrapper


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

    def __init__(self, ceph: AsyncCephClient, root: Inode,
                 caching: KernelCaching | None = None, read_only: bool = False) -> None:
        super().__init__()
        self._ceph = ceph
        self._inodes: InodeTable[Inode] = InodeTable(root)
        self._caching = caching or KernelCaching()
        self._read_only = read_only
        self._callers = CallerGroups()
        self._handle_ids = count(1)
        self._files: dict[int, FileHandle] = {}
        self._dirs: dict[int, DirHandle] = {}

    # -- helpers -----------------------------------------------------------------------

    def _entry(self, fuse_ino: int, stx: StatX) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = fuse_ino
        entry.generation = 0
        entry.entry_timeout = self._caching.entry_timeout
        entry.attr_timeout = self._caching.attr_timeout
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

    async def _remember(self, handle: Inode, stx: StatX) -> pyfuse3.EntryAttributes:
        """Count a lookup the kernel will hold and describe the entry to it."""
        fuse_ino, surplus = self._inodes.add_lookup(handle)
        if surplus is not None:
            await self._ceph.put(surplus)
        return self._entry(fuse_ino, stx)

    def _writable(self) -> None:
        if self._read_only:
            raise pyfuse3.FUSEError(errno.EROFS)

    def _cred(self, ctx: pyfuse3.RequestContext) -> Credentials:
        return self._callers.credentials(ctx)

    def _file(self, fh: int) -> FileHandle:
        try:
            return self._files[fh]
        except KeyError:
            raise pyfuse3.FUSEError(errno.EBADF) from None

    def _new_file(self, handle: FileHandle) -> pyfuse3.FileInfo:
        fh = next(self._handle_ids)
        self._files[fh] = handle
        return pyfuse3.FileInfo(fh=fh, direct_io=self._caching.direct_io, keep_cache=False)

    # -- names -------------------------------------------------------------------------

    @ceph_errors
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        handle, stx = await self._ceph.lookup(
            self._inodes.handle(parent_inode), name, self._cred(ctx))
        return await self._remember(handle, stx)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for fuse_ino, nlookup in inode_list:
            handle = self._inodes.forget(fuse_ino, nlookup)
            if handle is not None:
                await self._ceph.put(handle)

    @ceph_errors
    async def getattr(self, inode: int,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        stx = await self._ceph.getattr(self._inodes.handle(inode), self._cred(ctx))
        return self._entry(inode, stx)

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
        stx = await self._ceph.setattr(self._inodes.handle(inode), self._cred(ctx), **changes)
        return self._entry(inode, stx)

    @ceph_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._ceph.readlink(self._inodes.handle(inode), self._cred(ctx))

    @ceph_errors
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        handle, stx = await self._ceph.mknod(
            self._inodes.handle(parent_inode), name, mode, rdev, self._cred(ctx))
        return await self._remember(handle, stx)

    @ceph_errors
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        handle, stx = await self._ceph.mkdir(
            self._inodes.handle(parent_inode), name, mode, self._cred(ctx))
        return await self._remember(handle, stx)

    @ceph_errors
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        handle, stx = await self._ceph.symlink(
            self._inodes.handle(parent_inode), name, target, self._cred(ctx))
        return await self._remember(handle, stx)

    @ceph_errors
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        handle = self._inodes.handle(inode)
        stx = await self._ceph.link(handle, self._inodes.handle(new_parent_inode), new_name,
                                    self._cred(ctx))
        self._inodes.count_lookup(inode)
        return self._entry(inode, stx)

    @ceph_errors
    async def unlink(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        await self._ceph.unlink(self._inodes.handle(parent_inode), name, self._cred(ctx))

    @ceph_errors
    async def rmdir(self, parent_inode: int, name: bytes,
                    ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        await self._ceph.rmdir(self._inodes.handle(parent_inode), name, self._cred(ctx))

    @ceph_errors
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        cred = self._cred(ctx)
        old_parent = self._inodes.handle(parent_inode_old)
        new_parent = self._inodes.handle(parent_inode_new)
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)  # libcephfs has no atomic exchange
        if flags & pyfuse3.RENAME_NOREPLACE:
            await self._refuse_existing(new_parent, name_new, cred)
        await self._ceph.rename(old_parent, name_old, new_parent, name_new, cred)

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
        handle = await self._ceph.open(self._inodes.handle(inode), flags, self._cred(ctx))
        return self._new_file(handle)

    @ceph_errors
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._writable()
        handle, stx, fh = await self._ceph.create(
            self._inodes.handle(parent_inode), name, mode, flags, self._cred(ctx))
        return self._new_file(fh), await self._remember(handle, stx)

    @ceph_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._ceph.read(self._file(fh), off, size)

    @ceph_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self._ceph.write(self._file(fh), off, buf)

    @ceph_errors
    async def flush(self, fh: int) -> None:
        await self._ceph.flush(self._file(fh))

    @ceph_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._ceph.fsync(self._file(fh), datasync)

    @ceph_errors
    async def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is not None:
            await self._ceph.release(handle)

    # -- directories -------------------------------------------------------------------

    @ceph_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        handle = await self._ceph.opendir(self._inodes.handle(inode), self._cred(ctx))
        fh = next(self._handle_ids)
        self._dirs[fh] = handle
        return fh

    @ceph_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        """Reply from `start_id` on; offsets are libcephfs's own, stable across calls."""
        try:
            handle = self._dirs[fh]
        except KeyError:
            raise pyfuse3.FUSEError(errno.EBADF) from None
        offset = start_id
        while True:
            batch = await self._ceph.readdir_batch(handle, offset, READDIR_BATCH)
            if not batch:
                return
            for item in batch:
                entry = self._entry(self._inodes.to_fuse(item.stat.ino), item.stat)
                if not pyfuse3.readdir_reply(token, item.name, entry, item.offset):
                    return
                offset = item.offset

    @ceph_errors
    async def releasedir(self, fh: int) -> None:
        handle = self._dirs.pop(fh, None)
        if handle is not None:
            await self._ceph.releasedir(handle)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        """Directory operations are synchronous with the MDS: nothing is left to flush."""

    @ceph_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        vfs = await self._ceph.statfs(self._inodes.root)
        data = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                     "f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(data, name, getattr(vfs, name))
        return data

    # -- extended attributes -----------------------------------------------------------

    @ceph_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._ceph.getxattr(self._inodes.handle(inode), name, self._cred(ctx))

    @ceph_errors
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        await self._ceph.setxattr(self._inodes.handle(inode), name, value, self._cred(ctx))

    @ceph_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self._ceph.listxattr(self._inodes.handle(inode), self._cred(ctx))

    @ceph_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        await self._ceph.removexattr(self._inodes.handle(inode), name, self._cred(ctx))

    # -- teardown ----------------------------------------------------------------------

    async def release_all(self) -> None:
        """Close every handle and put every reference: called once the kernel is gone."""
        for handle in self._files.values():
            await self._ceph.release(handle)
        for dir_handle in self._dirs.values():
            await self._ceph.releasedir(dir_handle)
        self._files.clear()
        self._dirs.clear()
        for inode in self._inodes.drain():
            await self._ceph.put(inode)
