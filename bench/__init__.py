"""fio benchmarks of shared (ReadWriteMany) CephFS throughput.

cephmount (default and strict coherence), ceph-fuse and libcephfs called
directly, N = 1, 2, 4 separate clients of one subvolume, measured interleaved
in one run: `python -m bench` (`make bench`). See docs/bench.md.
"""
