"""Commands to a Ceph admin socket (what `ceph daemon <path> <command>` does).

A libcephfs client serves one when its `admin_socket` option names a path:
`status` (inode and dentry counts), `dump_cache` (every cached inode with its
reference counts), `perf dump`, `mds_sessions`, `config get`...
The protocol: a JSON command ending in NUL; the answer is a 4-byte
big-endian length and that many bytes.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("admin socket closed before the answer was complete")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def admin_socket_command(path: str, prefix: str, timeout: float = 10.0, **args: Any) -> Any:
    """Send one command and return its decoded JSON answer (None if empty)."""
    request = json.dumps({"prefix": prefix, "format": "json", **args}).encode() + b"\0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        (length,) = struct.unpack(">I", _recv_exact(sock, 4))
        answer = _recv_exact(sock, length)
    return json.loads(answer) if answer.strip() else None
