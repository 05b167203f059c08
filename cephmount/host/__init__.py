"""The host: its mount table, mount(2) and friends, the kernel's FUSE device, state dirs.

One place for what every other layer needs of the host, so that mountinfo's
escapes, mount flags and file permissions are handled the same everywhere.
"""
