"""The same operations on cephmount and on ceph-fuse give the same results and errors.

Each scenario runs in a fresh directory on each mount of the same subvolume and
records what every step returned (or its errno); the two records must be equal.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

Outcome = tuple[str, Any]


class Recorder:
    """Run steps under a base dir and record each outcome, errors as errno names."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.outcomes: list[Outcome] = []

    def path(self, name: str) -> str:
        return str(self.base / name)

    def step(self, label: str, action: Callable[[], Any]) -> None:
        try:
            value = action()
        except OSError as exc:
            value = ("error", errno.errorcode.get(exc.errno or 0, exc.errno))
        self.outcomes.append((label, value))


def describe(st: os.stat_result) -> dict[str, int]:
    """The stat fields two mounts must agree on (not inode numbers or clock times)."""
    return {"type": stat.S_IFMT(st.st_mode), "perm": stat.S_IMODE(st.st_mode),
            "size": st.st_size, "nlink": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid}


def write_file(path: str, data: bytes, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
               offset: int | None = None) -> int:
    fd = os.open(path, flags, 0o644)
    try:
        return os.pwrite(fd, data, offset) if offset is not None else os.write(fd, data)
    finally:
        os.close(fd)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def files_and_dirs(r: Recorder) -> None:
    p = r.path
    r.step("mkdir", lambda: os.mkdir(p("d"), 0o755))
    r.step("mkdir again", lambda: os.mkdir(p("d")))
    r.step("create", lambda: write_file(p("d/f"), b"hello world\n"))
    r.step("create excl on existing", lambda: os.open(p("d/f"), os.O_CREAT | os.O_EXCL))
    r.step("read", lambda: read_file(p("d/f")))
    r.step("stat", lambda: describe(os.stat(p("d/f"))))
    r.step("open missing", lambda: os.open(p("d/missing"), os.O_RDONLY))
    r.step("rmdir non-empty", lambda: os.rmdir(p("d")))
    r.step("unlink dir", lambda: os.unlink(p("d")))
    r.step("rmdir a file", lambda: os.rmdir(p("d/f")))
    r.step("mkdir under a file", lambda: os.mkdir(p("d/f/x")))
    r.step("listdir", lambda: sorted(os.listdir(p("d"))))
    r.step("unlink", lambda: os.unlink(p("d/f")))
    r.step("unlink missing", lambda: os.unlink(p("d/f")))
    r.step("rmdir", lambda: os.rmdir(p("d")))
    r.step("long name", lambda: os.mkdir(p("n" * 256)))


def links_and_renames(r: Recorder) -> None:
    p = r.path
    r.step("create a", lambda: write_file(p("a"), b"A" * 100))
    r.step("create b", lambda: write_file(p("b"), b"B" * 50))
    r.step("hard link", lambda: os.link(p("a"), p("a2")))
    r.step("nlink", lambda: os.stat(p("a")).st_nlink)
    r.step("same inode", lambda: os.stat(p("a")).st_ino == os.stat(p("a2")).st_ino)
    r.step("link over existing", lambda: os.link(p("a"), p("b")))
    r.step("symlink", lambda: os.symlink("a", p("s")))
    r.step("readlink", lambda: os.readlink(p("s")))
    r.step("lstat symlink", lambda: describe(os.lstat(p("s")))["type"])
    r.step("read through symlink", lambda: read_file(p("s"))[:3])
    r.step("dangling symlink", lambda: os.symlink("nowhere", p("dangling")))
    r.step("stat dangling", lambda: os.stat(p("dangling")))
    r.step("rename over existing", lambda: os.rename(p("b"), p("a")))
    r.step("content after rename", lambda: read_file(p("a")))
    r.step("old name gone", lambda: os.path.exists(p("b")))
    r.step("a2 keeps old data", lambda: read_file(p("a2"))[:3])
    r.step("mkdir d1", lambda: os.mkdir(p("d1")))
    r.step("mkdir d2", lambda: os.mkdir(p("d2")))
    r.step("file into d2", lambda: write_file(p("d2/x"), b"x"))
    r.step("rename dir over non-empty dir", lambda: os.rename(p("d1"), p("d2")))
    r.step("rename dir over empty dir", lambda: os.rename(p("d2"), p("d1")))
    r.step("rename file over dir", lambda: os.rename(p("a"), p("d1")))
    r.step("rename dir into itself", lambda: os.rename(p("d1"), p("d1/sub")))
    r.step("listing", lambda: sorted(os.listdir(r.base)))


