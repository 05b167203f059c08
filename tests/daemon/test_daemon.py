"""The node daemon on the real cluster: volumes, targets, restarts, the control socket."""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cephmount.daemon import client as daemon_client
from cephmount.devcluster import ClientEnv
from cephmount.host import mountinfo
from tests.conftest import (
    evict_client_of,
    mounted_client,
    seconds_to_write_as_another_client,
)
from tests.daemon.conftest import DaemonProcess, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.fuse]


def fuse_mounts_of(daemon: DaemonProcess) -> list[str]:
    """The daemon's own FUSE mounts (staging), not its targets."""
    staging = str(daemon.state_dir / "mounts")
    return [entry.mountpoint for entry in mountinfo.mounts()
            if entry.mountpoint.startswith(staging) and entry.fs_type == "fuse.cephmount"]


def make_dirs(env: ClientEnv, names: list[str]) -> None:
    """Directories in the subvolume, made by an outside client."""
    from cephmount.ceph.structs import ROOT

    with mounted_client(env) as client:
        root = client.root()
        for name in names:
            try:
                inode, _ = client.mkdir(root, name.encode(), 0o755, ROOT)
                client.put(inode)
            except OSError:
                pass  # made by an earlier run on this cluster
        client.put(root)


def test_ten_volumes_twenty_targets(daemon: DaemonProcess, target_dir: Path,
                                    client_env: ClientEnv) -> None:
    names = [f"vol{n}" for n in range(10)]
    make_dirs(client_env, names)
    for name in names:
        for side in "ab":
            (target_dir / f"{name}-{side}").mkdir()
            daemon.mount(target_dir / f"{name}-{side}", f"{client_env.subvolume_path}/{name}")
        (target_dir / f"{name}-a" / "marker").write_text(name)
        assert (target_dir / f"{name}-b" / "marker").read_text() == name
    listed = daemon.mounts()
    assert len(listed) == 10
    assert len(fuse_mounts_of(daemon)) == 10
    assert sorted(len(info.targets) for info in listed) == [2] * 10
    assert {info.source.rsplit("/", 1)[1] for info in listed} == set(names)
    status = daemon.status()
    assert status.daemon is not None and status.daemon.pid == daemon.pid
    for info in status.mounts or []:
        assert info.state == "serving" and info.worker_pid > 0
        assert info.stats is not None and info.stats["ops"]
    for name in names:
        daemon.call(daemon_client.Unmount(str(target_dir / f"{name}-a")))
        assert (target_dir / f"{name}-b" / "marker").read_text() == name
        daemon.call(daemon_client.Unmount(str(target_dir / f"{name}-b")))
        assert not mountinfo.is_mountpoint(target_dir / f"{name}-b")
    assert fuse_mounts_of(daemon) == []
    assert daemon.mounts() == []


def test_concurrent_mounts_of_one_volume_share_one_fuse_mount(
        daemon: DaemonProcess, target_dir: Path) -> None:
    targets = [target_dir / "one", target_dir / "two"]
    for target in targets:
        target.mkdir()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        infos = list(pool.map(daemon.mount, targets))
    assert infos[0].mount_id == infos[1].mount_id
    assert len(fuse_mounts_of(daemon)) == 1
    (listed,) = daemon.mounts()
    assert sorted(t.path for t in listed.targets) == sorted(map(str, targets))


def test_read_only_target_of_a_read_write_volume(daemon: DaemonProcess,
                                                 target_dir: Path) -> None:
    writable, readonly = target_dir / "rw", target_dir / "ro"
    writable.mkdir()
    readonly.mkdir()
    daemon.mount(writable)
    daemon.mount(readonly, read_only=True)
    (writable / "shared.txt").write_text("from rw")
    assert (readonly / "shared.txt").read_text() == "from rw"
    with pytest.raises(OSError) as refused:
        (readonly / "other.txt").write_text("no")
    assert refused.value.errno == 30  # EROFS
    assert mountinfo.mounted_at(readonly)[-1].read_only
    assert not mountinfo.mounted_at(writable)[-1].read_only


