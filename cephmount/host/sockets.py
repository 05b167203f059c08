"""Serving a Unix socket from trio: every connection in a task of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio


async def serve_connections(listener: trio.socket.SocketType, path: Path,
                            answer: Callable[[trio.socket.SocketType], Awaitable[None]],
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                            ) -> None:
    """Accept until cancelled, one task per connection (a slow peer holds up no other);
    then close the listener and remove its socket file."""
    task_status.started()
    try:
        async with trio.open_nursery() as nursery:
            while True:
                conn, _ = await listener.accept()
                nursery.start_soon(answer, conn)
    finally:
        listener.close()
        path.unlink(missing_ok=True)
