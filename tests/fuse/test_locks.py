"""fcntl and flock locks across nodes, lock waits that starve nothing, and fallocate.

Nodes A and B are separate cephmount mounts (separate processes and libcephfs
clients) of one subvolume. Locks are taken by separate processes, as applications
do; ceph-fuse on the same cluster is the reference for fallocate.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cephmount.devcluster import ClientEnv
from tests.fuse.conftest import cephmount_at

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

BOUND_S = 30.0  # generous: what "promptly" and "is woken" must meet
STILL_WAITING_S = 1.0  # how long a waiter must stay blocked to count as waiting

# A process that takes a lock on a file and holds it until its stdin closes.
# argv: path, how ("lockf", "lockf-nb", "flock", "flock-nb", "append").
LOCKER = r"""
import fcntl, os, sys
path, how = sys.argv[1], sys.argv[2]
flags = os.O_RDWR | os.O_CREAT | (os.O_APPEND if how == "append" else 0)
fd = os.open(path, flags, 0o644)
try:
    if how == "lockf":
        fcntl.lockf(fd, fcntl.LOCK_EX)
    elif how == "lockf-nb":
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif how == "flock":
        fcntl.flock(fd, fcntl.LOCK_EX)
    elif how == "flock-nb":
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif how == "append":
        os.write(fd, b"line\n")
except OSError as exc:
    print("error", exc.errno, flush=True)
    sys.exit(1)
print("done", flush=True)
sys.stdin.read()
"""


class Locker:
    """A process that takes a lock (or appends) and holds the file open until told."""

    def __init__(self, path: Path, how: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), how],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def outcome(self, timeout: float = BOUND_S) -> str | None:
        """Its first line ("done" or "error N"), None if it prints nothing in time."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else None

    def release(self) -> None:
        """Close its stdin: it exits, closing the file (which drops its locks)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=BOUND_S) in (0, 1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=BOUND_S)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture(scope="module")
def nodes(client_env: ClientEnv, mount_root: Path) -> Iterator[tuple[Path, Path]]:
    with contextlib.ExitStack() as mounts:
        a, b = (mounts.enter_context(cephmount_at(client_env, mount_root / name))
                for name in ("locks-a", "locks-b"))
        yield a, b


@pytest.fixture
def shared(nodes: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    """A fresh directory, as node A and node B see it."""
    name = f"l-{uuid.uuid4().hex[:10]}"
    (nodes[0] / name).mkdir()
    try:
        yield nodes[0] / name, nodes[1] / name
    finally:
        subprocess.run(["rm", "-rf", str(nodes[0] / name)], timeout=120, check=False)


@pytest.fixture
def lockers() -> Iterator[list[Locker]]:
    """Start lockers with `lockers.append(Locker(...))`; any left running are killed."""
    started: list[Locker] = []
    yield started
    for locker in started:
        locker.stop()


def start(lockers: list[Locker], path: Path, how: str) -> Locker:
    locker = Locker(path, how)
    lockers.append(locker)
    return locker


def holding(lockers: list[Locker], path: Path, how: str) -> Locker:
    """A locker that has taken its lock (and holds it until released or killed)."""
    holder = start(lockers, path, how)
    assert holder.outcome() == "done"
    return holder


def getlk(path: Path) -> tuple[int, int, int]:
    """F_GETLK for a write lock on the whole file: (type, start, length) of a conflict."""
    fd = os.open(path, os.O_RDWR)
    try:
        query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        kind, _, start_, length, _ = struct.unpack("hhqqi", answer)
        return kind, start_, length
    finally:
        os.close(fd)


def test_an_fcntl_lock_on_one_node_holds_on_the_other(
        shared: tuple[Path, Path], lockers: list[Locker]) -> None:
    a, b = shared
    holder = holding(lockers, a / "f", "lockf")

    assert start(lockers, b / "f", "lockf-nb").outcome() in (
        f"error {errno.EAGAIN}", f"error {errno.EACCES}")
    assert getlk(b / "f") == (fcntl.F_WRLCK, 0, 0)

    holder.release()
    assert getlk(b / "f")[0] == fcntl.F_UNLCK
    assert start(lockers, b / "f", "lockf-nb").outcome() == "done"


def test_a_flock_lock_on_one_node_holds_on_the_other(
        shared: tuple[Path, Path], lockers: list[Locker]) -> None:
    a, b = shared
    holder = holding(lockers, a / "f", "flock")

    assert start(lockers, b / "f", "flock-nb").outcome() == f"error {errno.EWOULDBLOCK}"

    holder.release()
    assert start(lockers, b / "f", "flock-nb").outcome() == "done"


@pytest.mark.parametrize("how", ["lockf", "flock"])
def test_a_waiter_is_woken_when_the_other_node_unlocks(
        shared: tuple[Path, Path], lockers: list[Locker], how: str) -> None:
    a, b = shared
    holder = holding(lockers, a / "f", how)
    waiter = start(lockers, b / "f", how)
    assert waiter.outcome(timeout=STILL_WAITING_S) is None

    holder.release()
    assert waiter.outcome() == "done"


@pytest.mark.parametrize("how", ["lockf", "flock"])
def test_a_killed_holder_leaves_no_lock(
        shared: tuple[Path, Path], lockers: list[Locker], how: str) -> None:
    a, b = shared
    holder = holding(lockers, a / "f", how)
    assert start(lockers, b / "f", f"{how}-nb").outcome() != "done"
    holder.kill()
    assert start(lockers, b / "f", f"{how}-nb").outcome() == "done"


def test_a_killed_waiter_dies_and_leaves_no_lock(
        shared: tuple[Path, Path], lockers: list[Locker]) -> None:
    """The kernel interrupts the waiting request; the waiter must not hang in it."""
    a, b = shared
    holder = holding(lockers, a / "f", "lockf")
    waiter = start(lockers, b / "f", "lockf")
    assert waiter.outcome(timeout=STILL_WAITING_S) is None

    waiter.kill()  # returns only once the process is gone (bounded)
    holder.release()
    assert start(lockers, a / "f", "lockf-nb").outcome() == "done"


def test_fcntl_locks_are_shared_with_ceph_fuse(
        shared: tuple[Path, Path], ceph_fuse_mount: Path, nodes: tuple[Path, Path],
        lockers: list[Locker]) -> None:
    """ceph-fuse nodes and cephmount nodes exclude each other's fcntl locks."""
    a, _ = shared
    reference = ceph_fuse_mount / a.relative_to(nodes[0])
    for holder_path, other_path in ((reference / "f", a / "f"), (a / "g", reference / "g")):
        holder = holding(lockers, holder_path, "lockf")
        assert start(lockers, other_path, "lockf-nb").outcome() in (
            f"error {errno.EAGAIN}", f"error {errno.EACCES}")
        holder.release()
        assert start(lockers, other_path, "lockf-nb").outcome() == "done"


