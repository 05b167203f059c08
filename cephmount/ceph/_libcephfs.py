"""cffi (ABI mode) declarations for libcephfs 16.2 (Pacific), x86_64/glibc.

Every prototype below is copied from /usr/include/cephfs/libcephfs.h and
ceph_ll_client.h. cffi's parser does not know the POSIX typedefs, so they are
spelled out for x86_64 glibc with _FILE_OFFSET_BITS=64 (which libcephfs.h
requires). In ABI mode a wrong size is silent memory corruption:
tests/unit/test_ceph_ffi_layout.py compares every struct with gcc's layout.
"""

from __future__ import annotations

import cffi

ffi = cffi.FFI()

_TYPES = """
typedef unsigned int mode_t;
typedef unsigned int uid_t;
typedef unsigned int gid_t;
typedef int pid_t;
typedef unsigned long dev_t;
typedef long off_t;
typedef long time_t;

struct timespec { time_t tv_sec; long tv_nsec; };

struct dirent {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[256];
};

struct statvfs {
    unsigned long f_bsize;
    unsigned long f_frsize;
    unsigned long f_blocks;
    unsigned long f_bfree;
    unsigned long f_bavail;
    unsigned long f_files;
    unsigned long f_ffree;
    unsigned long f_favail;
    unsigned long f_fsid;
    unsigned long f_flag;
    unsigned long f_namemax;
    int __f_spare[6];
};

struct flock {
    short l_type;
    short l_whence;
    off_t l_start;
    off_t l_len;
    pid_t l_pid;
};
"""

_LL_STRUCTS = """
typedef struct Fh Fh;
typedef struct inodeno_t { uint64_t val; } inodeno_t;
typedef struct _snapid_t { uint64_t val; } snapid_t;
typedef struct vinodeno_t { inodeno_t ino; snapid_t snapid; } vinodeno_t;

struct ceph_statx {
    uint32_t stx_mask;
    uint32_t stx_blksize;
    uint32_t stx_nlink;
    uint32_t stx_uid;
    uint32_t stx_gid;
    uint16_t stx_mode;
    uint64_t stx_ino;
    uint64_t stx_size;
    uint64_t stx_blocks;
    dev_t stx_dev;
    dev_t stx_rdev;
    struct timespec stx_atime;
    struct timespec stx_ctime;
    struct timespec stx_mtime;
    struct timespec stx_btime;
    uint64_t stx_version;
};
"""

_CALLBACK_TYPES = """
typedef void (*client_ino_callback_t)(void *handle, vinodeno_t ino,
                                      int64_t off, int64_t len);
typedef void (*client_dentry_callback_t)(void *handle, vinodeno_t dirino,
                                         vinodeno_t ino, const char *name,
                                         size_t len);
typedef int (*client_remount_callback_t)(void *handle);
typedef void (*client_switch_interrupt_callback_t)(void *handle, void *data);
typedef mode_t (*client_umask_callback_t)(void *handle);
typedef void (*client_ino_release_t)(void *handle, vinodeno_t ino);
"""

_CALLBACK_ARGS = """
struct ceph_client_callback_args {
    void *handle;
    client_ino_callback_t ino_cb;
    client_dentry_callback_t dentry_cb;
    client_switch_interrupt_callback_t switch_intr_cb;
    client_remount_callback_t remount_cb;
    client_umask_callback_t umask_cb;
    client_ino_release_t ino_release_cb;
};
"""

# __attribute__((packed)) in the header; all members are uint32_t, so packing
# changes nothing, but it is declared packed to match the header exactly.
_FILE_LAYOUT = """
struct ceph_file_layout {
    uint32_t fl_stripe_unit;
    uint32_t fl_stripe_count;
    uint32_t fl_object_size;
    uint32_t fl_cas_hash;
    uint32_t fl_object_stripe_unit;
    uint32_t fl_pg_preferred;
    uint32_t fl_pg_pool;
};
"""

