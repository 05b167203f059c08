"""Builds `cephmount.ceph._native_io`: the C functions pyfuse3's native handlers call.

A READ, WRITE or FLUSH of a file handle with native handlers (docs/performance.md,
"Data requests in C") is answered on one of pyfuse3's threads by `cm_read`,
`cm_write` or `cm_flush`, with no Python in between. A FLUSH (a close) goes on to
`CephOperations.flush`, after the unlock of the closing owner's locks, when Python
set `flush_in_python`: the file has lock owners, or the handle lost writes to
report. A write first asks libcephfs (from its xattr caps, no
MDS round trip while it holds them) whether the file has capabilities: if it has,
or the ask fails, the write fails with EPERM or that error, which hands the request
to `CephOperations.write`, whose `CephClient.write` removes them first, as every
write must. A handle's first native write since its open or fsync first sets the
handle's unsynced mark in the handle table's file (fs/handles.py), where a
successor reads it, by `pwrite` (the table's mapping may move when it grows).

The GETATTRs of a file the kernel holds, once CephOperations has seen its
attributes, and of a directory whose LOOKUPs are asked here (its `struct cm_dir`
begins with the `struct cm_inode` `cm_getattr` takes), are answered by
`cm_getattr`: libcephfs's view, which includes this client's writes, checked
against the MDS (where libcephfs's caps do not cover them) at most once a
`cache_ttl`, as `CephOperations.getattr` does, and at the next GETATTR after a
listing sent the file (`checked_until_ns` zeroed) or the kernel's cached listing
was served (`cm_expire_attrs`), or, a file's, after an unlink answered here.
Attributes that moved since CephOperations' change checks last saw them (a
directory's: or since it noted a change of this node's own, `cm_attrs_kept`) are
told to it, before any request the answer lets through, unless the file is being
written natively (whose handle's end drops what we cached of it). Its GETXATTRs of `security.`
attributes, which any caller may read (the kernel's ask for capabilities before
each write, `ls -l`'s for `security.selinux`), are answered by `cm_getxattr`,
from libcephfs's xattr caps.

A LOOKUP in a directory the kernel holds is asked of libcephfs by `cm_lookup` on
the reading thread, with the caller's uid, gid and supplementary groups (read from
/proc as `CephOperations` and ceph-fuse read them). An absent name is answered
there (ENOENT), and so is a name found (the entry, with the mount's timeouts),
unless its number is made in Python (a snapshot's, the mount root's): then it goes
to `CephOperations.lookup`. Either way the kernel's lookup is counted in the inode
table in Python: the entry (its `Inode*`, with the reference `ll_lookup` took, and
its attributes) waits in a list, which `CephOperations.looked_up` (told by pyfuse3
of the answer, before the next request) or `CephOperations.lookup` takes with
`cm_take_lookup`, keyed by client, directory and name, so that nothing asks
libcephfs a second time. The key holds the caller's thread too (a thread has one
request in flight; it may ask again once answered, before the trio thread took the
first entry, which is then taken first), so that a request takes the entry found
for itself, with its caller's credentials. Entries nobody took (requests or
notices dropped at shutdown) are freed by
`cm_drop_lookups` once no call of a lookup handler of that client can run; their
references go with the client (its unmount drops them, as it does the kernel's).

An UNLINK in such a directory is done by `cm_unlink` there too, as the caller, and
answered if it succeeded; pyfuse3 then tells `CephOperations.unlinked`, which
forgets what the name and the directory's attributes were, before it takes any
request the answer let through, and every file's GETATTR answered here after it
is checked (`unlink_epoch`: the name may have been the file's last link, which a
GETATTR answered before the trio thread is told must not miss; a directory's own
attributes come back with the unlink's answer). A failed one goes
to `CephOperations.unlink`, which asks again and answers the failure (a failed
unlink changed nothing).

A CREATE in such a directory is not answered here: `cm_create` makes and opens the
file as the caller, and keeps it (its `Inode*` and reference, attributes and open
`Fh*`) in the same list, for `CephOperations.create`, to which the request goes
next, to take (`cm_take_made`) instead of asking libcephfs in a thread hop. A
failed one leaves nothing, and `CephOperations.create` asks again and answers it.

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
    uint64_t mark_offset;
    int32_t mark_fd;
    uint32_t marked;
    uint32_t flush_in_python;
};
ssize_t cm_read(void *arg, char *buf, size_t size, long off);
ssize_t cm_write(void *arg, char *buf, size_t size, long off);
ssize_t cm_flush(void *arg, char *buf, size_t size, long off);
struct cm_inode {
    void *cmount;
    void *inode;
    void *root;
    uint64_t fuse_ino;
    uint64_t ttl_ns;
    uint64_t checked_until_ns;
    uint64_t checked_epoch;
    uint64_t seen_version;
    uint64_t seen_size;
    uint64_t seen_mtime_ns;
    uint32_t writing;
    uint32_t tell_next;
    uint32_t dir;
};
ssize_t cm_getxattr(void *arg, char *buf, size_t size, long off);
ssize_t cm_getattr(void *arg, char *buf, size_t size, long off);
void cm_attrs_seen(struct cm_inode *node, uint64_t version, uint64_t size, uint64_t mtime_ns);
void cm_attrs_kept(struct cm_inode *node, uint64_t version, uint64_t size, uint64_t mtime_ns);
void cm_expire_attrs(void);
struct cm_dir {
    struct cm_inode node;
    uint64_t root_ino;
    double entry_timeout;
    double attr_timeout;
};
ssize_t cm_lookup(void *arg, char *buf, size_t size, long off);
ssize_t cm_unlink(void *arg, char *buf, size_t size, long off);
ssize_t cm_create(void *arg, char *buf, size_t size, long off);
int cm_take_made(void *cmount, uint64_t parent, const char *name, uint32_t pid,
                 void **inode, void *stx, void **file);
int cm_take_lookup(void *cmount, uint64_t parent, const char *name, uint32_t pid,
                   void **inode, void *stx);
int cm_drop_lookups(void *cmount);
int cm_waiting_lookups(void *cmount);
"""

