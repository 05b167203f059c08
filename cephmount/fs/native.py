"""Which open files have their READs and WRITEs, and which directories their LOOKUPs,
answered in C, off the trio thread.

pyfuse3 (patched, patches/pyfuse3) calls a file handle's native handlers on threads
of its own, with no Python between the kernel's request and libcephfs
(ceph/native_build.py): a request's Python handling and thread hop were most of a
small read's or write's time (docs/performance.md, "Data requests in C"). What the
Python handlers do besides calling libcephfs decides which handles may have them:

- Reads: only those the Python `read` would pass straight to libcephfs: every
  handle in strict mode, and a handle open for writing (its file's reads bypass
  our block cache while it is open).
- Flushes (a close): every handle's, answered with nothing to do (as the Python
  `flush` does), except where the closing owner may hold a lock to give up (the
  file has lock owners: `lock_owners_changed`) or the handle has lost writes to
  report: those go to Python.
- Writes: not O_APPEND (an append is serialised across nodes in Python). A handle
  CREATE made writes natively from its first write (`created`), whose handler first
  sets the handle's unsynced mark (a successor reports writes a dead worker may have
  lost) in the handle table's file (`unsynced_mark`). Other handles only after
  `WRITES_BEFORE_NATIVE` writes through Python since the open or the last fsync (the
  first marks them unsynced): a file opened for writing may be only read, and one
  written once is spared the setting up and, at its release, the refresh below.
  fsync takes the native writes away again. A write to a file with capabilities, or one that
  fails, goes back to Python, which strips them or answers the error.
- While a handle writes natively, what we cache of its file's attributes and
  blocks misses those writes: the caller asks `writing` before answering
  attributes from its cache, and drops the file's blocks and refreshes its
  attributes when the handle stops writing natively.
- Attributes: the GETATTRs of every file the kernel holds whose attributes
  `CephOperations` has seen (`attributes`), of every file written natively, and of
  every directory whose lookups are answered in C, are answered in C, by libcephfs:
  its own view (with this client's writes), checked against the MDS at most once a
  `cache_ttl` as `CephOperations.getattr` does, and wherever it drops its cached
  entry (a change here, a listing that sent the file: `expire`; the kernel serving
  a cached listing: `expire_attributes`; a file's, an unlink answered in C). An
  answer whose change counter, size or mtime moved since the change checks last saw
  them (or, a directory's, since this node changed it: `kept`) is told to
  `CephOperations.attributes_sent` before any request it lets through, so our
  blocks of a file another node changed are dropped before the next read (not
  while a handle writes the file natively: its end drops them). So are their
  GETXATTRs of `security.` attributes, which any caller may read (the kernel's
  ask for capabilities before each write; `ls -l`'s for `security.selinux`):
  from libcephfs's xattr caps, coherent across nodes.
- Lookups: in every directory a lookup reached Python in (`serve_lookups`), until
  the kernel forgets it. libcephfs is asked on the reading thread, as the caller;
  an absent name is answered there (nothing of ours caches absence), and so is a
  name found, with libcephfs's attributes and the policy's timeouts. pyfuse3 then
  tells `CephOperations.looked_up`, before it takes any request the answer let
  through, and it counts the kernel's lookup in the inode table and caches the
  entry from libcephfs's answer (`take_lookup`) as `lookup` does. A name whose
  number is made in Python (a snapshot's, the root's) goes to
  `CephOperations.lookup` with that answer.
- Unlinks: in the same directories (a read-only mount's kernel sends none).
  libcephfs is asked as the caller; a success is answered there, and pyfuse3 tells
  `CephOperations.unlinked` before it takes any request the answer let through (so
  no later request finds the name, or the directory's attributes, as they were);
  a failure goes to `CephOperations.unlink`, which asks again and answers it.
- Creates: in the same directories, but not on a read-only mount. libcephfs makes
  and opens the file as the caller on the reading thread, and the request goes on
  to `CephOperations.create`, which takes what was made (`take_created`) instead of
  a thread hop to `ll_create`, and answers; a failure is asked again there.

Invariants: a handler is unlinked (no request reaches it) before its file handle is
released or its directory's reference put, and no call of it runs when the Ceph
client it points into is closed (`clear_all`, also after `close` when a lost
session is dropped); what a call uses (the `struct cm_file`, `cm_inode` or
`cm_dir`, the root UserPerm) is kept here until no call of it can run. An entry a
lookup handler found (a file a create function made) holds its reference (and its
open file) until its request, or the notice of its answer, takes it, or until the
client goes (`clear_all` frees the entry once no handler of the client can add one).
Clearing never waits on the trio thread for a call in flight, except where none can
be (`clear_all`, once the main loop is over).
A handler that cannot be set leaves its handle or inode on the Python path.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyfuse3
import trio

from cephmount.ceph.client import (
    CephClient,
    expire_native_attributes,
    native_attributes_seen,
    native_functions,
)
from cephmount.ceph.errors import CephError
from cephmount.ceph.structs import FileHandle, Inode, StatX
from cephmount.fs.coherence import CoherencePolicy
from cephmount.fs.opstats import LATENCY_BUCKETS
from cephmount.fs.reads import OpenFile

WRITES_BEFORE_NATIVE = 2
SHARED_XATTRS = b"security."  # the namespace whose GETXATTRs are answered in C

log = logging.getLogger(__name__)


@dataclass
class _Registered:
    of: OpenFile
    writes: bool
    owner: Any  # what the C functions are called with: kept alive here


class NativeHandlers:
    def __init__(self, client: CephClient, policy: CoherencePolicy, root_ino: int,
                 inode_of: Callable[[int], Inode],
                 unsynced_mark: Callable[[int], tuple[int, int]],
                 has_lock_owners: Callable[[int], bool], creates: bool) -> None:
        """`inode_of` gives the inode table's handle of a FUSE inode number;
        `unsynced_mark` where a file handle's unsynced mark is (HandleStore);
        `has_lock_owners` whether a Ceph inode has lock owners (CephOperations);
        `creates`: whether files may be made (not on a read-only mount)."""
        self._client = client
        self._unsynced_mark = unsynced_mark
        self._has_lock_owners = has_lock_owners
        self._creates = creates
        self._policy = policy
        self._root_ino = root_ino
        self._inode_of = inode_of
        self._functions = native_functions()
        self._registered: dict[int, _Registered] = {}
        self._writers: Counter[int] = Counter()  # fuse inode -> handles writing natively
        self._inodes: dict[int, Any] = {}  # fuse inode -> owner of its struct cm_inode
        self._dirs: dict[int, Any] = {}  # fuse inode -> owner of its struct cm_dir
        self._python_writes: Counter[int] = Counter()  # fh -> writes since open or fsync
        self._retired: list[Any] = []  # owners of cleared handlers a call may still use
        self._closed = False
        pyfuse3.set_native_latency_bounds(LATENCY_BUCKETS)

    def opened(self, fh: int, of: OpenFile) -> None:
        """A new handle: native flushes, and reads where the Python read would go
        straight through."""
        self._set(fh, of, writes=False)

    def created(self, fh: int, of: OpenFile) -> None:
        """A new handle of a file CREATE made: written natively from its first write
        (the small file's create and write), read natively where `opened` would."""
        if of.writable and not of.flags & os.O_APPEND and self._set(fh, of, writes=True):
            return
        self.opened(fh, of)

    def lock_owners_changed(self, ino: int) -> None:
        """The Ceph inode `ino` gained its first lock owner or lost its last: its
        handles' flushes go to Python while it has any (the closing owner's locks are
        given up there)."""
        for registered in self._registered.values():
            if registered.of.ino == ino:
                registered.owner[0].flush_in_python = self._flush_in_python(registered.of)

    def _flush_in_python(self, of: OpenFile) -> bool:
        """Whether a close of `of` needs Python: locks to give up, lost writes to report."""
        return of.lost_writes or self._has_lock_owners(of.ino)

    def written(self, fh: int, of: OpenFile) -> bool:
        """After a write through Python: True if the handle's next writes are native."""
        registered = self._registered.get(fh)
        if of.flags & os.O_APPEND or not of.unsynced or (registered and registered.writes):
            return False
        self._python_writes[fh] += 1
        if self._python_writes[fh] < WRITES_BEFORE_NATIVE:
            return False
        self.clear(fh)
        if self._set(fh, of, writes=True):
            return True
        self.opened(fh, of)
        return False

    async def stop_writes(self, fh: int) -> bool:
        """Before an fsync: writes come through Python again, and no native one is in
        flight once this returns (the fsync covers it). True if they were native."""
        self._python_writes.pop(fh, None)
        registered = self._registered.get(fh)
        if registered is None or not registered.writes:
            return False
        self.clear(fh)
        self.opened(fh, registered.of)
        await trio.to_thread.run_sync(pyfuse3.drain_native_handlers)
        return True

    def clear(self, fh: int) -> bool:
        """No request of `fh` reaches its native handler after this (a call in flight
        may still run). True if its writes were native."""
        self._python_writes.pop(fh, None)
        registered = self._registered.pop(fh, None)
        if registered is None:
            return False
        fuse_ino = registered.of.fuse_ino
        if registered.writes:
            self._writers[fuse_ino] -= 1
            if not self._writers[fuse_ino]:
                del self._writers[fuse_ino]
                self._set_node(fuse_ino, writing=0)
        pyfuse3.clear_native_handlers((fh,), (), False)
        self._retire(registered.owner)
        return registered.writes

    def close(self) -> None:
        """The Ceph client is being dropped: no request reaches any handler of ours
        after this, and none is set again; `clear_all` waits for the calls in flight."""
        self._closed = True
        fhs, inodes = list(self._registered), list(self._inodes)  # directories' too
        self._retired.extend(r.owner for r in self._registered.values())
        self._retired.extend(self._inodes.values())
        self._registered.clear()
        self._inodes.clear()
        self._dirs.clear()
        self._writers.clear()
        self._python_writes.clear()
        pyfuse3.clear_native_handlers(fhs, inodes, False)

    def clear_all(self) -> None:
        """`close`, and wait for the calls in flight (blocks: any thread, but only
        where none can be on the trio thread). Then free the entries lookup handlers
        found that no request took (their references go with the client)."""
        self.close()
        pyfuse3.drain_native_handlers()
        self._client.drop_lookups()

    @property
    def handles(self) -> int:
        return len(self._registered)

    @property
    def lookup_dirs(self) -> int:
        return len(self._dirs)

    def waiting_lookups(self) -> int:
        return self._client.waiting_lookups()

    @staticmethod
    def stats() -> Mapping[str, Mapping[str, Any]]:
        """What the native handlers answered, since the process started."""
        return pyfuse3.native_handler_stats()

    def serve_lookups(self, fuse_ino: int, directory: Inode) -> None:
        """Lookups (and unlinks, creates) in `directory` (known to the kernel as
        `fuse_ino`) are asked of libcephfs on pyfuse3's threads from now on, until
        `forgotten`."""
        if self._closed or fuse_ino in self._dirs:
            return
        try:
            address, owner = self._client.native_dir(
                directory, fuse_ino, self._root_ino, self._policy.entry_timeout,
                self._policy.attr_timeout, self._policy.cache_ttl)
            functions = self._functions
            pyfuse3.set_native_inode_handlers(
                fuse_ino, address, getattr=functions.getattr,
                attr_timeout=self._policy.attr_timeout, getxattr=functions.getxattr,
                xattr_name=SHARED_XATTRS, lookup=functions.lookup, unlink=functions.unlink,
                create=functions.create if self._creates else 0)
        except (OSError, CephError) as exc:
            log.warning("lookups in inode %d stay on the Python path: %s", fuse_ino, exc)
            return
        self._dirs[fuse_ino] = self._inodes[fuse_ino] = owner

    def take_lookup(self, parent: int, name: bytes, pid: int) -> tuple[Inode, StatX] | None:
        """What a lookup handler found for `name` in `parent` for the caller `pid`
        (see CephClient.take_lookup)."""
        return self._client.take_lookup(parent, name, pid)

    def take_created(self, parent: int, name: bytes, pid: int
                     ) -> tuple[Inode, StatX, FileHandle] | None:
        """What a create function made as `name` in `parent` for the caller `pid`
        (see CephClient.take_created)."""
        return self._client.take_created(parent, name, pid)

    def forgotten(self, fuse_ino: int) -> None:
        """The kernel forgot `fuse_ino`: before its reference is put."""
        owner = self._inodes.pop(fuse_ino, None)
        self._dirs.pop(fuse_ino, None)
        if owner is not None:
            pyfuse3.clear_native_handlers((), (fuse_ino,), False)
            self._retire(owner)

    def writing(self, fuse_ino: int) -> bool:
        """Whether a handle writes `fuse_ino` natively (our cached attributes miss it)."""
        return fuse_ino in self._writers

    def serves_attributes(self, fuse_ino: int) -> bool:
        """Whether `fuse_ino`'s GETATTRs are answered in C: one that reaches Python
        was handed back, and the change checks need fresh attributes."""
        return fuse_ino in self._inodes

    def attributes(self, fuse_ino: int, stx: StatX) -> None:
        """The change checks saw `stx` of `fuse_ino`, fresh: its GETATTRs are answered
        in C from now on (a directory's once its lookups are: `serve_lookups`), checked
        again a `cache_ttl` later (as our cache's entry would be), and told only of
        attributes that differ."""
        owner = self._inodes.get(fuse_ino)
        if owner is None:
            if self._closed or stat.S_ISDIR(stx.mode):
                return
            try:
                owner = self._serve_attributes(fuse_ino)
            except (OSError, CephError, pyfuse3.FUSEError) as exc:
                log.warning("attributes of inode %d stay on the Python path: %s", fuse_ino, exc)
                return
        native_attributes_seen(owner[0], stx)

    def serves_directory(self, fuse_ino: int) -> bool:
        """Whether `fuse_ino` is a directory whose requests are answered in C."""
        return fuse_ino in self._dirs

    def kept(self, fuse_ino: int, stx: StatX) -> None:
        """After a change of this node's own, CephOperations saw `stx` of `fuse_ino`:
        a directory's GETATTRs do not tell of them (a file's still do: another node's
        change may have come with them, and our blocks must go)."""
        owner = self._dirs.get(fuse_ino)
        if owner is not None:
            native_attributes_seen(owner[0], stx, kept=True)

    def expire(self, fuse_ino: int) -> None:
        """`fuse_ino`'s next GETATTR is checked against the MDS (our cache's entry of
        it was dropped: a change here, a listing that sent it)."""
        self._set_node(fuse_ino, checked_until_ns=0)

    def expire_all(self, fuse_inos: set[int]) -> None:
        """`expire` each of `fuse_inos` (a listing's)."""
        for fuse_ino in fuse_inos & self._inodes.keys():
            self._inodes[fuse_ino][0].checked_until_ns = 0

    def tell_next_getattr(self, fuse_ino: int) -> None:
        """`CephOperations.attributes_sent` is told of `fuse_ino`'s next GETATTR
        answered in C (a listing counts the stats of its first entries)."""
        self._set_node(fuse_ino, tell_next=1)

    def _set_node(self, fuse_ino: int, **fields: int) -> None:
        """Set `fields` of `fuse_ino`'s struct cm_inode, if it has one."""
        owner = self._inodes.get(fuse_ino)
        if owner is not None:
            for name, value in fields.items():
                setattr(owner[0], name, value)

    @staticmethod
    def expire_attributes() -> None:
        """Every inode's next GETATTR is checked against the MDS."""
        expire_native_attributes()

    def _retire(self, owner: Any) -> None:
        if not pyfuse3.draining_native_handlers():
            self._retired.clear()
        self._retired.append(owner)

    def _set(self, fh: int, of: OpenFile, writes: bool) -> bool:
        """Set `fh`'s handlers (and its inode's, for writes); False if they are not."""
        if self._closed:
            return False
        try:
            if writes:  # its GETATTRs tell nothing while it is written natively
                node = (self._inodes.get(of.fuse_ino) or self._serve_attributes(of.fuse_ino))[0]
                node.writing = 1
            mark = self._unsynced_mark(fh) if writes and not of.unsynced else None
            address, owner = self._client.native_file(of.handle, mark)
            owner[0].flush_in_python = self._flush_in_python(of)
            functions = self._functions
            reads = not of.block_size or of.writable
            pyfuse3.set_native_handler(fh, functions.read if reads else 0,
                                       functions.write if writes else 0, address,
                                       flush=functions.flush)
        except (OSError, CephError, pyfuse3.FUSEError) as exc:
            log.warning("handle %d stays on the Python path: %s", fh, exc)
            if writes and not self._writers[of.fuse_ino]:
                self._set_node(of.fuse_ino, writing=0)
            return False
        self._registered[fh] = _Registered(of, writes, owner)
        if writes:
            self._writers[of.fuse_ino] += 1
        return True

    def _serve_attributes(self, fuse_ino: int) -> Any:
        """Answer `fuse_ino`'s GETATTRs and `security.` GETXATTRs in C: the owner
        of its struct cm_inode."""
        address, owner = self._client.native_inode(
            self._inode_of(fuse_ino), fuse_ino, self._policy.cache_ttl)
        pyfuse3.set_native_inode_handlers(
            fuse_ino, address, getattr=self._functions.getattr,
            attr_timeout=self._policy.attr_timeout,
            getxattr=self._functions.getxattr, xattr_name=SHARED_XATTRS)
        self._inodes[fuse_ino] = owner
        return owner
