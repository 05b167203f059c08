"""Kubernetes: the FlexVolume driver (a thin client of the node daemon) and `cephmount volume`.

Imports run one way: kube -> the daemon's client. The driver imports nothing
heavy (no libcephfs, pyfuse3, trio or rados): kubelet starts it for every pod
volume.
"""
