"""The node daemon: the control plane for this host's CephFS mounts; no data path.

One worker process serves each volume's FUSE mount; targets are bind mounts of
it. The daemon holds each FUSE connection's descriptor so that a dead worker is
replaced behind the same mount, records its mounts durably, and adopts the
workers still serving when it starts again. See docs/daemon.md.
"""
