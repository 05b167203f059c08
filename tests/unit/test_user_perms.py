"""UserPerm objects of libcephfs, freed by the garbage collector wherever it runs."""

from __future__ import annotations

import threading

from cephmount.ceph._libcephfs import ffi, lib
from cephmount.ceph._perms import UserPermCache
from cephmount.ceph.structs import Credentials


def test_a_user_perm_freed_while_cffi_holds_its_lock_does_not_hang() -> None:
    """The collector may free one while a thread parses a type for ffi.new, under
    cffi's lock; the destructor must not need that lock (a mount hung so)."""
    cache = UserPermCache(capacity=1)
    cache.get(Credentials(1000, 1000, (1000,)))
    lib.__dict__.pop("ceph_userperm_destroy", None)  # as before its first use
    freed = threading.Event()

    def free_under_the_lock() -> None:
        with ffi._lock:
            cache.clear()  # the last reference: the destructor runs here
        freed.set()

    threading.Thread(target=free_under_the_lock, daemon=True).start()
    assert freed.wait(timeout=10)
