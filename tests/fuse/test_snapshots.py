"""CephFS snapshots under `.snap`, on cephmount as on ceph-fuse.

Every directory has a `.snap`: its snapshots (and those of its ancestors, named
`_NAME_INO`), each a read-only tree of the directory as it was. A key with the
`s` cap makes and removes snapshots with mkdir and rmdir there, except inside a
subvolume (only its base directory takes snapshots). The same steps run on both
mounts and their records must be equal, and equal to what is expected.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cephmount.devcluster import ClientEnv
from tests.fuse.conftest import mount_ceph_fuse, mount_cephmount, scratch_dir, unmount
from tests.fuse.test_posix_differential import Recorder, describe, read_file, write_file

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

INO_BITS = 48


def _admin_at_root(env: ClientEnv) -> ClientEnv:
    return dataclasses.replace(env, client_id="admin", keyring=env.admin_keyring,
                               subvolume_path="/")


@pytest.fixture(scope="module")
def admin_mounts(client_env: ClientEnv, mount_root: Path) -> Iterator[tuple[Path, Path]]:
    """The whole filesystem mounted with the admin key: by cephmount and by ceph-fuse."""
    env = _admin_at_root(client_env)
    ours, reference = mount_root / "snap-cephmount", mount_root / "snap-ceph-fuse"
    ours.mkdir()
    reference.mkdir()
    try:
        mount_cephmount(env, ours)
        mount_ceph_fuse(env, reference)
        yield ours, reference
    finally:
        unmount(ours)
        unmount(reference)
        ours.rmdir()
        reference.rmdir()


def _mmap_read(path: str) -> bytes:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        return bytes(m)


def _numbers(base: Path, snapshot: str) -> dict[str, bool]:
    """How snapshot inodes are numbered, as far as both mounts must agree."""
    head_dir, head_file = os.stat(base).st_ino, os.stat(base / "f").st_ino
    snapdir = os.stat(base / ".snap").st_ino
    snap_dir = os.stat(base / ".snap" / snapshot).st_ino
    snap_file = os.stat(base / ".snap" / snapshot / "f").st_ino
    low = (1 << INO_BITS) - 1
    return {"all distinct": len({head_dir, head_file, snapdir, snap_dir, snap_file}) == 5,
            "snapshots share the head's ino": (snapdir & low, snap_dir & low, snap_file & low)
            == (head_dir, head_dir, head_file),
            "head numbers are ceph inos": head_dir <= low and head_file <= low}


def _read_only_steps(r: Recorder, snapshot: str) -> None:
    """Everything that would change a snapshot is refused with EROFS."""
    kept = f".snap/{snapshot}"
    r.step("write", lambda: write_file(r.path(f"{kept}/f"), b"x", os.O_WRONLY))
    r.step("create", lambda: write_file(r.path(f"{kept}/new"), b"x"))
    r.step("truncate", lambda: os.truncate(r.path(f"{kept}/f"), 0))
    r.step("unlink", lambda: os.unlink(r.path(f"{kept}/f")))
    r.step("mkdir", lambda: os.mkdir(r.path(f"{kept}/sub2")))
    r.step("chmod", lambda: os.chmod(r.path(f"{kept}/f"), 0o600))
    r.step("rename", lambda: os.rename(r.path(f"{kept}/f"), r.path(f"{kept}/f2")))


def _made_read_and_removed(r: Recorder) -> None:
    write_file(r.path("f"), b"one")
    os.mkdir(r.path("sub"))
    write_file(r.path("sub/g"), b"gee")
    r.step("mksnap", lambda: os.mkdir(r.path(".snap/s1")))
    write_file(r.path("f"), b"two")
    os.unlink(r.path("sub/g"))
    write_file(r.path("h"), b"new")
    r.step("snapdir", lambda: sorted(os.listdir(r.path(".snap"))))
    r.step("snapshot", lambda: sorted(os.listdir(r.path(".snap/s1"))))
    r.step("kept", lambda: read_file(r.path(".snap/s1/f")))
    r.step("head", lambda: read_file(r.path("f")))
    r.step("kept again", lambda: read_file(r.path(".snap/s1/f")))
    r.step("kept below", lambda: read_file(r.path(".snap/s1/sub/g")))
    r.step("mmap", lambda: _mmap_read(r.path(".snap/s1/f")))
    r.step("stat", lambda: describe(os.stat(r.path(".snap/s1/f"))))
    r.step("ancestor's", lambda: [name.startswith("_s1_")
                                  for name in os.listdir(r.path("sub/.snap"))])
    r.step("numbers", lambda: _numbers(r.base, "s1"))
    _read_only_steps(r, "s1")
    r.step("rmsnap", lambda: os.rmdir(r.path(".snap/s1")))
    r.step("snapdir after", lambda: os.listdir(r.path(".snap")))


def _record(base: Path, scenario: Callable[[Recorder], None]) -> list[tuple[str, object]]:
    recorder = Recorder(base)
    scenario(recorder)
    return recorder.outcomes


def test_snapshots_made_read_and_removed_as_on_ceph_fuse(
        admin_mounts: tuple[Path, Path]) -> None:
    ours, reference = admin_mounts
    with scratch_dir(ours, "snap") as mine, scratch_dir(reference, "snap") as theirs:
        got = _record(mine, _made_read_and_removed)
        expected = _record(theirs, _made_read_and_removed)
    assert got == expected
    outcomes = dict(got)
    assert outcomes["mksnap"] is None and outcomes["rmsnap"] is None
    assert outcomes["snapdir"] == ["s1"] and outcomes["snapdir after"] == []
    assert outcomes["snapshot"] == ["f", "sub"]
    assert (outcomes["kept"], outcomes["head"], outcomes["kept again"]) == (b"one", b"two",
                                                                            b"one")
    assert outcomes["kept below"] == b"gee" and outcomes["mmap"] == b"one"
    assert outcomes["ancestor's"] == [True]
    assert all(outcomes["numbers"].values())
    for step in ("write", "create", "truncate", "unlink", "mkdir", "chmod", "rename"):
        assert outcomes[step] == ("error", "EROFS"), step


def _confined(r: Recorder, snapshot: str) -> None:
    r.step("snapdir", lambda: os.listdir(r.path(".snap")) == [snapshot])
    r.step("kept", lambda: read_file(r.path(f".snap/{snapshot}/f")))
    r.step("head", lambda: read_file(r.path("f")))
    r.step("numbers", lambda: _numbers(r.base, snapshot))
    r.step("mksnap", lambda: os.mkdir(r.path(".snap/mine")))
    r.step("rmsnap", lambda: os.rmdir(r.path(f".snap/{snapshot}")))
    _read_only_steps(r, snapshot)


def test_subvolume_snapshots_with_a_confined_key_as_on_ceph_fuse(
        client_env: ClientEnv, admin_mounts: tuple[Path, Path], workdir: Path,
        reference_workdir: Path) -> None:
    """The subvolume's own key lists and reads the subvolume's snapshots, and may
    not make or remove any (it lacks the `s` cap)."""
    name = f"sv-{uuid.uuid4().hex[:8]}"
    base = admin_mounts[0] / Path(client_env.subvolume_path).parent.relative_to("/")
    write_file(str(workdir / "f"), b"one")
    write_file(str(reference_workdir / "f"), b"one")
    os.mkdir(base / ".snap" / name)
    try:
        write_file(str(workdir / "f"), b"two")
        write_file(str(reference_workdir / "f"), b"two")
        snapshot = f"_{name}_{os.stat(base).st_ino}"
        got = _record(workdir, lambda r: _confined(r, snapshot))
        expected = _record(reference_workdir, lambda r: _confined(r, snapshot))
    finally:
        os.rmdir(base / ".snap" / name)
    assert got == expected
    outcomes = dict(got)
    assert outcomes["snapdir"] is True
    assert (outcomes["kept"], outcomes["head"]) == (b"one", b"two")
    assert all(outcomes["numbers"].values())
    assert outcomes["mksnap"] == ("error", "EACCES")  # no `s` cap
    assert outcomes["rmsnap"] == ("error", "EINVAL")  # an ancestor's, named _NAME_INO


def _listed_numbers(directory: Path) -> dict[str, bool]:
    """Each entry's name, and whether the listing tells its number as stat does.
    The stats come after the listing: a lookup during it makes the kernel ask for
    the rest with READDIRPLUS (as it does for `ls -l`)."""
    with os.scandir(directory) as entries:
        listed = {entry.name: entry.inode() for entry in entries}
    return {name: number == os.lstat(directory / name).st_ino
            for name, number in listed.items()}


def test_a_large_snapshot_lists_its_own_numbers(admin_mounts: tuple[Path, Path]) -> None:
    """A snapshot of a directory too large for one reply: the names after the first
    reply's come from plain READDIRs, whose numbers must be the snapshot's, as a
    stat of each entry finds them (on ceph-fuse as on cephmount)."""
    ours, reference = admin_mounts
    with scratch_dir(ours, "snap") as directory:
        for i in range(600):
            (directory / f"f{i:03d}").touch()
        os.mkdir(directory / ".snap" / "s1")
        try:
            listed = _listed_numbers(directory / ".snap" / "s1")
            expected = _listed_numbers(reference / directory.name / ".snap" / "s1")
        finally:
            os.rmdir(directory / ".snap" / "s1")
    assert listed == expected
    assert len(listed) == 600 and all(listed.values())