SOURCE = r"""
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <cephfs/libcephfs.h>

struct cm_file {
    void *cmount;           /* struct ceph_mount_info * */
    void *fh;               /* struct Fh * */
    void *inode;            /* struct Inode *, pinned by the Fh */
    void *root;             /* UserPerm * of root */
    uint64_t mark_offset;   /* where in mark_fd the handle's unsynced mark is */
    int32_t mark_fd;        /* the handle table's file */
    uint32_t marked;        /* the mark is set: written since the last fsync */
    uint32_t flush_in_python;  /* the file has lock owners, or lost writes to report */
};

/* An inode whose attributes are answered here (what GETATTR and GETXATTR
   handlers get). The fields after ttl_ns are read by the reading threads and
   written by the trio thread (checked_* by both): a torn view can only make
   cm_getattr check or tell once more, or check against the MDS once less before
   the trio thread notes what it was told. */
struct cm_inode {
    void *cmount;
    void *inode;            /* struct Inode *, with a reference of the kernel's */
    void *root;
    uint64_t fuse_ino;      /* the kernel's number for it */
    uint64_t ttl_ns;        /* how long a check against the MDS holds */
    uint64_t checked_until_ns;  /* CLOCK_MONOTONIC; 0: check at the next GETATTR */
    uint64_t checked_epoch; /* attr_epoch when checked */
    uint64_t seen_version;  /* what CephOperations' change checks last saw */
    uint64_t seen_size;
    uint64_t seen_mtime_ns;
    uint32_t writing;       /* a handle writes the file natively: tell nothing */
    uint32_t tell_next;     /* tell of the next GETATTR, whatever it finds */
    uint32_t dir;           /* a directory (the first member of its struct cm_dir) */
};

static const char CAPABILITY[] = "security.capability";

/* Moved by cm_expire_attrs: every inode's next GETATTR is checked; by an unlink
   answered here: every file's (a link count may have fallen; a directory's own
   attributes come back with the unlink's answer). */
static uint64_t attr_epoch;
static uint64_t unlink_epoch;

static uint64_t node_epoch(const struct cm_inode *node)
{
    uint64_t epoch = __atomic_load_n(&attr_epoch, __ATOMIC_RELAXED);
    return node->dir ? epoch : epoch + __atomic_load_n(&unlink_epoch, __ATOMIC_RELAXED);
}

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
    if (!__atomic_load_n(&file->marked, __ATOMIC_RELAXED)) {
        static const char one = 1;
        if (pwrite(file->mark_fd, &one, 1, file->mark_offset) != 1)
            return -EIO;  /* for Python's handler, which marks it in the mapping */
        __atomic_store_n(&file->marked, 1, __ATOMIC_RELAXED);
    }
    return ceph_ll_write(file->cmount, file->fh, off, size, buf);
}

/* A close: nothing to write back (libcephfs writes in the background, as on
   ceph-fuse), nothing to unlock unless the file has lock owners. */
ssize_t cm_flush(void *arg, char *buf, size_t size, long off)
{
    const struct cm_file *file = arg;
    (void)buf;
    (void)size;
    (void)off;
    return __atomic_load_n(&file->flush_in_python, __ATOMIC_RELAXED) ? -EAGAIN : 0;
}

/* An attribute any caller may read (the handler takes one namespace): as root. */
ssize_t cm_getxattr(void *arg, char *buf, size_t size, long off)
{
    struct cm_inode *node = arg;
    char name[256];
    (void)off;
    if (strlen(buf) >= sizeof(name))
        return -ENAMETOOLONG;  /* for Python's handler to answer */
    strcpy(name, buf);
    return ceph_ll_getxattr(node->cmount, node->inode, name, size ? buf : NULL, size,
                            node->root);
}

static uint64_t timespec_ns(struct timespec time)
{
    return (uint64_t)time.tv_sec * 1000000000u + time.tv_nsec;
}

static uint64_t now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return timespec_ns(now);
}

void cm_expire_attrs(void)
{
    __atomic_add_fetch(&attr_epoch, 1, __ATOMIC_RELAXED);
}

/* CephOperations saw these attributes after a change of this node's own (a name
   made or removed in a directory): nothing to tell of them, and the next check
   against the MDS stays due when it was. */
void cm_attrs_kept(struct cm_inode *node, uint64_t version, uint64_t size, uint64_t mtime_ns)
{
    __atomic_store_n(&node->seen_version, version, __ATOMIC_RELAXED);
    __atomic_store_n(&node->seen_size, size, __ATOMIC_RELAXED);
    __atomic_store_n(&node->seen_mtime_ns, mtime_ns, __ATOMIC_RELAXED);
}

/* CephOperations' change checks saw these attributes, as fresh as a check against
   the MDS: the next one is due a ttl from now, as its cache's entry is. */
void cm_attrs_seen(struct cm_inode *node, uint64_t version, uint64_t size, uint64_t mtime_ns)
{
    cm_attrs_kept(node, version, size, mtime_ns);
    __atomic_store_n(&node->checked_epoch, node_epoch(node), __ATOMIC_RELAXED);
    __atomic_store_n(&node->checked_until_ns, now_ns() + node->ttl_ns, __ATOMIC_RELAXED);
}

/* Whether `stx` differs from what the change checks last saw. Only they note what
   they saw (cm_attrs_seen): every GETATTR that finds a change tells, until the trio
   thread has seen it, so that no answer lets a request through ahead of its notice. */
static int cm_moved(struct cm_inode *node, const struct ceph_statx *stx)
{
    uint64_t mtime_ns = timespec_ns(stx->stx_mtime);
    return !__atomic_load_n(&node->writing, __ATOMIC_RELAXED)
           && (__atomic_load_n(&node->seen_version, __ATOMIC_RELAXED) != stx->stx_version
               || __atomic_load_n(&node->seen_size, __ATOMIC_RELAXED) != stx->stx_size
               || __atomic_load_n(&node->seen_mtime_ns, __ATOMIC_RELAXED) != mtime_ns);
}

/* 0, or 1 when the attributes moved since CephOperations' change checks saw them
   (or it asked, tell_next): pyfuse3 then tells CephOperations.attributes_sent before
   any request the answer lets through (a read of what another node appended finds
   our blocks dropped). */
ssize_t cm_getattr(void *arg, char *buf, size_t size, long off)
{
    struct cm_inode *node = arg;
    struct ceph_statx stx;
    struct stat *st = (struct stat *)buf;
    uint64_t now = now_ns();
    uint64_t epoch = node_epoch(node);
    int cached = now < __atomic_load_n(&node->checked_until_ns, __ATOMIC_RELAXED)
                 && epoch == __atomic_load_n(&node->checked_epoch, __ATOMIC_RELAXED);
    (void)off;
    if (size < sizeof(*st))
        return -EINVAL;
    int ret = ceph_ll_getattr(node->cmount, node->inode, &stx, CEPH_STATX_ALL_STATS,
                              cached ? AT_STATX_DONT_SYNC : 0, node->root);
    if (ret < 0)
        return ret;
    if (!cached) {
        __atomic_store_n(&node->checked_epoch, epoch, __ATOMIC_RELAXED);
        __atomic_store_n(&node->checked_until_ns, now + node->ttl_ns, __ATOMIC_RELAXED);
    }
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
    int moved = cm_moved(node, &stx);
    return __atomic_exchange_n(&node->tell_next, 0, __ATOMIC_RELAXED) || moved;
}

/* A directory whose LOOKUPs (UNLINKs, CREATEs) are asked here first. */
struct cm_dir {
    struct cm_inode node;   /* its attributes (dir set); the Inode* has a reference of
                               the kernel's */
    uint64_t root_ino;      /* the mount root's inode number (the kernel's is 1) */
    double entry_timeout;   /* the entry's and its attributes' in an answer */
    double attr_timeout;
};

/* An entry found (or a file made), waiting for CephOperations.looked_up or lookup
   (create) to count it. */
struct cm_found {
    struct cm_found *next;
    void *cmount;
    uint64_t parent;        /* the kernel's number of the directory */
    uint32_t pid;           /* the caller's thread */
    struct Inode *inode;    /* with the reference ll_lookup (ll_create) took */
    struct ceph_statx stx;
    struct Fh *file;        /* a file made, and opened; NULL for a lookup's entry */
    char name[];
};

#define CM_GROUPS_MAX 1024
#define CM_STATUS_MAX 65536
#define CM_INO_MASK ((1ULL << 48) - 1)  /* vino.py: a head inode's number is its own */

static pthread_mutex_t found_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cm_found *found_list;

static int cm_found_for(const struct cm_found *found, void *cmount, uint64_t parent,
                        const char *name, uint32_t pid, int made)
{
    return found->cmount == cmount && found->parent == parent && found->pid == pid
           && (found->file != NULL) == made && strcmp(found->name, name) == 0;
}

/* The oldest entry for these, taken off the list (the thread asked again once
   answered: requests take them in the order they were answered), or NULL. */
static struct cm_found *cm_take_found(void *cmount, uint64_t parent, const char *name,
                                      uint32_t pid, int made)
{
    pthread_mutex_lock(&found_lock);
    struct cm_found **oldest = NULL;  /* the list is newest first */
    for (struct cm_found **link = &found_list; *link; link = &(*link)->next)
        if (cm_found_for(*link, cmount, parent, name, pid, made))
            oldest = link;
    struct cm_found *found = oldest ? *oldest : NULL;
    if (found)
        *oldest = found->next;
    pthread_mutex_unlock(&found_lock);
    return found;
}

static void cm_add_found(struct cm_found *found)
{
    pthread_mutex_lock(&found_lock);
    found->next = found_list;
    found_list = found;
    pthread_mutex_unlock(&found_lock);
}

/* The supplementary groups of `pid` from /proc/PID/status: their count, 0 if the
   caller is gone (as in CephOperations), -E2BIG if more than `room` or unreadable. */
static int caller_groups(uint32_t pid, gid_t *groups, int room)
{
    char path[32];
    if (!pid)
        return 0;
    snprintf(path, sizeof(path), "/proc/%u/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char *status = malloc(CM_STATUS_MAX);
    if (!status) {
        close(fd);
        return -ENOMEM;
    }
    ssize_t size = 0, got;
    while (size < CM_STATUS_MAX - 1
           && (got = read(fd, status + size, CM_STATUS_MAX - 1 - size)) > 0)
        size += got;
    close(fd);
    status[size] = '\0';
    int count = -E2BIG;
    char *line = strstr(status, "\nGroups:");
    if (line && strchr(line + 1, '\n')) {
        char *next = line + sizeof("\nGroups:") - 1;
        for (count = 0; ; count++) {
            while (*next == ' ' || *next == '\t')
                next++;
            if (*next < '0' || *next > '9')
                break;  /* the line's end */
            if (count == room) {
                count = -E2BIG;
                break;
            }
            groups[count] = (gid_t)strtoul(next, &next, 10);
        }
    }
    free(status);
    return count;
}

/* A timeout in seconds as FUSE's seconds and nanoseconds (as libfuse does). */
static void timeout_out(double timeout, uint64_t *sec, uint32_t *nsec)
{
    if (!(timeout > 0)) {
        *sec = 0;
        *nsec = 0;
    } else {
        *sec = (uint64_t)timeout;
        *nsec = (uint32_t)((timeout - (double)*sec) * 1e9);
    }
}

/* The credentials of the request's caller: 0, or -errno. */
static int caller_perms(const struct fuse_in_header *in, UserPerm **perms)
{
    gid_t groups[CM_GROUPS_MAX];
    int count = caller_groups(in->pid, groups, CM_GROUPS_MAX);
    if (count < 0)
        return count;
    *perms = ceph_userperm_new(in->uid, in->gid, count, groups);
    return *perms ? 0 : -ENOMEM;
}

/* The answer to a LOOKUP that found a head inode: its size. */
static ssize_t entry_out(const struct cm_dir *dir, const struct ceph_statx *stx,
                         struct fuse_entry_out *out)
{
    memset(out, 0, sizeof(*out));
    out->nodeid = stx->stx_ino;
    timeout_out(dir->entry_timeout, &out->entry_valid, &out->entry_valid_nsec);
    timeout_out(dir->attr_timeout, &out->attr_valid, &out->attr_valid_nsec);
    out->attr = (struct fuse_attr){
        .ino = stx->stx_ino, .size = stx->stx_size, .blocks = stx->stx_blocks,
        .atime = stx->stx_atime.tv_sec, .atimensec = stx->stx_atime.tv_nsec,
        .mtime = stx->stx_mtime.tv_sec, .mtimensec = stx->stx_mtime.tv_nsec,
        .ctime = stx->stx_ctime.tv_sec, .ctimensec = stx->stx_ctime.tv_nsec,
        .mode = stx->stx_mode, .nlink = stx->stx_nlink, .uid = stx->stx_uid,
        .gid = stx->stx_gid, .rdev = (uint32_t)stx->stx_rdev, .blksize = stx->stx_blksize };
    return sizeof(*out);
}

/* The caller's credentials, and an entry for `name` in `dir` found or made for the
   request `in`, whose libcephfs call fills in the rest: 0, or -errno (nothing to
   free). */
static int cm_found_start(const struct cm_dir *dir, const struct fuse_in_header *in,
                          const char *name, UserPerm **perms, struct cm_found **found)
{
    int ret = caller_perms(in, perms);
    if (ret < 0)
        return ret;
    *found = malloc(sizeof(**found) + strlen(name) + 1);
    if (!*found) {
        ceph_userperm_destroy(*perms);
        return -ENOMEM;
    }
    (*found)->cmount = dir->node.cmount;
    (*found)->parent = dir->node.fuse_ino;
    (*found)->pid = in->pid;
    (*found)->file = NULL;
    strcpy((*found)->name, name);
    return 0;
}

/* After the call, which returned `ret`: the entry waits to be taken if it succeeded. */
static int cm_found_end(struct cm_found *found, UserPerm *perms, int ret)
{
    ceph_userperm_destroy(perms);
    if (ret < 0)
        free(found);
    else
        cm_add_found(found);
    return ret;
}

ssize_t cm_lookup(void *arg, char *buf, size_t size, long off)
{
    struct cm_dir *dir = arg;
    const struct fuse_in_header *in = (const void *)buf;
    const char *name = (const char *)(in + 1);
    UserPerm *perms;
    struct cm_found *found;
    (void)size;
    (void)off;
    int ret = cm_found_start(dir, in, name, &perms, &found);
    if (ret < 0)
        return ret;
    ret = cm_found_end(found, perms,
                       ceph_ll_lookup(dir->node.cmount, dir->node.inode, name, &found->inode,
                                      &found->stx, CEPH_STATX_ALL_STATS, 0, perms));
    if (ret < 0)
        return ret;
    if (found->stx.stx_dev != CEPH_NOSNAP || found->stx.stx_ino > CM_INO_MASK
            || found->stx.stx_ino == dir->root_ino)
        return 0;  /* numbered in Python (vino.py, inodes.py) */
    return entry_out(dir, &found->stx, (struct fuse_entry_out *)buf);  /* over the request */
}

ssize_t cm_unlink(void *arg, char *buf, size_t size, long off)
{
    const struct cm_dir *dir = arg;
    UserPerm *perms;
    (void)size;
    (void)off;
    int ret = caller_perms((const struct fuse_in_header *)buf, &perms);
    if (ret == 0) {
        ret = ceph_ll_unlink(dir->node.cmount, dir->node.inode,
                             buf + sizeof(struct fuse_in_header), perms);
        ceph_userperm_destroy(perms);
    }
    if (ret == 0)  /* the file's link count: no GETATTR answered here may miss it */
        __atomic_add_fetch(&unlink_epoch, 1, __ATOMIC_RELAXED);
    return ret;
}

/* Make and open the name as the caller, for CephOperations.create to take (the
   request goes to it whatever this returns): its thread hop to libcephfs saved. */
ssize_t cm_create(void *arg, char *buf, size_t size, long off)
{
    const struct cm_dir *dir = arg;
    const struct fuse_in_header *in = (const void *)buf;
    const struct fuse_create_in *create_in = (const void *)(in + 1);
    const char *name = (const char *)(create_in + 1);
    UserPerm *perms;
    struct cm_found *made;
    (void)size;
    (void)off;
    int ret = cm_found_start(dir, in, name, &perms, &made);
    if (ret < 0)
        return ret;
    /* A failure: CephOperations.create asks again, and answers it. */
    return cm_found_end(made, perms,
                        ceph_ll_create(dir->node.cmount, dir->node.inode, name,
                                       create_in->mode, (create_in->flags & ~O_DIRECT) | O_CREAT,
                                       &made->inode, &made->file, &made->stx,
                                       CEPH_STATX_ALL_STATS, 0, perms));
}

/* The file a create function made for `pid` as `name` in `parent`: 1 with its
   Inode* (and reference), attributes and open Fh* filled in, else 0. */
int cm_take_made(void *cmount, uint64_t parent, const char *name, uint32_t pid,
                 void **inode, void *stx, void **file)
{
    struct cm_found *made = cm_take_found(cmount, parent, name, pid, 1);
    if (!made)
        return 0;
    *inode = made->inode;
    memcpy(stx, &made->stx, sizeof(made->stx));
    *file = made->file;
    free(made);
    return 1;
}

/* The entry a native lookup for `pid` found for `name` in `parent`: 1 with its
   Inode* (and reference) and attributes (a struct ceph_statx) filled in, else 0.
   The oldest, if several wait (the thread asked again once answered): requests are
   told and taken in the order they were answered. */
int cm_take_lookup(void *cmount, uint64_t parent, const char *name, uint32_t pid,
                   void **inode, void *stx)
{
    struct cm_found *found = cm_take_found(cmount, parent, name, pid, 0);
    if (!found)
        return 0;
    *inode = found->inode;
    memcpy(stx, &found->stx, sizeof(found->stx));
    free(found);
    return 1;
}

/* How many entries of `cmount` wait to be taken. */
int cm_waiting_lookups(void *cmount)
{
    int count = 0;
    pthread_mutex_lock(&found_lock);
    for (struct cm_found *found = found_list; found; found = found->next)
        count += found->cmount == cmount;
    pthread_mutex_unlock(&found_lock);
    return count;
}

/* Free the entries of `cmount` nobody took (their references go with the client):
   how many there were. Only once no lookup handler of `cmount` can run. */
int cm_drop_lookups(void *cmount)
{
    int count = 0;
    pthread_mutex_lock(&found_lock);
    struct cm_found **link = &found_list;
    while (*link) {
        struct cm_found *found = *link;
        if (found->cmount != cmount) {
            link = &found->next;
            continue;
        }
        *link = found->next;
        free(found);
        count++;
    }
    pthread_mutex_unlock(&found_lock);
    return count;
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
    directory: cffi's setuptools would read the project's pyproject.toml. The module
    is put in place by a rename: a mount running the old one keeps its file (writing
    over a loaded library crashes the processes that mapped it)."""
    with tempfile.TemporaryDirectory() as scratch:
        built = Path(builder().compile(tmpdir=scratch))
        target = Path(__file__).parent / built.name
        staged = target.with_name(f".{built.name}.new")
        shutil.copy2(built, staged)
        staged.replace(target)


if __name__ == "__main__":
    main()
