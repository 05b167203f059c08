"""`cephmount install-flexvolume`: put the driver where kubelet looks for it.

kubelet executes `<plugin dir>/cephmount~cephfs/cephfs` itself, on the host,
for every pod volume. The file is a two-line script that runs this install's
Python on `cephmount.kube.flexvolume`, isolated (`-I`: no PYTHON* variables,
no user site, no current dir on the path). When cephmount runs in a container
(the DaemonSet), the host has neither that Python nor cephmount: the script
then first enters the mount namespace of a process of the container
(`--mount-namespace-of PIDFILE`), where both are, and where kubelet's pods
dir is shared with the host.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from cephmount.host.statedir import atomic_write

DEFAULT_PLUGIN_DIR = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
VENDOR_DRIVER = "cephmount~cephfs"
DRIVER_FILE = "cephfs"


def driver_script(python: str, pid_file: str | None = None) -> str:
    command = f"{shlex.quote(python)} -I -m cephmount.kube.flexvolume \"$@\""
    if pid_file is not None:
        command = (f"nsenter --mount --target \"$(cat {shlex.quote(pid_file)})\" -- "
                   + command)
    return ("#!/bin/sh\n"
            "# cephmount's FlexVolume driver; written by `cephmount install-flexvolume`.\n"
            f"exec {command}\n")


def install(plugin_dir: Path, pid_file: str | None = None,
            python: str = sys.executable) -> Path:
    """Write the driver atomically (a dot-file renamed into place); its path."""
    directory = plugin_dir / VENDOR_DRIVER
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    path = directory / DRIVER_FILE
    atomic_write(path, driver_script(python, pid_file).encode(), mode=0o755)
    return path
