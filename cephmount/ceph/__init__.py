"""The ceph client layer: libcephfs's low-level inode API through cffi.

Knows nothing of FUSE or Kubernetes. `client.CephClient` is synchronous and
thread-safe; `aio.AsyncCephClient` runs the same calls from trio in threads.
Nothing is imported here, so that `cephmount.ceph.admin` does not load
libcephfs.
"""
