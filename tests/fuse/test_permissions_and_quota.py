"""What POSIX and the subvolume's quota promise a user of the mount."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cephmount.devcluster import QUOTA_BYTES
from tests.fuse.conftest import as_user

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

OTHER_UID, OTHER_GID = 4242, 4242
TEAM_GID = 4343  # a supplementary group of OTHER_UID's where a test says so


def run_as_other(code: str, groups: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    user = as_user(OTHER_UID, OTHER_GID) | {"extra_groups": list(groups)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, **user)


def errno_of(code: str, groups: tuple[int, ...] = ()) -> str:
    """Run `code` as another user; return the errno name it failed with, or 'ok'."""
    wrapped = ("import errno, os\ntry:\n    " + code + "\n    print('ok')\n"
               "except OSError as e:\n    print(errno.errorcode[e.errno])")
    result = run_as_other(wrapped, groups)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def team_directory(workdir: Path) -> Path:
    """A directory in `workdir` only root and TEAM_GID's members may search and write."""
    workdir.chmod(0o755)
    team = workdir / "team"
    team.mkdir()
    os.chown(team, 0, TEAM_GID)
    team.chmod(0o770)
    return team


def answered_in_c(mount: Path, op: str) -> tuple[int, int]:
    """The mount's `op` requests answered in C so far, and those handed to Python."""
    stats = json.loads(os.getxattr(mount, "cephmount.stats"))
    return int(stats[f"native_{op}s"]), int(stats[f"native_{op}_fallbacks"])


def test_non_root_caller_gets_eacces_where_posix_says(workdir: Path) -> None:
    workdir.chmod(0o755)
    secret = workdir / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    private = workdir / "private"
    private.mkdir(mode=0o700)
    shared = workdir / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # mkdir's mode passes through the umask
    (workdir / "readable").write_text("everyone")
    (workdir / "readable").chmod(0o644)

    assert errno_of(f"open({str(secret)!r}).read()") == "EACCES"
    assert errno_of(f"open({str(workdir / 'readable')!r}, 'a')") == "EACCES"
    assert errno_of(f"os.listdir({str(private)!r})") == "EACCES"
    assert errno_of(f"open({str(workdir / 'new')!r}, 'w')") == "EACCES"
    assert errno_of(f"os.chmod({str(secret)!r}, 0o777)") == "EPERM"
    assert errno_of(f"open({str(workdir / 'readable')!r}).read()") == "ok"
    assert errno_of(f"open({str(shared / 'mine')!r}, 'w').write('x')") == "ok"
    assert (shared / "mine").stat().st_uid == OTHER_UID


def test_lookups_go_by_the_callers_supplementary_groups(cephmount_mount: Path,
                                                       workdir: Path) -> None:
    """In a directory only a supplementary group may search, a name is found, and an
    absent one answered ENOENT by the lookup in C (which reads the caller's groups as
    the Python handlers and ceph-fuse do); without the group, EACCES."""
    team = team_directory(workdir)
    (team / "plan").write_text("ship it")
    assert errno_of(f"os.stat({str(team / 'warm-up')!r})", (TEAM_GID,)) == "ENOENT"

    def native_lookups() -> int:
        return int(json.loads(os.getxattr(cephmount_mount, "cephmount.stats"))["native_lookups"])

    before = native_lookups()
    code = f"os.stat({str(team / 'absent')!r})"
    assert [errno_of(code, (TEAM_GID,)) for _ in range(3)] == ["ENOENT"] * 3
    assert native_lookups() - before >= 3
    assert errno_of(f"print(open({str(team / 'plan')!r}).read(), end=' ')",
                    (TEAM_GID,)) == "ship it ok"
    assert errno_of(code) == "EACCES"


