"""Errors from libcephfs calls."""

from __future__ import annotations

import os


class CephError(OSError):
    """A libcephfs call failed.

    `errno` is the positive error number libcephfs returned (negated), `op` the
    operation that failed (e.g. "ll_lookup"), `detail` an optional hint for
    people (never secrets).
    """

    def __init__(self, err: int, op: str, detail: str | None = None) -> None:
        message = f"{op}: {os.strerror(err)}"
        if detail:
            message = f"{message} ({detail})"
        super().__init__(err, message)
        self.op = op
        self.detail = detail

    def __reduce__(self) -> tuple[type[CephError], tuple[int, str, str | None]]:
        return (type(self), (self.errno or 0, self.op, self.detail))


def check(ret: int, op: str, detail: str | None = None) -> int:
    """Return `ret` if it is not negative, else raise CephError(-ret, op)."""
    if ret < 0:
        raise CephError(-ret, op, detail)
    return ret