def test_mounting_a_target_again_is_idempotent(daemon: DaemonProcess,
                                               target_dir: Path) -> None:
    target = target_dir / "again"
    target.mkdir()
    first = daemon.mount(target)
    second = daemon.mount(target)
    assert first.mount_id == second.mount_id
    assert len(mountinfo.mounted_at(target)) == 1


def test_busy_target_is_reported_not_forced(daemon: DaemonProcess, target_dir: Path) -> None:
    target = target_dir / "busy"
    target.mkdir()
    daemon.mount(target)
    holder = subprocess.Popen(["sleep", "60"], cwd=target)
    try:
        with pytest.raises(daemon_client.DaemonError) as busy:
            daemon.call(daemon_client.Unmount(str(target)))
        assert busy.value.code == "busy"
        assert mountinfo.is_mountpoint(target)
        daemon.call(daemon_client.Unmount(str(target), force=True))
        assert not mountinfo.is_mountpoint(target)
    finally:
        holder.kill()
        holder.wait()
    wait_for(lambda: not fuse_mounts_of(daemon), what="the staging mount to go")


def test_bad_mounts_leave_nothing(daemon: DaemonProcess, target_dir: Path,
                                  client_env: ClientEnv) -> None:
    target = target_dir / "bad"
    target.mkdir()
    with pytest.raises(daemon_client.DaemonError) as missing:
        daemon.mount(target, f"{client_env.subvolume_path}/no-such-dir", timeout=10)
    assert missing.value.code == "mount-failed"
    assert "does not exist" in str(missing.value)
    with pytest.raises(daemon_client.DaemonError) as no_target:
        daemon.mount(target_dir / "nowhere")
    assert no_target.value.code == "no-target"
    assert not mountinfo.is_mountpoint(target)
    assert fuse_mounts_of(daemon) == []
    assert daemon.mounts() == []
    assert list((daemon.state_dir / "mounts").iterdir()) == []
    daemon.expected_errors.append("does not exist")


WRITER = r"""
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
block = lambda i: (b"%08d" % i) * 512
deadline = time.monotonic() + seconds
i = 0
with open(path, "wb", buffering=0) as f:
    while time.monotonic() < deadline:
        f.write(block(i)); os.fsync(f.fileno()); i += 1
        time.sleep(0.002)
data = open(path, "rb").read()
bad = [n for n in range(i) if data[n * 4096:(n + 1) * 4096] != block(n)]
print(i, len(bad), len(data))
sys.exit(1 if bad or len(data) != i * 4096 else 0)
"""