def sizes_and_sparse_files(r: Recorder) -> None:
    p = r.path
    r.step("create", lambda: write_file(p("f"), bytes(range(256)) * 64))
    r.step("truncate down", lambda: os.truncate(p("f"), 1000))
    r.step("size down", lambda: os.stat(p("f")).st_size)
    r.step("truncate up", lambda: os.truncate(p("f"), 1 << 20))
    r.step("tail is zeros", lambda: read_file(p("f"))[1000:] == bytes((1 << 20) - 1000))
    r.step("sparse write", lambda: write_file(p("sparse"), b"end", os.O_WRONLY | os.O_CREAT,
                                              offset=(64 << 20)))
    r.step("sparse size", lambda: os.stat(p("sparse")).st_size)
    r.step("sparse hole", lambda: _pread(p("sparse"), 4096, 1 << 20))
    r.step("append", lambda: write_file(p("f"), b"tail", os.O_WRONLY | os.O_APPEND))
    r.step("size after append", lambda: os.stat(p("f")).st_size)
    r.step("ftruncate", lambda: _ftruncate(p("f"), 10))
    r.step("read after ftruncate", lambda: read_file(p("f")))
    r.step("read past end", lambda: _pread(p("f"), 100, 5000))


def _pread(path: str, size: int, offset: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _ftruncate(path: str, size: int) -> int:
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def modes_owners_times(r: Recorder) -> None:
    p = r.path
    r.step("create", lambda: write_file(p("f"), b"data"))
    r.step("chmod", lambda: os.chmod(p("f"), 0o4751))
    r.step("mode", lambda: describe(os.stat(p("f")))["perm"])
    r.step("chown", lambda: os.chown(p("f"), 1234, 5678))
    r.step("owner", lambda: (os.stat(p("f")).st_uid, os.stat(p("f")).st_gid))
    r.step("chown clears setuid", lambda: describe(os.stat(p("f")))["perm"])
    times = (1_600_000_000_123_456_789, 1_500_000_000_987_654_321)
    r.step("utimensat ns", lambda: os.utime(p("f"), ns=times))
    r.step("times", lambda: (os.stat(p("f")).st_atime_ns, os.stat(p("f")).st_mtime_ns))
    r.step("mkdir 0700", lambda: os.mkdir(p("private"), 0o700))
    r.step("dir mode", lambda: describe(os.stat(p("private")))["perm"])
    r.step("mkfifo", lambda: os.mkfifo(p("fifo"), 0o640))
    r.step("fifo type", lambda: stat.S_ISFIFO(os.stat(p("fifo")).st_mode))
    r.step("mknod socket", lambda: os.mknod(p("sock"), stat.S_IFSOCK | 0o600))
    r.step("socket type", lambda: stat.S_ISSOCK(os.stat(p("sock")).st_mode))
    r.step("mknod chr", lambda: os.mknod(p("null"), stat.S_IFCHR | 0o666, os.makedev(1, 3)))
    r.step("chr rdev", lambda: os.stat(p("null")).st_rdev == os.makedev(1, 3))


def extended_attributes(r: Recorder) -> None:
    p = r.path
    r.step("create", lambda: write_file(p("f"), b"x"))
    r.step("set", lambda: os.setxattr(p("f"), "user.colour", b"blue"))
    r.step("get", lambda: os.getxattr(p("f"), "user.colour"))
    r.step("replace", lambda: os.setxattr(p("f"), "user.colour", b"green"))
    r.step("create existing", lambda: os.setxattr(p("f"), "user.colour", b"red",
                                                   os.XATTR_CREATE))
    r.step("replace missing", lambda: os.setxattr(p("f"), "user.size", b"1",
                                                   os.XATTR_REPLACE))
    r.step("big value", lambda: os.setxattr(p("f"), "user.big", b"v" * 4000))
    r.step("get big", lambda: len(os.getxattr(p("f"), "user.big")))
    r.step("list", lambda: sorted(os.listxattr(p("f"))))
    r.step("remove", lambda: os.removexattr(p("f"), "user.colour"))
    r.step("get removed", lambda: os.getxattr(p("f"), "user.colour"))
    r.step("remove missing", lambda: os.removexattr(p("f"), "user.colour"))
    r.step("ceph layout", lambda: os.getxattr(p("f"), "ceph.file.layout.object_size"))
    r.step("ceph dir rentries", lambda: os.getxattr(r.base, "ceph.dir.rentries") > b"")
    r.step("bad namespace", lambda: os.setxattr(p("f"), "bogus.name", b"1"))


def large_file_by_digest(r: Recorder) -> None:
    data = os.urandom(1 << 20) * 24  # 24 MiB, several objects
    r.step("write", lambda: write_file(r.path("big"), data))
    r.step("sha256", lambda: hashlib.sha256(read_file(r.path("big"))).hexdigest()
           == hashlib.sha256(data).hexdigest())
    r.step("size", lambda: os.stat(r.path("big")).st_size)




def large_directory(r: Recorder) -> None:
    names = [f"entry-{i:05d}" for i in range(1500)]  # several readdir batches
    r.step("create many", lambda: [write_file(r.path(n), b"") for n in names][-1])
    r.step("list all", lambda: sorted(os.listdir(r.base)) == names)
    r.step("remove half", lambda: [os.unlink(r.path(n)) for n in names[::2]][-1])
    r.step("list rest", lambda: sorted(os.listdir(r.base)) == names[1::2])


def _ls_a(path: str) -> list[tuple[str, bool]]:
    """`ls -ai` of a directory: each name and whether `.` and `..` are the right inodes."""
    out = subprocess.run(["ls", "-a1i", path], capture_output=True, text=True, timeout=30,
                         check=True).stdout.split()
    parent = os.stat(os.path.dirname(path)).st_ino
    names = dict(zip(out[1::2], map(int, out[::2]), strict=True))
    return [(name, {".": os.stat(path).st_ino, "..": parent}.get(name, ino) == ino)
            for name, ino in names.items()]


def dots_and_directory_sync(r: Recorder) -> None:
    r.step("mkdir", lambda: os.mkdir(r.path("d")))
    r.step("create", lambda: write_file(r.path("d/f"), b"data"))
    r.step("ls -a", lambda: _ls_a(r.path("d")))
    r.step("fsync dir", lambda: _fsync_dir(r.path("d")))


def _fsync_dir(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
        return 0
    finally:
        os.close(fd)


SCENARIOS = [files_and_dirs, links_and_renames, sizes_and_sparse_files, modes_owners_times,
             extended_attributes, large_file_by_digest, large_directory,
             dots_and_directory_sync]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_same_outcomes_as_ceph_fuse(scenario: Callable[[Recorder], None], workdir: Path,
                                    reference_workdir: Path) -> None:
    ours, reference = Recorder(workdir), Recorder(reference_workdir)
    scenario(ours)
    scenario(reference)

    assert ours.outcomes == reference.outcomes
    assert not any(value is False for label, value in ours.outcomes
                   if label.startswith("list")), "a listing differs from what was made"


def test_listing_while_entries_come_and_go_loses_and_repeats_nothing(workdir: Path) -> None:
    # Enough entries that the listing takes several getdents calls (~1000 entries each),
    # so the changes below land between calls, not before the first one.
    stable = {f"stable-{i:04d}" for i in range(2000)}
    doomed = [f"doomed-{i:04d}" for i in range(600)]
    for name in [*stable, *doomed]:
        (workdir / name).touch()

    seen: list[str] = []
    with os.scandir(workdir) as listing:
        for position, entry in enumerate(listing):
            seen.append(entry.name)
            if position == 100:
                for name in doomed:
                    (workdir / name).unlink()
                for i in range(600):
                    (workdir / f"new-{i:04d}").touch()

    assert len(seen) == len(set(seen)), "an entry was listed twice"
    assert stable <= set(seen), "an entry present throughout was lost"


def _listed(directory: Path) -> list[tuple[str, int, bool, bool, bool]]:
    """Each entry's name, inode number and type as a plain listing tells them
    (`os.scandir` reads getdents' d_ino and d_type, and asks nothing else)."""
    with os.scandir(directory) as entries:
        return sorted((entry.name, entry.inode(), entry.is_dir(follow_symlinks=False),
                       entry.is_symlink(), entry.is_file(follow_symlinks=False))
                      for entry in entries)


def test_a_large_listing_shows_what_ceph_fuse_shows(workdir: Path, cephmount_mount: Path,
                                                     ceph_fuse_mount: Path) -> None:
    """Names, inode numbers and types over many replies and more than one batch of
    libcephfs's names: all that `ls -f`, `find` and `os.scandir` read of a listing."""
    for i in range(5000):
        (workdir / f"file-{i:05d}").touch()
    for i in range(40):
        os.mkdir(workdir / f"dir-{i:02d}")
        os.symlink(f"file-{i:05d}", workdir / f"link-{i:02d}")
        os.mkfifo(workdir / f"fifo-{i:02d}")
    through_ceph_fuse = ceph_fuse_mount / workdir.relative_to(cephmount_mount)

    ours = _listed(workdir)
    assert len(ours) == 5120
    assert ours == _listed(through_ceph_fuse)
