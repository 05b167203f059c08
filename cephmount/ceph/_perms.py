"""A bounded cache of libcephfs `UserPerm *`, one per Credentials."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from cephmount.ceph._libcephfs import ffi, lib
from cephmount.ceph.structs import Credentials

# Bound now, not on first use: cffi resolves a function of an ABI-mode library under
# its own lock, and the destructor can run from the garbage collector inside a thread
# that holds that lock (parsing a type for ffi.new), which then waited for itself.
_destroy = lib.ceph_userperm_destroy


def _new_perm(cred: Credentials) -> Any:
    """A UserPerm that is destroyed when the last Python reference goes.

    ceph_userperm_new keeps the gid list pointer without copying it, so the
    array must live as long as the UserPerm: the destructor closure holds it.
    An entry evicted from the cache while another thread is inside a call
    with it stays alive through that thread's reference.
    """
    gids = ffi.new("gid_t[]", list(cred.groups))
    raw = lib.ceph_userperm_new(cred.uid, cred.gid, len(cred.groups), gids)
    if raw == ffi.NULL:
        raise MemoryError("ceph_userperm_new failed")

    def destroy(perm: Any, _gids: Any = gids) -> None:
        _destroy(perm)

    return ffi.gc(raw, destroy)


class UserPermCache:
    """Least-recently-used `UserPerm *` per Credentials, at most `capacity`."""

    def __init__(self, capacity: int = 128) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._perms: OrderedDict[Credentials, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._perms)

    def get(self, cred: Credentials) -> Any:
        """The UserPerm for `cred`; keep the returned object while it is in use."""
        with self._lock:
            perm = self._perms.get(cred)
            if perm is not None:
                self._perms.move_to_end(cred)
                return perm
        perm = _new_perm(cred)
        with self._lock:
            perm = self._perms.setdefault(cred, perm)
            while len(self._perms) > self._capacity:
                self._perms.popitem(last=False)
        return perm

    def clear(self) -> None:
        """Drop every entry (each is destroyed once no call still uses it)."""
        with self._lock:
            self._perms.clear()