def test_daemon_sigkill_leaves_mounts_serving(daemon: DaemonProcess, target_dir: Path) -> None:
    target = target_dir / "work"
    target.mkdir()
    info = daemon.mount(target)
    workload = subprocess.Popen([sys.executable, "-c", WRITER, str(target / "data"), "6"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    daemon.stop(signal.SIGKILL)
    out, err = workload.communicate(timeout=60)
    assert workload.returncode == 0, (out, err)
    assert int(out.split()[0]) > 10
    daemon.start()
    (listed,) = daemon.mounts()
    assert listed.mount_id == info.mount_id
    assert listed.worker_pid == info.worker_pid
    assert listed.state == "serving" and listed.takeovers == 1
    assert [t.path for t in listed.targets] == [str(target)]
    daemon.call(daemon_client.Unmount(str(target)))
    assert fuse_mounts_of(daemon) == []
    assert not os.path.exists(f"/proc/{info.worker_pid}") or _is_zombie(info.worker_pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_daemon_sigterm_leaves_mounts_serving(daemon: DaemonProcess, target_dir: Path) -> None:
    target = target_dir / "stay"
    target.mkdir()
    daemon.mount(target)
    daemon.stop(signal.SIGTERM)
    assert not os.path.exists(daemon.socket)
    (target / "after-sigterm").write_text("still here")
    assert (target / "after-sigterm").read_text() == "still here"
    daemon.start()
    assert [info.state for info in daemon.mounts()] == ["serving"]


READER_WRITER = r"""
import os, sys, time
target, seconds = sys.argv[1], float(sys.argv[2])
block = lambda i: (b"%08d" % i) * 512
synced, errors, gaps = 0, [], []
with open(os.path.join(target, "fixed"), "rb") as fixed:
    expected = fixed.read()
    writer = open(os.path.join(target, "log"), "wb", buffering=0)
    reader = open(os.path.join(target, "fixed"), "rb")
    deadline, last = time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < deadline:
        try:
            writer.seek(synced * 4096)
            writer.write(block(synced))
            os.fsync(writer.fileno())
            synced += 1
            reader.seek(0)
            assert reader.read() == expected
        except OSError as exc:
            errors.append(exc.errno)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    writer.close()
data = open(os.path.join(target, "log"), "rb").read()
intact = all(data[n * 4096:(n + 1) * 4096] == block(n) for n in range(synced))
print(synced, max(gaps), intact, errors)
"""


def test_worker_sigkill_is_invisible_to_open_files(daemon: DaemonProcess,
                                                   target_dir: Path) -> None:
    target = target_dir / "survive"
    target.mkdir()
    info = daemon.mount(target)
    fixed = os.urandom(1 << 20)
    (target / "fixed").write_bytes(fixed)
    with open(target / "fixed", "rb") as synced:
        os.fsync(synced.fileno())
    workload = subprocess.Popen([sys.executable, "-c", READER_WRITER, str(target), "8"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    os.kill(info.worker_pid, signal.SIGKILL)
    out, err = workload.communicate(timeout=90)
    assert workload.returncode == 0, err
    synced, max_gap, intact, errors = out.strip().split(maxsplit=3)
    assert intact == "True"
    assert float(max_gap) < 5.0
    # Every write was fsynced before the next one: a kill between a write and its
    # fsync is reported once as EIO (errno 5), never silently lost.
    assert errors in ("[]", "[5]")
    (listed,) = daemon.mounts()
    assert listed.restarts == 1 and listed.worker_pid != info.worker_pid
    assert (target / "fixed").read_bytes() == fixed
    daemon.expected_errors.append("replacement")


@contextlib.contextmanager
def written_across_a_new_worker(daemon: DaemonProcess, target: Path, data: bytes,
                                signum: int, existing: bool = False) -> Iterator[BinaryIO]:
    """A file of a new mount at `target`, made by the open (CREATE) unless `existing`,
    written to, then kept open while its worker ends by `signum` and a successor takes
    over. It is named after the target: every target of the volume shows one root."""
    target.mkdir()
    info = daemon.mount(target)
    path = target / target.name
    path.unlink(missing_ok=True)
    if existing:
        path.write_bytes(b"")
    with open(path, "wb", buffering=0) as file:
        file.write(data)
        os.kill(info.worker_pid, signum)
        wait_for(lambda: daemon.mounts()[0].restarts == 1, what="a successor worker")
        yield file


@pytest.mark.parametrize("existing", [False, True], ids=["created", "opened"])
def test_unsynced_writes_of_a_dead_worker_are_reported(daemon: DaemonProcess,
                                                       target_dir: Path, existing: bool) -> None:
    """Whether the first write was answered in C (a created file's) or in Python."""
    with written_across_a_new_worker(daemon, target_dir / "unsynced",
                                     b"written, never synced", signal.SIGKILL,
                                     existing) as file:
        with pytest.raises(OSError) as reported:
            os.fsync(file.fileno())
        assert reported.value.errno == 5
        file.write(b" and more")
        os.fsync(file.fileno())


def test_a_close_reports_the_writes_a_dead_worker_lost(daemon: DaemonProcess,
                                                       target_dir: Path) -> None:
    """Written, never synced, then the worker died; the successor opened the handle
    again for a write: the close (answered in C for other handles) says EIO."""
    with written_across_a_new_worker(daemon, target_dir / "closed",
                                     b"written, never synced", signal.SIGKILL) as file:
        file.write(b" and more")
        with pytest.raises(OSError) as reported:
            file.close()
        assert reported.value.errno == errno.EIO
    daemon.expected_errors.append("replacement")


def test_a_new_file_a_dead_worker_never_wrote_reports_nothing(daemon: DaemonProcess,
                                                              target_dir: Path) -> None:
    """A created handle is marked unsynced by its first write (answered in C), not by
    its creation: a successor has nothing lost to report of a file never written."""
    target = target_dir / "unwritten"
    with written_across_a_new_worker(daemon, target, b"", signal.SIGKILL) as file:
        file.write(b"written by the successor")
        os.fsync(file.fileno())
    assert (target / target.name).read_bytes() == b"written by the successor"
    daemon.expected_errors.append("replacement")


def test_writes_after_an_fsync_that_a_dead_worker_lost_are_reported(
        daemon: DaemonProcess, target_dir: Path) -> None:
    """The first write after an fsync goes through Python again, which marks the handle
    unsynced: the writes after it are answered in C (native handlers) and say nothing."""
    target = target_dir / "resynced"
    target.mkdir()
    info = daemon.mount(target)
    with open(target / "file", "wb", buffering=0) as file:
        for data in (b"a", b"b", b"c"):  # the last answered in C (WRITES_BEFORE_NATIVE)
            file.write(data * 4096)
        os.fsync(file.fileno())
        for data in (b"d", b"e", b"f"):
            file.write(data * 4096)
        os.kill(info.worker_pid, signal.SIGKILL)
        wait_for(lambda: daemon.mounts()[0].restarts == 1, what="a successor worker")
        with pytest.raises(OSError) as reported:
            os.fsync(file.fileno())
        assert reported.value.errno == 5
    daemon.expected_errors.append("replacement")


def test_replaced_worker_resets_the_dead_session(daemon: DaemonProcess, target_dir: Path,
                                                 client_env: ClientEnv) -> None:
    """Another client waits for no timeout of the dead worker's session (about a minute)."""
    target = target_dir / "caps"
    target.mkdir()
    info = daemon.mount(target)
    held = open(target / "held", "wb", buffering=0)  # noqa: SIM115
    held.write(b"x" * 4096)
    os.kill(info.worker_pid, signal.SIGKILL)
    wait_for(lambda: daemon.mounts()[0].restarts == 1, what="a replacement worker")
    assert seconds_to_write_as_another_client(client_env, b"held") < 20
    with pytest.raises(OSError) as reported:  # its write died unsynced with the worker
        held.close()
    assert reported.value.errno == 5


def test_socket_is_roots_alone(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
    os.chmod(daemon.socket, 0o666)  # even when opened up, the peer's uid is checked
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(b'{\"op\":\"list\"}\\n')\n"
        "s.shutdown(socket.SHUT_WR)\n"
        "print(s.recv(4096).decode())\n")
    result = subprocess.run([sys.executable, "-c", probe, daemon.socket],
                            capture_output=True, text=True, timeout=30, user=65534,
                            group=65534, extra_groups=[], check=False)
    assert result.returncode == 0, result.stderr
    assert '"code":"forbidden"' in result.stdout


def test_bad_requests_change_nothing_and_others_are_served(daemon: DaemonProcess,
                                                           target_dir: Path) -> None:
    target = target_dir / "kept"
    target.mkdir()
    daemon.mount(target)
    before = daemon.mounts()
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(daemon.socket)  # a client that never sends: holds up no one
    try:
        for payload in (b"not json\n", b'{"op":"mount"}\n', b'{"op":"erase"}\n',
                        b" " * (70 << 10) + b"\n", b'{"op":"unmount","target":"/x/../y"}\n',
                        b"\xff\xfe\n", b"[]\n"):
            reply = raw_call(daemon.socket, payload)
            assert reply.ok is False and reply.error
        assert daemon.mounts() == before
        assert (target / ".").exists()
    finally:
        silent.close()


def raw_call(path: str, payload: bytes) -> daemon_client.Reply:
    import msgspec

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except BrokenPipeError:
            pass  # the daemon stopped reading an oversized request and answered
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return msgspec.json.decode(data, type=daemon_client.Reply)


def test_metrics_parse_and_move_with_a_workload(daemon: DaemonProcess,
                                                target_dir: Path) -> None:
    target = target_dir / "metered"
    target.mkdir()
    info = daemon.mount(target)

    def sample(name: str, op: str | None = None) -> float:
        text = urllib.request.urlopen(daemon.metrics_url(), timeout=10).read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and s.labels.get("mount") == info.mount_id and (
                        op is None or s.labels.get("op") == op):
                    total += s.value
        return total

    assert sample("cephmount_daemon_up") == 0  # not per mount: no mount label
    assert sample("cephmount_mount_up") == 1
    written_before = sample("cephmount_written_bytes_total")
    writes_before = sample("cephmount_ops_total", "write")
    (target / "metered.bin").write_bytes(b"m" * (1 << 20))
    (target / "metered.bin").read_bytes()
    assert sample("cephmount_written_bytes_total") >= written_before + (1 << 20)
    assert sample("cephmount_ops_total", "write") > writes_before
    assert sample("cephmount_op_latency_seconds_count", "write") > 0


def test_a_worker_that_died_with_no_daemon_is_mounted_again(daemon: DaemonProcess,
                                                           target_dir: Path) -> None:
    """The fallback: nobody held the connection, so it is gone; mount anew, bind again."""
    targets = [target_dir / "first", target_dir / "second"]
    for target in targets:
        target.mkdir()
        info = daemon.mount(target, read_only=target.name == "second")
    with open(targets[0] / "kept", "w") as kept:
        kept.write("durable")
        kept.flush()
        os.fsync(kept.fileno())
    daemon.stop(signal.SIGKILL)
    os.kill(info.worker_pid, signal.SIGKILL)
    wait_for(lambda: _is_zombie(info.worker_pid), what="the worker to die")
    with pytest.raises(OSError):  # the connection died with its last holder
        os.listdir(targets[0])
    daemon.start()
    (listed,) = daemon.mounts()
    assert listed.state == "serving" and listed.worker_pid != info.worker_pid
    assert (targets[0] / "kept").read_text() == "durable"
    assert (targets[1] / "kept").read_text() == "durable"
    assert mountinfo.mounted_at(targets[1])[-1].read_only
    assert len(mountinfo.mounted_at(targets[0])) == 1  # the dead mount is gone, not stacked
    assert len(fuse_mounts_of(daemon)) == 1


@pytest.mark.parametrize("budget_mib", [600])
def test_memory_budget_is_shared_among_the_workers(daemon: DaemonProcess, target_dir: Path,
                                                   client_env: ClientEnv,
                                                   budget_mib: int) -> None:
    from cephmount.daemon.budget import WORKER_BASE

    daemon.stop()
    daemon.start("--memory-budget", f"{budget_mib}M")
    make_dirs(client_env, ["budget0", "budget1"])
    (target_dir / "b0").mkdir()
    (target_dir / "b1").mkdir()
    alone = daemon.mount(target_dir / "b0", f"{client_env.subvolume_path}/budget0")
    assert alone.cache_share == 256 << 20  # what it asked for: the budget allows it
    daemon.mount(target_dir / "b1", f"{client_env.subvolume_path}/budget1")
    each = ((budget_mib << 20) - 2 * WORKER_BASE) // 2
    shares = {info.mount_id: info for info in daemon.status().mounts or []}
    assert {info.cache_share for info in shares.values()} == {each}
    for info in shares.values():
        assert info.stats is not None and info.stats["cache"]["cache_limit"] == each
    daemon.call(daemon_client.Unmount(str(target_dir / "b1")))
    (left,) = daemon.status().mounts or []
    assert left.cache_share == 256 << 20
    assert left.stats is not None and left.stats["cache"]["cache_limit"] == 256 << 20
    with pytest.raises(daemon_client.DaemonError) as refused:
        daemon.stop()
        daemon.start("--memory-budget", "200M")
        daemon.mount(target_dir / "b1", f"{client_env.subvolume_path}/budget1")
    assert refused.value.code == "no-memory"


def test_a_second_daemon_on_the_socket_refuses_to_start(daemon: DaemonProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cephmount.cli", "daemon", "--state-dir",
         str(daemon.root / "other-state"), "--socket", daemon.socket, "--metrics-address", ""],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"cephmount: another daemon serves {daemon.socket}"
    assert daemon_client.answers(daemon.socket)


def test_random_requests_are_answered_and_change_nothing(daemon: DaemonProcess,
                                                         target_dir: Path) -> None:
    """Property: whatever a client sends, one reply comes back and no mount changes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    target = target_dir / "steady"
    target.mkdir()
    daemon.mount(target)
    before = daemon.mounts()
    values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=10), inner, max_size=3),
                          max_leaves=10)
    requests = st.fixed_dictionaries(
        {"op": st.sampled_from(["mount", "unmount", "list", "status", "nuke", ""])},
        optional={"volume": values, "target": values, "version": values, "force": values,
                  "key": values, "read_only": values})
    payloads = st.one_of(requests.map(lambda r: msgspec_json(r) + b"\n"),
                         st.binary(max_size=200))

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(payloads)
    def check(payload: bytes) -> None:
        reply = raw_call(daemon.socket, payload)
        assert reply.ok in (True, False)
        if not reply.ok:
            assert reply.error and reply.code

    check()
    assert daemon.mounts() == before


def msgspec_json(value: object) -> bytes:
    import msgspec

    return msgspec.json.encode(value)


def mount_to_evict(daemon: DaemonProcess,
                   target: Path) -> tuple[Path, daemon_client.MountInfo]:
    """A mount at `target` whose worker's client the test evicts (an expected ERROR line)."""
    daemon.expected_errors.append("the Ceph session was lost")
    target.mkdir()
    return target, daemon.mount(target)


def test_an_evicted_client_is_replaced_by_a_new_session(daemon: DaemonProcess,
                                                        target_dir: Path,
                                                        client_env: ClientEnv) -> None:
    """As the kernel client's recover_session=clean: no person needed, nothing stale."""
    target, info = mount_to_evict(daemon, target_dir / "evicted")
    (target / "before").write_text("written before")
    with open(target / "before") as still_open:
        evict_client_of(client_env, info.worker_pid)
        started = time.monotonic()
        (target / "after").write_text("written after")  # waits for the new session
        assert time.monotonic() - started < 10
        assert {"after", "before"} <= set(os.listdir(target))
        assert still_open.read() == "written before"
    (listed,) = daemon.status().mounts or []
    assert listed.session_losses == 1 and listed.worker_pid != info.worker_pid
    assert "lost its Ceph session" in daemon.log_path.read_text()


def test_writes_an_evicted_worker_held_are_reported_once(daemon: DaemonProcess,
                                                         target_dir: Path,
                                                         client_env: ClientEnv) -> None:
    """libcephfs's fsync of an evicted client says 0 and drops the data: never pass that on."""
    target, info = mount_to_evict(daemon, target_dir / "evicted-writer")
    with open(target / "unsynced", "wb", buffering=0) as file:
        file.write(b"may be lost")
        evict_client_of(client_env, info.worker_pid)
        with pytest.raises(OSError) as lost:
            os.fsync(file.fileno())
        assert lost.value.errno == errno.EIO
        os.pwrite(file.fileno(), b"written again", 0)
        os.fsync(file.fileno())
    assert (target / "unsynced").read_bytes() == b"written again"


def test_a_worker_stopped_by_sigterm_flushes_for_its_successor(daemon: DaemonProcess,
                                                               target_dir: Path) -> None:
    """A clean stop writes everything back: the successor has nothing lost to report."""
    target = target_dir / "handover"
    with written_across_a_new_worker(daemon, target, b"written before the stop",
                                     signal.SIGTERM) as file:
        os.fsync(file.fileno())
    assert (target / target.name).read_bytes() == b"written before the stop"


def test_a_busy_target_leaves_no_volume_behind(daemon: DaemonProcess, target_dir: Path) -> None:
    target = target_dir / "taken"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "other", str(target)], check=True,
                   timeout=30)
    try:
        with pytest.raises(daemon_client.DaemonError) as busy:
            daemon.mount(target)
        assert busy.value.code == "busy"
        assert daemon.mounts() == []
        assert fuse_mounts_of(daemon) == []
        assert mountinfo.mounted_at(target)[-1].fs_type == "tmpfs"
    finally:
        subprocess.run(["umount", str(target)], check=True, timeout=30)