_FUNCTIONS = """
typedef struct UserPerm UserPerm;
typedef struct Inode Inode;
struct ceph_mount_info;
struct ceph_dir_result;

UserPerm *ceph_userperm_new(uid_t uid, gid_t gid, int ngids, gid_t *gidlist);
void ceph_userperm_destroy(UserPerm *perm);

const char *ceph_version(int *major, int *minor, int *patch);
int ceph_create(struct ceph_mount_info **cmount, const char * const id);
int ceph_conf_read_file(struct ceph_mount_info *cmount, const char *path_list);
int ceph_conf_set(struct ceph_mount_info *cmount, const char *option, const char *value);
int ceph_conf_get(struct ceph_mount_info *cmount, const char *option, char *buf, size_t len);
int ceph_init(struct ceph_mount_info *cmount);
int ceph_mount(struct ceph_mount_info *cmount, const char *root);
void ceph_set_uuid(struct ceph_mount_info *cmount, const char *uuid);
void ceph_set_session_timeout(struct ceph_mount_info *cmount, unsigned timeout);
int ceph_start_reclaim(struct ceph_mount_info *cmount, const char *uuid, unsigned flags);
void ceph_finish_reclaim(struct ceph_mount_info *cmount);
int ceph_unmount(struct ceph_mount_info *cmount);
int ceph_abort_conn(struct ceph_mount_info *cmount);
int ceph_release(struct ceph_mount_info *cmount);
void ceph_shutdown(struct ceph_mount_info *cmount);

int ceph_debug_get_file_caps(struct ceph_mount_info *cmount, const char *path);

int ceph_readdirplus_r(struct ceph_mount_info *cmount, struct ceph_dir_result *dirp,
                       struct dirent *de, struct ceph_statx *stx, unsigned want,
                       unsigned flags, struct Inode **out);
int ceph_getdents(struct ceph_mount_info *cmount, struct ceph_dir_result *dirp, char *name,
                  int buflen);
int64_t ceph_telldir(struct ceph_mount_info *cmount, struct ceph_dir_result *dirp);
void ceph_seekdir(struct ceph_mount_info *cmount, struct ceph_dir_result *dirp,
                  int64_t offset);

int ceph_ll_lookup_inode(struct ceph_mount_info *cmount, struct inodeno_t ino,
                         Inode **inode);
int ceph_ll_lookup_vino(struct ceph_mount_info *cmount, vinodeno_t vino, Inode **inode);
int ceph_ll_lookup_root(struct ceph_mount_info *cmount, Inode **parent);
int ceph_ll_lookup(struct ceph_mount_info *cmount, Inode *parent, const char *name,
                   Inode **out, struct ceph_statx *stx, unsigned want, unsigned flags,
                   const UserPerm *perms);
int ceph_ll_put(struct ceph_mount_info *cmount, struct Inode *in);
int ceph_ll_forget(struct ceph_mount_info *cmount, struct Inode *in, int count);
int ceph_ll_getattr(struct ceph_mount_info *cmount, struct Inode *in,
                    struct ceph_statx *stx, unsigned int want, unsigned int flags,
                    const UserPerm *perms);
int ceph_ll_setattr(struct ceph_mount_info *cmount, struct Inode *in,
                    struct ceph_statx *stx, int mask, const UserPerm *perms);
int ceph_ll_open(struct ceph_mount_info *cmount, struct Inode *in, int flags,
                 struct Fh **fh, const UserPerm *perms);
int ceph_ll_read(struct ceph_mount_info *cmount, struct Fh *filehandle, int64_t off,
                 uint64_t len, char *buf);
int ceph_ll_write(struct ceph_mount_info *cmount, struct Fh *filehandle, int64_t off,
                  uint64_t len, const char *data);
int ceph_ll_fsync(struct ceph_mount_info *cmount, struct Fh *fh, int syncdataonly);
int ceph_ll_sync_inode(struct ceph_mount_info *cmount, struct Inode *in, int syncdataonly);
int ceph_ll_close(struct ceph_mount_info *cmount, struct Fh *filehandle);
int ceph_ll_fallocate(struct ceph_mount_info *cmount, struct Fh *fh, int mode,
                      int64_t offset, int64_t length);
int ceph_ll_getxattr(struct ceph_mount_info *cmount, struct Inode *in, const char *name,
                     void *value, size_t size, const UserPerm *perms);
int ceph_ll_setxattr(struct ceph_mount_info *cmount, struct Inode *in, const char *name,
                     const void *value, size_t size, int flags, const UserPerm *perms);
int ceph_ll_listxattr(struct ceph_mount_info *cmount, struct Inode *in, char *list,
                      size_t buf_size, size_t *list_size, const UserPerm *perms);
int ceph_ll_removexattr(struct ceph_mount_info *cmount, struct Inode *in,
                        const char *name, const UserPerm *perms);
int ceph_ll_create(struct ceph_mount_info *cmount, Inode *parent, const char *name,
                   mode_t mode, int oflags, Inode **outp, Fh **fhp,
                   struct ceph_statx *stx, unsigned want, unsigned lflags,
                   const UserPerm *perms);
int ceph_ll_mknod(struct ceph_mount_info *cmount, Inode *parent, const char *name,
                  mode_t mode, dev_t rdev, Inode **out, struct ceph_statx *stx,
                  unsigned want, unsigned flags, const UserPerm *perms);
int ceph_ll_mkdir(struct ceph_mount_info *cmount, Inode *parent, const char *name,
                  mode_t mode, Inode **out, struct ceph_statx *stx, unsigned want,
                  unsigned flags, const UserPerm *perms);
int ceph_ll_link(struct ceph_mount_info *cmount, struct Inode *in,
                 struct Inode *newparent, const char *name, const UserPerm *perms);
int ceph_ll_opendir(struct ceph_mount_info *cmount, struct Inode *in,
                    struct ceph_dir_result **dirpp, const UserPerm *perms);
int ceph_ll_releasedir(struct ceph_mount_info *cmount, struct ceph_dir_result *dir);
int ceph_ll_rename(struct ceph_mount_info *cmount, struct Inode *parent, const char *name,
                   struct Inode *newparent, const char *newname, const UserPerm *perms);
int ceph_ll_unlink(struct ceph_mount_info *cmount, struct Inode *in, const char *name,
                   const UserPerm *perms);
int ceph_ll_statfs(struct ceph_mount_info *cmount, struct Inode *in,
                   struct statvfs *stbuf);
int ceph_ll_readlink(struct ceph_mount_info *cmount, struct Inode *in, char *buf,
                     size_t bufsize, const UserPerm *perms);
int ceph_ll_symlink(struct ceph_mount_info *cmount, Inode *in, const char *name,
                    const char *value, Inode **out, struct ceph_statx *stx,
                    unsigned want, unsigned flags, const UserPerm *perms);
int ceph_ll_rmdir(struct ceph_mount_info *cmount, struct Inode *in, const char *name,
                  const UserPerm *perms);
uint32_t ceph_ll_stripe_unit(struct ceph_mount_info *cmount, struct Inode *in);
uint32_t ceph_ll_file_layout(struct ceph_mount_info *cmount, struct Inode *in,
                             struct ceph_file_layout *layout);
int ceph_ll_getlk(struct ceph_mount_info *cmount, Fh *fh, struct flock *fl,
                  uint64_t owner);
int ceph_ll_setlk(struct ceph_mount_info *cmount, Fh *fh, struct flock *fl,
                  uint64_t owner, int sleep);
void ceph_ll_register_callbacks(struct ceph_mount_info *cmount,
                                struct ceph_client_callback_args *args);
"""

