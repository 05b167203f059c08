"""Builds `cephmount.ceph._native_io`: the C functions pyfuse3's native handlers call.

A READ or WRITE of a file handle with native handlers (docs/performance.md, "Data
requests in C") is answered on one of pyfuse3's threads by `cm_read` or `cm_write`,
with no Python in between. A write first asks libcephfs (from its xattr caps, no
MDS round trip while it holds them) whether the file has capabilities: if it has,
or the ask fails, the write fails with EPERM or that error, which hands the request
to `CephOperations.write`, whose `CephClient.write` removes them first, as every
write must. While a file is written natively, `cm_get_capabilities` answers the
kernel's own ask for them before each write, the same way, and `cm_getattr` its
asks for the attributes: libcephfs's view, which includes this client's writes,
checked against the MDS (where libcephfs's caps do not cover them) at most once a
`cache_ttl`, as `CephOperations.getattr` does.

`scripts/install.sh` runs this (cffi's API mode, gcc, libcephfs-dev's headers);
it writes the extension module next to this file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cffi

DECLARATIONS = """
struct cm_file {
    void *cmount;
    void *fh;
    void *inode;
    void *root;
};
ssize_t cm_read(void *arg, char *buf, size_t size, long off);
ssize_t cm_write(void *arg, char *buf, size_t size, long off);
struct cm_inode {
    void *cmount;
    void *inode;
    void *root;
    uint64_t fuse_ino;
    uint64_t ttl_ns;
    uint64_t checked_until_ns;
};
ssize_t cm_get_capabilities(void *arg, char *buf, size_t size, long off);
ssize_t cm_getattr(void *arg, char *buf, size_t size, long off);
"""

SOURCE = r"""
#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <cephfs/libcephfs.h>

struct cm_file {
    void *cmount;           /* struct ceph_mount_info * */
    void *fh;               /* struct Fh * */
    void *inode;            /* struct Inode *, pinned by the Fh */
    void *root;             /* UserPerm * of root */
};

/* An inode written natively (what GETATTR and GETXATTR handlers get). */
struct cm_inode {
    void *cmount;
    void *inode;            /* struct Inode *, with a reference of the kernel's */
    void *root;
    uint64_t fuse_ino;      /* the kernel's number for it */
    uint64_t ttl_ns;        /* how long a check against the MDS holds */
    uint64_t checked_until_ns;  /* CLOCK_MONOTONIC */
};

static const char CAPABILITY[] = "security.capability";

ssize_t cm_read(void *arg, char *buf, size_t size, long off)
{
    struct cm_file *file = arg;
    return ceph_ll_read(file->cmount, file->fh, off, size, buf);
}

ssize_t cm_write(void *arg, char *buf, size_t size, long off)
{
    struct cm_file *file = arg;
    int found = ceph_ll_getxattr(file->cmount, file->inode, CAPABILITY, NULL, 0, file->root);
    if (found != -ENODATA)
        return found < 0 ? found : -EPERM;
    return ceph_ll_write(file->cmount, file->fh, off, size, buf);
}

ssize_t cm_get_capabilities(void *arg, char *buf, size_t size, long off)
{
    struct cm_inode *node = arg;
    (void)off;
    return ceph_ll_getxattr(node->cmount, node->inode, CAPABILITY, size ? buf : NULL, size,
                            node->root);
}

static uint64_t now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + now.tv_nsec;
}

ssize_t cm_getattr(void *arg, char *buf, size_t size, long off)
{
    struct cm_inode *node = arg;
    struct ceph_statx stx;
    struct stat *st = (struct stat *)buf;
    uint64_t now = now_ns();
    int cached = now < __atomic_load_n(&node->checked_until_ns, __ATOMIC_RELAXED);
    (void)off;
    if (size < sizeof(*st))
        return -EINVAL;
    int ret = ceph_ll_getattr(node->cmount, node->inode, &stx, CEPH_STATX_ALL_STATS,
                              cached ? AT_STATX_DONT_SYNC : 0, node->root);
    if (ret < 0)
        return ret;
    if (!cached)
        __atomic_store_n(&node->checked_until_ns, now + node->ttl_ns, __ATOMIC_RELAXED);
    memset(st, 0, sizeof(*st));
    st->st_ino = node->fuse_ino;
    st->st_mode = stx.stx_mode;
    st->st_nlink = stx.stx_nlink;
    st->st_uid = stx.stx_uid;
    st->st_gid = stx.stx_gid;
    st->st_rdev = stx.stx_rdev;
    st->st_size = stx.stx_size;
    st->st_blksize = stx.stx_blksize;
    st->st_blocks = stx.stx_blocks;
    st->st_atim = stx.stx_atime;
    st->st_mtim = stx.stx_mtime;
    st->st_ctim = stx.stx_ctime;
    return 0;
}
"""


def builder() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(DECLARATIONS)
    ffi.set_source("cephmount.ceph._native_io", SOURCE, libraries=["cephfs"],
                   define_macros=[("_FILE_OFFSET_BITS", "64")],
                   extra_compile_args=["-O2", "-Wall", "-Werror"])
    return ffi


def main() -> None:
    """Build next to this file (the package is installed editable), in a scratch
    directory: cffi's setuptools would read the project's pyproject.toml."""
    with tempfile.TemporaryDirectory() as scratch:
        built = Path(builder().compile(tmpdir=scratch))
        shutil.copy2(built, Path(__file__).parent / built.name)


if __name__ == "__main__":
    main()