def test_unlinks_go_by_the_callers_supplementary_groups(cephmount_mount: Path,
                                                       workdir: Path) -> None:
    """In a directory only a supplementary group may write, a member's unlinks are
    done and answered in C, as the member: none needs the Python handler."""
    team = team_directory(workdir)
    for i in range(3):
        (team / f"draft{i}").write_text("scrap it")
    assert errno_of(f"os.stat({str(team / 'warm-up')!r})", (TEAM_GID,)) == "ENOENT"

    done, handed_on = answered_in_c(cephmount_mount, "unlink")
    for i in range(3):
        assert errno_of(f"os.unlink({str(team / f'draft{i}')!r})", (TEAM_GID,)) == "ok"
    assert answered_in_c(cephmount_mount, "unlink") == (done + 3, handed_on)
    assert not list(team.iterdir())


def test_creates_go_by_the_callers_supplementary_groups(cephmount_mount: Path,
                                                       workdir: Path) -> None:
    """In a directory only a supplementary group may write, a member's files are made
    on the reading thread as the member (owner, umask); a stranger is refused (by the
    kernel's own check: no create reaches the mount)."""
    team = team_directory(workdir)
    assert errno_of(f"os.stat({str(team / 'warm-up')!r})", (TEAM_GID,)) == "ENOENT"

    made, handed_on = answered_in_c(cephmount_mount, "create")
    for i in range(3):
        code = f"os.umask(0o027); open({str(team / f'note{i}')!r}, 'x').write('kept')"
        assert errno_of(code, (TEAM_GID,)) == "ok"
    assert answered_in_c(cephmount_mount, "create") == (made + 3, handed_on)
    for i in range(3):
        made_file = (team / f"note{i}").stat()
        assert (made_file.st_uid, made_file.st_gid) == (OTHER_UID, OTHER_GID)
        assert made_file.st_mode & 0o777 == 0o640
        assert (team / f"note{i}").read_text() == "kept"
    team.chmod(0o775)  # searchable, not writable, by others
    assert errno_of(f"open({str(team / 'stranger')!r}, 'w')") == "EACCES"
    assert answered_in_c(cephmount_mount, "create") == (made + 3, handed_on)
    assert not (team / "stranger").exists()


def test_df_shows_the_quota(cephmount_mount: Path) -> None:
    vfs = os.statvfs(cephmount_mount)
    assert vfs.f_blocks * vfs.f_frsize == QUOTA_BYTES
    df = subprocess.run(["df", "-B1", "--output=size", str(cephmount_mount)],
                        capture_output=True, text=True, timeout=30, check=True)
    assert int(df.stdout.split()[-1]) == QUOTA_BYTES


def test_writing_past_the_quota_gives_edquot(workdir: Path) -> None:
    path = workdir / "too-big"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as refused:
            os.pwrite(fd, b"x" * 4096, QUOTA_BYTES + (256 << 20))
            os.fsync(fd)
        assert refused.value.errno == errno.EDQUOT
    finally:
        os.close(fd)
    # Nothing else broke: the mount still takes writes within the quota.
    (workdir / "small").write_bytes(b"fine")
    assert (workdir / "small").read_bytes() == b"fine"


def test_ftruncate_goes_by_the_open_descriptor(workdir: Path) -> None:
    """pjdfstest ftruncate/00.t: a file created with mode 0 and opened for writing."""
    workdir.chmod(0o777)
    path = workdir / "mode0"
    code = (f"fd = os.open({str(path)!r}, os.O_CREAT | os.O_RDWR, 0)\n"
            "    os.ftruncate(fd, 1234)\n"
            "    assert os.fstat(fd).st_size == 1234")
    assert errno_of(code) == "ok"
    assert path.stat().st_size == 1234
    assert errno_of(f"os.truncate({str(path)!r}, 0)") == "EACCES"  # no descriptor


def test_utime_now_needs_write_access_not_ownership(workdir: Path) -> None:
    """pjdfstest utimensat/06.t: UTIME_NOW by a writer who does not own the file."""
    path = workdir / "shared-file"
    path.write_bytes(b"x")
    path.chmod(0o666)
    os.utime(path, ns=(10**18, 10**18))
    assert errno_of(f"os.utime({str(path)!r})") == "ok"  # both times now
    assert path.stat().st_mtime_ns > 10**18
    assert errno_of(f"os.utime({str(path)!r}, ns=(10**9, 10**9))") == "EPERM"
    path.chmod(0o644)
    assert errno_of(f"os.utime({str(path)!r})") == "EACCES"
