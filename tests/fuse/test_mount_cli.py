"""`cephmount mount`, `umount` and `list` as a user meets them, bad input included."""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cephfs
import pytest

from cephmount.devcluster import ClientEnv
from cephmount.host import mountinfo
from tests.conftest import short_tmpdir
from tests.fuse.conftest import (
    as_user,
    cephmount_cli,
    client_options,
    is_mounted,
    mount_cephmount,
    unmount,
)

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

NOBODY = pwd.getpwnam("nobody")


def assert_clean_failure(result: subprocess.CompletedProcess[str], mountpoint: Path,
                         needle: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr
    assert not is_mounted(mountpoint)


def test_mount_write_list_umount(client_env: ClientEnv, tmp_path: Path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    result = cephmount_cli("mount", "-o", client_options(client_env),
                           f"{client_env.fs_name}:{client_env.subvolume_path}", str(mountpoint))
    try:
        assert result.returncode == 0, result.stderr
        (mountpoint / "from-cli").write_text("hello")
        assert (mountpoint / "from-cli").read_text() == "hello"
        listing = cephmount_cli("list")
        assert str(mountpoint) in listing.stdout
        (entry,) = mountinfo.mounted_at(mountpoint)
        assert entry.fs_type == "fuse.cephmount" and client_env.fs_name in entry.source
        (mountpoint / "from-cli").unlink()
    finally:
        umounted = cephmount_cli("umount", str(mountpoint))
    assert umounted.returncode == 0, umounted.stderr
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize("case", ["no-mon", "wrong-key", "no-such-path", "no-such-subvolume"])
def test_impossible_mounts_fail_fast_with_one_line(case: str, client_env: ClientEnv,
                                                   tmp_path: Path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    source = f"{client_env.fs_name}:{client_env.subvolume_path}"
    options = client_options(client_env, "timeout=5")
    if case == "no-mon":
        conf = tmp_path / "nomon.conf"
        conf.write_text(client_env.conf.read_text().replace(
            "mon_host =", "mon_host = [v2:127.0.0.1:1,v1:127.0.0.1:2] #"))
        options = options.replace(str(client_env.conf), str(conf))
    elif case == "wrong-key":
        keyring = tmp_path / "wrong.keyring"
        keyring.write_text(f"[client.{client_env.client_id}]\n\tkey = "
                           "AQBGxQBlAAAAABAAkq9Bc6vKq1ic2Zrd3Bx6hw==\n")
        keyring.chmod(0o600)
        options = options.replace(str(client_env.keyring), str(keyring))
    elif case == "no-such-path":
        source += "/not/there"
    else:
        source = f"{client_env.fs_name}:csi/no-such-subvolume"
        options = (f"conf={client_env.conf},id=admin,keyring={client_env.admin_keyring},"
                   "timeout=5")

    started = time.monotonic()
    result = cephmount_cli("mount", "-o", options, source, str(mountpoint))

    assert time.monotonic() - started < 30
    assert_clean_failure(result, mountpoint, "cannot")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp dirs are 0700)."""
    path = short_tmpdir("cm-msg.")
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def cephmount_cli_as_nobody(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run by an unprivileged user, with a state dir of its own."""
    state.mkdir()
    os.chown(state, NOBODY.pw_uid, NOBODY.pw_gid)
    kwargs = as_user(NOBODY.pw_uid, NOBODY.pw_gid)
    kwargs["env"] = {**kwargs["env"], "XDG_RUNTIME_DIR": str(state)}  # type: ignore[dict-item]
    return subprocess.run([sys.executable, "-m", "cephmount.cli", *args], capture_output=True,
                          text=True, timeout=90, check=False, **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize("case, needle", [
    ("conf-unreadable", "read conf {conf}: Permission denied"),
    ("conf-is-a-directory", "read conf {dir}: Is a directory"),
    ("keyring-unreadable", "read keyring {keyring}: Permission denied"),
    ("keyring-of-another-client", "holds no key for client.{id}"),
    ("keyring-missing", "no keyring for client.{id} at {dir}/absent.keyring"),
    ("no-such-filesystem", "no filesystem 'nofs' in the cluster"),
    ("no-such-path", "{path}/not/there does not exist in the filesystem '{fs}'"),
    ("subvolume-conf-missing", "read conf {dir}/absent.conf: No such file or directory"),
])
def test_failures_say_what_is_actually_wrong(case: str, needle: str, client_env: ClientEnv,
                                             open_dir: Path) -> None:
    """Each failure names the file or name at fault, not a wrong key or a missing path."""
    mountpoint = open_dir / "m"
    mountpoint.mkdir()
    conf, keyring, client_id = client_env.conf, client_env.keyring, client_env.client_id
    source = f"{client_env.fs_name}:{client_env.subvolume_path}"
    as_nobody = case in {"conf-unreadable", "keyring-unreadable"}
    if case == "keyring-unreadable":  # a copy of the conf nobody may read, the keyring not
        conf = open_dir / "ceph.conf"
        shutil.copy(client_env.conf, conf)
        conf.chmod(0o644)
        keyring = open_dir / "kube.keyring"
        shutil.copy(client_env.keyring, keyring)
        keyring.chmod(0o600)
    elif case == "conf-is-a-directory":
        conf = open_dir
    elif case == "keyring-of-another-client":
        keyring = open_dir / "other.keyring"
        keyring.write_text("[client.other]\n\tkey = AQBGxQBlAAAAABAAkq9Bc6vKq1ic2Zrd3Bx6hw==\n")
    elif case == "keyring-missing":
        keyring = open_dir / "absent.keyring"
    elif case == "no-such-filesystem":
        source = f"nofs:{client_env.subvolume_path}"
    elif case == "no-such-path":
        source += "/not/there"
    elif case == "subvolume-conf-missing":
        conf, client_id = open_dir / "absent.conf", "admin"
        keyring = client_env.admin_keyring
        source = f"{client_env.fs_name}:{client_env.group}/{client_env.subvolume}"
    options = f"conf={conf},id={client_id},keyring={keyring},timeout=5"
    args = ("mount", "-o", options, source, str(mountpoint))

    result = (cephmount_cli_as_nobody(open_dir / "state", *args) if as_nobody
              else cephmount_cli(*args))

    assert_clean_failure(result, mountpoint, needle.format(
        conf=conf, keyring=keyring, id=client_id, dir=open_dir, fs=client_env.fs_name,
        path=client_env.subvolume_path))


def test_missing_and_busy_mountpoints_are_refused(client_env: ClientEnv,
                                                  cephmount_mount: Path,
                                                  tmp_path: Path) -> None:
    source = f"{client_env.fs_name}:{client_env.subvolume_path}"
    missing = cephmount_cli("mount", "-o", client_options(client_env), source,
                            str(tmp_path / "absent"))
    busy = cephmount_cli("mount", "-o", client_options(client_env), source,
                         str(cephmount_mount))

    assert_clean_failure(missing, tmp_path / "absent", "does not exist")
    assert busy.returncode != 0 and "busy" in busy.stderr and "Traceback" not in busy.stderr


def test_secret_on_the_command_line_is_refused(client_env: ClientEnv, tmp_path: Path) -> None:
    result = cephmount_cli("mount", "-o", "secret=AQBGxQBl", f"{client_env.fs_name}:/",
                           str(tmp_path))
    assert_clean_failure(result, tmp_path, "keyring")


def test_subvolume_source_resolved_through_the_mgr(client_env: ClientEnv,
                                                   tmp_path: Path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    options = f"conf={client_env.conf},id=admin,keyring={client_env.admin_keyring}"
    result = cephmount_cli("mount", "-o", options,
                           f"{client_env.fs_name}:{client_env.group}/{client_env.subvolume}",
                           str(mountpoint))
    try:
        assert result.returncode == 0, result.stderr
        assert os.statvfs(mountpoint).f_blocks > 0
    finally:
        unmount(mountpoint)


def test_read_only_mount_refuses_writes(client_env: ClientEnv, cephmount_mount: Path,
                                        tmp_path: Path) -> None:
    (cephmount_mount / "ro-check").write_text("present")
    mountpoint = tmp_path / "ro"
    mountpoint.mkdir()
    mount_cephmount(client_env, mountpoint, "ro")
    try:
        assert (mountpoint / "ro-check").read_text() == "present"
        with pytest.raises(OSError) as refused:
            (mountpoint / "new").write_text("x")
        assert refused.value.errno == errno.EROFS
        assert mountinfo.mounted_at(mountpoint)[-1].read_only
    finally:
        unmount(mountpoint)
        (cephmount_mount / "ro-check").unlink()


@pytest.mark.parametrize("how", ["umount", "sigterm"])
def test_closed_data_outlives_the_mount(how: str, client_env: ClientEnv, tmp_path: Path) -> None:
    """close() waits for no writeback: unmounting, however it comes, writes it back."""
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    mount_cephmount(client_env, mountpoint)
    name = f"unsynced-{how}-{os.getpid()}"
    payload = os.urandom(24 << 20)
    try:
        (mountpoint / name).write_bytes(payload)  # closed, never fsynced
        if how == "umount":
            assert cephmount_cli("umount", str(mountpoint)).returncode == 0
        else:
            listing = json.loads(cephmount_cli("list", "--json").stdout)
            os.kill(next(m["pid"] for m in listing if m["mountpoint"] == str(mountpoint)),
                    signal.SIGTERM)
        deadline = time.monotonic() + 60
        while is_mounted(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_mounted(mountpoint)
        fs = cephfs.LibCephFS(conffile=str(client_env.conf), auth_id=client_env.client_id,
                              conf={"keyring": str(client_env.keyring)})
        fs.mount(filesystem_name=client_env.fs_name.encode(),
                 mount_root=client_env.subvolume_path.encode())
        try:
            fd = fs.open(f"/{name}".encode(), os.O_RDONLY)
            assert fs.read(fd, 0, len(payload) + 1) == payload
            fs.close(fd)
            fs.unlink(f"/{name}".encode())
        finally:
            fs.unmount()
            fs.shutdown()
    finally:
        unmount(mountpoint)


def test_a_mount_given_up_on_leaves_nothing(client_env: ClientEnv, tmp_path: Path) -> None:
    """The parent's timeout ends the mount process: failure means nothing is mounted."""
    from cephmount.fs import mount as fs_mount

    mountpoint = tmp_path / "late"
    mountpoint.mkdir()
    conf = tmp_path / "silent-mon.conf"  # a monitor that never answers: the child waits
    conf.write_text(client_env.conf.read_text().replace(
        "mon_host =", "mon_host = [v2:127.0.0.1:1,v1:127.0.0.1:2] #"))
    options = client_options(client_env, "timeout=60").replace(str(client_env.conf), str(conf))
    argv = [f"{client_env.fs_name}:{client_env.subvolume_path}", str(mountpoint), "-o", options]
    before = set(Path("/proc").glob("[0-9]*"))
    with pytest.raises(fs_mount.MountError) as gave_up:
        fs_mount.run_detached(argv, str(mountpoint), timeout=2)
    assert "timeout" in str(gave_up.value)
    assert not is_mounted(mountpoint)
    left = [p for p in set(Path("/proc").glob("[0-9]*")) - before
            if str(mountpoint).encode() in _cmdline(p)]
    assert left == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_state_dir_others_own_is_refused(open_dir: Path) -> None:
    runtime = open_dir / "runtime"
    (runtime / "cephmount").mkdir(parents=True)
    runtime.chmod(0o755)
    (runtime / "cephmount").chmod(0o777)  # someone else's, open to all
    result = subprocess.run(
        [sys.executable, "-m", "cephmount.cli", "list"], capture_output=True, text=True,
        timeout=60, check=False, user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[],
        env={"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"cephmount: state dir {runtime / 'cephmount'} belongs to uid 0, not to us")


def test_records_of_a_killed_mount_are_removed(client_env: ClientEnv, tmp_path: Path) -> None:
    from cephmount.fs import mount as fs_mount

    mountpoint = tmp_path / "killed"
    mountpoint.mkdir()
    mount_cephmount(client_env, mountpoint)
    (record,) = [r for r in fs_mount.list_mounts() if r.mountpoint == str(mountpoint)]
    json_path = fs_mount._record_path(str(mountpoint))
    asok_path = fs_mount._record_path(str(mountpoint), ".asok")
    assert json_path.exists() and asok_path.exists()
    os.kill(record.pid, signal.SIGKILL)

    def states() -> list[str]:
        listed = json.loads(cephmount_cli("list", "--json").stdout)
        return [row["state"] for row in listed if row["mountpoint"] == str(mountpoint)]

    deadline = time.monotonic() + 20
    while states() != ["dead"]:
        assert time.monotonic() < deadline, states()
        time.sleep(0.2)
    subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=True, timeout=30)
    listing = cephmount_cli("list")
    assert listing.returncode == 0 and str(mountpoint) not in listing.stdout
    assert not json_path.exists() and not asok_path.exists()


def test_a_second_sigterm_does_not_cut_the_flush(client_env: ClientEnv, tmp_path: Path) -> None:
    """SIGTERM: requests in flight finish, data is flushed, nothing stays mounted; more
    SIGTERMs meanwhile (an impatient init system) change nothing."""
    mountpoint = tmp_path / "term"
    mountpoint.mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "cephmount.cli", "mount", "-f", "-o", client_options(client_env),
         f"{client_env.fs_name}:{client_env.subvolume_path}", str(mountpoint)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not is_mounted(mountpoint):
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with open(mountpoint / "big", "wb") as big:
            big.write(os.urandom(32 << 20))  # buffered: the stop has it to flush
        assert server.stdout is not None
        out = server.stdout.fileno()
        os.set_blocking(out, False)
        output = b""
        server.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 120
        while b"stopped:" not in output and server.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)  # more, through the stop and the flush: none may cut them
            with contextlib.suppress(ProcessLookupError):
                server.send_signal(signal.SIGTERM)
            with contextlib.suppress(BlockingIOError):
                output += os.read(out, 1 << 16)
        server.wait(timeout=30)
        os.set_blocking(out, True)
        output += server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
        unmount(mountpoint)
    assert server.returncode == 0, output
    assert b"finishing the requests in flight" in output
    assert not is_mounted(mountpoint)


def test_mounting_again_resets_a_killed_mounts_session(client_env: ClientEnv,
                                                       tmp_path: Path) -> None:
    """Other clients of a killed mount's files wait for no session timeout (about a minute)."""
    from cephmount.fs import mount as fs_mount
    from tests.conftest import seconds_to_write_as_another_client

    mountpoint = tmp_path / "again"
    mountpoint.mkdir()
    mount_cephmount(client_env, mountpoint)
    (record,) = [r for r in fs_mount.list_mounts() if r.mountpoint == str(mountpoint)]
    held = open(mountpoint / "held-by-the-dead", "wb", buffering=0)  # noqa: SIM115
    held.write(b"x" * 4096)
    os.kill(record.pid, signal.SIGKILL)
    with pytest.raises(ConnectionAbortedError):  # a standalone mount dies with its process
        held.close()
    subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=True, timeout=30)
    try:
        mount_cephmount(client_env, mountpoint)
        assert seconds_to_write_as_another_client(client_env, b"held-by-the-dead") < 20
    finally:
        unmount(mountpoint)


def test_stats_show_the_kernels_requests_and_their_sizes(cephmount_mount: Path,
                                                          workdir: Path) -> None:
    def op_stats() -> dict:
        return json.loads(os.getxattr(cephmount_mount, "cephmount.stats"))["op_stats"]

    # O_DIRECT, from a mapping of its own: the kernel pins the writer's pages for a
    # direct write, where a write through the page cache is cut short wherever its
    # copy from the writer meets a page being moved (memory compaction under load).
    data = mmap.mmap(-1, 1 << 20)
    data.write(b"x" * (1 << 20))
    before = op_stats()
    fd = os.open(workdir / "sized", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        for _ in range(3):
            os.write(fd, data)
        os.write(fd, b"y" * 1000)
    finally:
        os.close(fd)
    after = op_stats()

    sizes = after["request_sizes"]["write"]
    earlier = before.get("request_sizes", {}).get("write", {})
    grown = {size: count - earlier.get(size, 0) for size, count in sizes.items()}
    assert grown.get("1048576", 0) >= 3
    assert grown.get("1024", 0) >= 1
    assert after["bytes_written"] - before["bytes_written"] == 3 * (1 << 20) + 1000
    assert after["ops"]["write"]["count"] - before["ops"].get("write", {}).get("count", 0) \
        == sum(grown.values())


def test_cold_reads_come_in_whole_mebibytes(cephmount_mount: Path, ceph_fuse_mount: Path,
                                            reference_workdir: Path) -> None:
    """The kernel reads ahead 1 MiB on our mounts, not the 128 KiB INIT left it."""
    (reference_workdir / "cold").write_bytes(os.urandom(8 << 20))  # another client wrote it

    def read_sizes() -> dict[str, int]:
        stats = json.loads(os.getxattr(cephmount_mount, "cephmount.stats"))["op_stats"]
        sizes: dict[str, int] = stats.get("request_sizes", {}).get("read", {})
        return sizes

    before = read_sizes()
    ours = cephmount_mount / reference_workdir.name / "cold"
    assert ours.read_bytes() == (reference_workdir / "cold").read_bytes()
    grown = {size: count - before.get(size, 0) for size, count in read_sizes().items()}
    assert grown.get("1048576", 0) >= 4, grown
