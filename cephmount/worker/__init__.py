"""One FUSE mount per process: a worker serves one volume for the node daemon.

The daemon opens and mounts the kernel's FUSE connection and hands it to the
worker (see `cephmount.host.fuse`), so a worker that dies is replaced behind
the same mount. Imported by the daemon only for its message types: the
filesystem itself (pyfuse3, libcephfs) loads in the worker process alone.
"""