def test_closing_any_descriptor_drops_the_process_locks(shared: tuple[Path, Path]) -> None:
    """POSIX: a process's locks on a file go with the close of any of its descriptors."""
    a, b = shared
    (a / "f").write_bytes(b"x")
    first = os.open(a / "f", os.O_RDWR)
    second = os.open(a / "f", os.O_RDONLY)
    try:
        fcntl.lockf(first, fcntl.LOCK_EX)
        assert getlk(b / "f")[0] == fcntl.F_WRLCK
        os.close(second)
        assert getlk(b / "f")[0] == fcntl.F_UNLCK
    finally:
        os.close(first)


def test_a_process_holding_a_whole_file_lock_can_append(
        shared: tuple[Path, Path], lockers: list[Locker]) -> None:
    """mbox-style delivery: lock the whole file, then append under the lock."""
    a, b = shared
    script = (f"import fcntl, os; fd = os.open({str(a / 'log')!r}, os.O_WRONLY | os.O_APPEND"
              " | os.O_CREAT, 0o644); fcntl.lockf(fd, fcntl.LOCK_EX);"
              " os.write(fd, b'locked line\\n'); os.close(fd)")
    subprocess.run([sys.executable, "-c", script], timeout=BOUND_S, check=True)
    assert (b / "log").read_bytes() == b"locked line\n"


