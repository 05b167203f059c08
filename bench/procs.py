"""Child processes the bench starts, and only those, ended by their own id."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

# `python -m bench.direct` must find the bench package whatever the caller's cwd.
REPO = Path(__file__).resolve().parent.parent


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          **popen: Any) -> subprocess.Popen[Any]:
    """Start `argv` in a session of its own (Ctrl-C reaches only us; we stop it),
    stderr (and stdout unless redirected) appended to `log`, in `cwd` (default: the repo)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen.setdefault("stdout", out)
        popen.setdefault("cwd", REPO)
        return subprocess.Popen(
            list(argv), stdin=popen.pop("stdin", subprocess.DEVNULL), stderr=out,
            env={**os.environ, **(env or {})}, start_new_session=True, **popen)


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM our child, SIGKILL it after `grace`, and reap it."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
            return


def wait_all(processes: Sequence[subprocess.Popen[Any]], timeout: float) -> list[int | None]:
    """Exit codes; None for a child still running after `timeout` (then stopped)."""
    codes: list[int | None] = []
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            codes.append(process.wait(max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            stop(process)
            codes.append(None)
    return codes


def tail(path: Path, chars: int = 600) -> str:
    """The end of a log, for an error message."""
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""


def close_quietly(stream: IO[Any] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()