# C accepts these verbatim after the real headers only if every type agrees:
# the layout test compiles them that way with -Werror.
PROTOTYPES = _CALLBACK_TYPES + _FUNCTIONS

ffi.cdef(_TYPES)
ffi.cdef(_LL_STRUCTS)
ffi.cdef(_CALLBACK_TYPES)
ffi.cdef(_CALLBACK_ARGS)
ffi.cdef(_FILE_LAYOUT, packed=True)
ffi.cdef(_FUNCTIONS)

lib = ffi.dlopen("libcephfs.so.2")

# ceph_ll_client.h
CEPH_STATX_MODE = 0x001
CEPH_STATX_NLINK = 0x002
CEPH_STATX_UID = 0x004
CEPH_STATX_GID = 0x008
CEPH_STATX_RDEV = 0x010
CEPH_STATX_ATIME = 0x020
CEPH_STATX_MTIME = 0x040
CEPH_STATX_CTIME = 0x080
CEPH_STATX_INO = 0x100
CEPH_STATX_SIZE = 0x200
CEPH_STATX_BLOCKS = 0x400
CEPH_STATX_BASIC_STATS = 0x7FF
CEPH_STATX_BTIME = 0x800
CEPH_STATX_VERSION = 0x1000
CEPH_STATX_ALL_STATS = 0x1FFF
AT_STATX_DONT_SYNC = 0x4000
CEPH_RECLAIM_RESET = 1

# libcephfs.h
CEPH_NOSNAP = (1 << 64) - 2  # the snapshot id of a live inode
CEPH_SNAPDIR = (1 << 64) - 1  # the snapshot id of a directory's .snap
CEPH_SETATTR_MODE = 1 << 0
CEPH_SETATTR_UID = 1 << 1
CEPH_SETATTR_GID = 1 << 2
CEPH_SETATTR_MTIME = 1 << 3
CEPH_SETATTR_ATIME = 1 << 4
CEPH_SETATTR_SIZE = 1 << 5
CEPH_SETATTR_MTIME_NOW = 1 << 7
CEPH_SETATTR_ATIME_NOW = 1 << 8
