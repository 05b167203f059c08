"""This node's identity, for names that must stay the same across restarts."""

from __future__ import annotations

import socket
from pathlib import Path


def node_identity() -> str:
    """The machine id (stable across reboots), else the host name."""
    try:
        return Path("/etc/machine-id").read_text().strip() or socket.gethostname()
    except OSError:
        return socket.gethostname()
