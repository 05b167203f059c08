"""A worker's side of the handed-over FUSE connection (see `cephmount.host.fuse`).

libfuse insists on reading the kernel's INIT itself, but the kernel sent it
once, to the daemon. So libfuse's session starts on a pipe holding the INIT
bytes; while libfuse handles that INIT (our `Operations.init` runs inside it),
the pipe's descriptor number is pointed at the real FUSE connection, where the
INIT reply and every later request then go.
"""

from __future__ import annotations

import os

import trio

from cephmount.host import fuse


class KernelTakeover:
    """Serve a FUSE connection someone else mounted, first or after a dead predecessor."""

    def __init__(self, fuse_fd: int, fuse_init: bytes, replacement: bool) -> None:
        self.fuse_fd = fuse_fd
        self.fuse_init = fuse_init
        self.replacement = replacement
        self.switched = trio.Event()
        self._session_fd, self._pipe_w = os.pipe()
        os.write(self._pipe_w, fuse_init)

    def session_path(self) -> str:
        """What libfuse is given as its mountpoint: it then reads from that descriptor."""
        return f"/dev/fd/{self._session_fd}"

    def switch(self) -> None:
        """From inside libfuse's INIT handling: move the session onto the FUSE connection.

        A replacement then asks the kernel to send again what its predecessor
        had read and not answered; nothing of its own has been read yet, so no
        request is handled twice.
        """
        trio.lowlevel.notify_closing(self._session_fd)
        os.dup2(self.fuse_fd, self._session_fd, inheritable=False)
        os.close(self._pipe_w)
        if self.replacement:
            fuse.request_resend(self.fuse_fd)
        self.switched.set()
