"""The control socket: root's alone, one request per connection, many clients at once.

The socket file is made 0600 (under a umask, so there is no moment when it is
open to others) and every peer's credentials are checked (SO_PEERCRED): only
uid 0 is served. A request is read up to MAX_REQUEST bytes within
REQUEST_TIMEOUT; one that is larger, slower, malformed or unknown gets an
error reply and changes nothing. A slow or bad client holds up no other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from cephmount.daemon.protocol import (
    MAX_REQUEST,
    ProtocolError,
    Reply,
    Request,
    decode_request,
    encode,
)
from cephmount.host.sockets import serve_connections

log = logging.getLogger("cephmount.daemon")
REQUEST_TIMEOUT = 10.0
DRAIN_TIMEOUT = 1.0
DRAIN_CHUNKS = 256
_UCRED = struct.Struct("3i")

Handler = Callable[[Request], Awaitable[Reply]]


class SocketInUse(OSError):
    pass


def peer_uid(sock: trio.socket.SocketType) -> int:
    _pid, uid, _gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return int(uid)


async def _read_request(conn: trio.socket.SocketType) -> bytes:
    """Up to the first newline or the end, refusing more than MAX_REQUEST bytes."""
    data = b""
    with trio.fail_after(REQUEST_TIMEOUT):
        while b"\n" not in data:
            chunk = await conn.recv(MAX_REQUEST + 1 - len(data))
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REQUEST:
                raise ProtocolError(f"request larger than {MAX_REQUEST} bytes", "too-large")
    return data.split(b"\n", 1)[0]


async def _drain(conn: trio.socket.SocketType) -> None:
    """Read what the client still sends (bounded), so that it gets the reply, not a reset."""
    with trio.move_on_after(DRAIN_TIMEOUT):
        for _ in range(DRAIN_CHUNKS):
            if not await conn.recv(1 << 16):
                return


async def listen(path: Path) -> trio.socket.SocketType:
    """Bind the socket; SocketInUse when another daemon serves it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists():
        probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await probe.connect(str(path))
        except OSError:
            path.unlink()  # left by a daemon that is gone
        else:
            raise SocketInUse(f"another daemon serves {path}")
        finally:
            probe.close()
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        await listener.bind(str(path))
    finally:
        os.umask(umask)
    os.chmod(path, 0o600)
    listener.listen(64)
    return listener


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler

    async def serve(self, listener: trio.socket.SocketType,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_connections(listener, self.path, self._serve_one, task_status)

    async def _serve_one(self, conn: trio.socket.SocketType) -> None:
        with conn:
            data = encode(await self._reply(conn))
            # A client that went away meanwhile: what it asked is done or refused all the same.
            with contextlib.suppress(OSError):
                while data:
                    data = data[await conn.send(data):]
                await _drain(conn)

    async def _reply(self, conn: trio.socket.SocketType) -> Reply:
        try:
            data = await _read_request(conn)
            if peer_uid(conn) != 0:
                return Reply(ok=False, error="permission denied: only root may use this socket",
                             code="forbidden")
            return await self._handler(decode_request(data))
        except ProtocolError as exc:
            return Reply(ok=False, error=str(exc), code=exc.code)
        except trio.TooSlowError:
            return Reply(ok=False, error=f"no complete request within {REQUEST_TIMEOUT:g} s",
                         code="timeout")
        except Exception:
            log.exception("request failed")
            return Reply(ok=False, error="internal error; the daemon's log says more",
                         code="internal")