def test_lock_waits_do_not_starve_other_requests(
        shared: tuple[Path, Path], lockers: list[Locker]) -> None:
    """More lock waiters and appenders than the mount has worker threads, blocked by a
    lock on the other node: stat and read on the waiters' node still answer."""
    a, b = shared
    (a / "other").write_bytes(b"still served")
    (a / "f").write_bytes(b"")
    holder = holding(lockers, b / "f", "lockf")  # whole file: appends wait for it too
    waiters = [start(lockers, a / "f", how) for how in ["lockf"] * 12 + ["append"] * 12]
    assert all(waiter.outcome(timeout=0.1) is None for waiter in waiters)
    time.sleep(STILL_WAITING_S)

    reader = ("import os, sys; os.stat(sys.argv[1]); "
              "sys.stdout.write(open(sys.argv[1]).read())")
    served = subprocess.run([sys.executable, "-c", reader, str(a / "other")],
                            capture_output=True, text=True, timeout=BOUND_S, check=True)
    assert served.stdout == "still served"

    holder.release()
    finish_in_turn(waiters)


def finish_in_turn(waiters: list[Locker]) -> None:
    """Each waiter gets its turn: release each as soon as it is done, until all were."""
    pending = {waiter.proc.stdout: waiter for waiter in waiters}
    deadline = time.monotonic() + BOUND_S * 2
    while pending:
        ready, _, _ = select.select(list(pending), [], [], deadline - time.monotonic())
        assert ready, f"{len(pending)} waiters never got their turn"
        for stream in ready:
            waiter = pending.pop(stream)
            assert waiter.outcome(timeout=0) == "done"
            waiter.release()


# -- fallocate, against ceph-fuse ---------------------------------------------------------

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

# (mode, offset, length) on a file of 64 KiB of b"a"
FALLOCATE_CASES = {
    "allocate past the end": (0, 60000, 20000),
    "allocate inside": (0, 100, 1000),
    "keep size": (FALLOC_FL_KEEP_SIZE, 60000, 20000),
    "punch a hole": (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 10000),
    "punch past the end": (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 60000, 20000),
    "punch without keep size": (FALLOC_FL_PUNCH_HOLE, 5000, 10000),
    "zero range": (FALLOC_FL_ZERO_RANGE, 4096, 4096),
    "collapse range": (FALLOC_FL_COLLAPSE_RANGE, 4096, 4096),
    "insert range": (FALLOC_FL_INSERT_RANGE, 4096, 4096),
}


def fallocate_outcome(workdir: Path, mode: int, offset: int, length: int
                      ) -> tuple[int, int, bytes]:
    """(errno or 0, size, content) after fallocate on a fresh file, read back after reopen."""
    path = workdir / f"fa-{uuid.uuid4().hex[:8]}"
    path.write_bytes(b"a" * 65536)
    fd = os.open(path, os.O_RDWR)
    try:
        err = 0 if _libc.fallocate(fd, mode, offset, length) == 0 else ctypes.get_errno()
        os.pread(fd, 1, 0)  # what this descriptor reads, too
    finally:
        os.close(fd)
    content = path.read_bytes()
    return err, len(content), content


@pytest.mark.parametrize("case", list(FALLOCATE_CASES))
def test_fallocate_does_what_ceph_fuse_does(
        workdir: Path, reference_workdir: Path, case: str) -> None:
    mode, offset, length = FALLOCATE_CASES[case]
    ours = fallocate_outcome(workdir, mode, offset, length)
    reference = fallocate_outcome(reference_workdir, mode, offset, length)
    assert ours[:2] == reference[:2]
    assert ours[2] == reference[2]


def test_fallocate_supports_the_modes_libcephfs_has(workdir: Path) -> None:
    """What a user relies on, stated outright (the comparison above would also pass if
    both mounts refused everything)."""
    err, size, _ = fallocate_outcome(workdir, 0, 60000, 20000)
    assert (err, size) == (0, 80000)
    err, size, _ = fallocate_outcome(workdir, FALLOC_FL_KEEP_SIZE, 60000, 20000)
    assert (err, size) == (0, 65536)
    err, size, content = fallocate_outcome(
        workdir, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 10000)
    assert (err, size) == (0, 65536)
    assert content == b"a" * 5000 + bytes(10000) + b"a" * (65536 - 15000)
    assert fallocate_outcome(workdir, FALLOC_FL_COLLAPSE_RANGE, 4096, 4096)[0] == errno.EOPNOTSUPP
