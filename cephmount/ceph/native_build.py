"""Builds `cephmount.ceph._native_io`: the C functions pyfuse3's native handlers call.

A READ or WRITE of a file handle with native handlers (docs/performance.md, "Data
requests in C") is answered on one of pyfuse3's threads by `cm_read` or `cm_write`,
with no Python in between. A write first asks libcephfs (from its xattr caps, no
MDS round trip while it holds them) whether the file has capabilities: if it has,
or the ask fails, the write fails with EPERM or that error, which hands the request
to `CephOperations.write`, whose `CephClient.write` removes them first, as every
write must. `cm_get_capabilities` answers the kernel's own ask for them before
each write, the same way.

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
ssize_t cm_get_capabilities(void *arg, char *buf, size_t size, long off);
"""

SOURCE = r"""
#include <errno.h>
#include <cephfs/libcephfs.h>

struct cm_file {
    void *cmount;           /* struct ceph_mount_info * */
    void *fh;               /* struct Fh * */
    void *inode;            /* struct Inode *, pinned by the Fh */
    void *root;             /* UserPerm * of root */
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
    struct cm_file *file = arg;
    (void)off;
    return ceph_ll_getxattr(file->cmount, file->inode, CAPABILITY, size ? buf : NULL, size,
                            file->root);
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
