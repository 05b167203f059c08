"""A throwaway one-node Ceph cluster for development, tests and benchmarks.

Everything lives in one data dir: conf, keyrings, daemon data, logs, pid
files and admin sockets. Daemons listen on 127.0.0.1 only and run in the
foreground of their own session, so their pid is ours to record; `down`
signals only pids from our pid files whose command line names our conf.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cephmount.ceph.admin import AdminClient, CephAdminError
from cephmount.host import mountinfo

FS_NAME = "cephfs"
GROUP = "csi"
SUBVOLUME = "vol1"
CLIENT_ID = "kube"
QUOTA_BYTES = 1 << 30
DEFAULT_PORT = 3300
READY_TIMEOUT = 120.0
# Unix socket paths are limited to 108 bytes; the longest one we make is
# "<dir>/run/ceph-client.admin.<pid>.asok".
MAX_DIR_LENGTH = 70

# (entity, caps) for every key the bootstrap keyring holds.
KEYS: dict[str, list[str]] = {
    "mon.": ["mon", "allow *"],
    "client.admin": ["mon", "allow *", "osd", "allow *", "mds", "allow *", "mgr", "allow *"],
    "mgr.x": ["mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"],
    "osd.0": ["mon", "allow profile osd", "mgr", "allow profile osd", "osd", "allow *"],
    "mds.a": ["mon", "allow profile mds", "mgr", "allow profile mds", "osd", "allow *",
              "mds", "allow"],
}

# (name in pid files, executable, id); started in this order, stopped in reverse.
DAEMONS = [("mon.a", "ceph-mon", "a"), ("osd.0", "ceph-osd", "0"),
           ("mgr.x", "ceph-mgr", "x"), ("mds.a", "ceph-mds", "a")]


class DevClusterError(Exception):
    """The dev cluster could not be brought up, inspected or torn down."""


def default_dir() -> Path:
    """`$CEPHMOUNT_DEV_DIR`, else `$XDG_RUNTIME_DIR/cephmount-dev`, else `./.dev-cluster`."""
    if env := os.environ.get("CEPHMOUNT_DEV_DIR"):
        return Path(env)
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "cephmount-dev"
    return Path.cwd() / ".dev-cluster"


@dataclass(frozen=True)
class ClientEnv:
    """What a client of the dev cluster needs to mount its subvolume."""

    conf: Path
    keyring: Path
    client_id: str
    fs_name: str
    group: str
    subvolume: str
    subvolume_path: str
    admin_keyring: Path

    def as_shell(self) -> str:
        pairs = {
            "CEPH_CONF": self.conf,
            "CEPHMOUNT_CLIENT_ID": self.client_id,
            "CEPHMOUNT_KEYRING": self.keyring,
            "CEPHMOUNT_FS_NAME": self.fs_name,
            "CEPHMOUNT_GROUP": self.group,
            "CEPHMOUNT_SUBVOLUME": self.subvolume,
            "CEPHMOUNT_SUBVOLUME_PATH": self.subvolume_path,
            "CEPHMOUNT_ADMIN_KEYRING": self.admin_keyring,
        }
        return "".join(f"{key}={value}\n" for key, value in pairs.items())


class DevCluster:
    """One throwaway cluster in `data_dir`, its mon on 127.0.0.1:`port` (v2) and `port`+1 (v1)."""

    def __init__(self, data_dir: Path | None = None, port: int = DEFAULT_PORT) -> None:
        self.dir = (data_dir or default_dir()).absolute()
        self.port = port
        self.conf = self.dir / "ceph.conf"

    # -- paths -------------------------------------------------------------------------

    def keyring(self, entity: str) -> Path:
        return self.dir / f"ceph.{entity}.keyring"

    def _pid_file(self, name: str) -> Path:
        return self.dir / "pids" / f"{name}.pid"

    def _env_file(self) -> Path:
        return self.dir / "client-env.json"

    # -- public operations -------------------------------------------------------------

    def up(self, timeout: float = READY_TIMEOUT) -> bool:
        """Bring the cluster up; return False when it was already up and ready."""
        if self.is_ready():
            return False
        if self.dir.exists():
            self.down()
        if len(str(self.dir)) > MAX_DIR_LENGTH:
            raise DevClusterError(
                f"data dir path {self.dir} is longer than {MAX_DIR_LENGTH} characters: "
                "admin socket paths would not fit; pick a shorter --dir")
        self._check_ports_free()
        deadline = time.monotonic() + timeout
        try:
            self._build(deadline)
        except BaseException:
            # Keep the logs for the user; the next `up` tears the rest down.
            self._stop_daemons()
            raise
        return True

    def down(self) -> None:
        """Unmount this cluster's FUSE clients, stop its daemons, remove the data dir."""
        for mountpoint in self._client_mounts():
            _unmount(mountpoint)
        self._stop_daemons()
        shutil.rmtree(self.dir, ignore_errors=True)

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """Stop one daemon (SIGSTOP) for the block, as a hung host would; then let it go on."""
        pid = self._running_pid(name)
        _signal(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            _signal(pid, signal.SIGCONT)

    def restart_daemon(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Kill one daemon (`mds.a`, `osd.0`, ...) as a crash would and start it again.

        Returns once the cluster is ready again: HEALTH_OK, every PG active+clean and
        the MDS active, so whoever comes next finds the cluster as it was.
        """
        pid = self._running_pid(name)
        deadline = time.monotonic() + timeout
        with self._admin(timeout=15) as admin:
            before = _incarnation(admin, name)
            _signal(pid, signal.SIGKILL)
            _wait_gone(pid, str(self.conf))
            self._start(name)
            self._wait(deadline, f"{name} to come back",
                       lambda: _incarnation(admin, name) not in (None, before))
            self._wait(deadline, "an active MDS", lambda: _mds_active(admin))
            self._wait(deadline, "HEALTH_OK", lambda: _health_ok(admin))

    def running_daemons(self) -> dict[str, int]:
        """Daemons whose pid file names a live process started with our conf."""
        alive = {}
        for name, _, _ in DAEMONS:
            pid = self._owned_pid(name)
            if pid is not None:
                alive[name] = pid
        return alive

    def is_ready(self) -> bool:
        """All daemons alive, client env written, HEALTH_OK and every PG active+clean."""
        if len(self.running_daemons()) != len(DAEMONS) or not self._env_file().exists():
            return False
        try:
            with self._admin(timeout=5) as admin:
                return _health_ok(admin)
        except CephAdminError:
            return False

    def status(self) -> dict[str, object]:
        daemons = self.running_daemons()
        report: dict[str, object] = {"dir": str(self.dir), "daemons": daemons}
        if not daemons:
            report["state"] = "down"
            return report
        try:
            with self._admin(timeout=5) as admin:
                health = admin.mon("health")
                report["health"] = health.get("status")
                report["pgs"] = _pg_states(admin)
                ready = len(daemons) == len(DAEMONS) and _health_ok(admin)
        except CephAdminError as exc:
            report["health"] = f"unreachable: {exc}"
            ready = False
        report["state"] = "ready" if ready else "degraded"
        return report

    def client_env(self) -> ClientEnv:
        try:
            data = json.loads(self._env_file().read_text())
        except FileNotFoundError:
            raise DevClusterError(
                f"no dev cluster in {self.dir}: run `cephmount dev-cluster up` first") from None
        return ClientEnv(
            conf=self.conf, keyring=self.keyring(f"client.{CLIENT_ID}"), client_id=CLIENT_ID,
            fs_name=FS_NAME, group=GROUP, subvolume=SUBVOLUME,
            subvolume_path=data["subvolume_path"], admin_keyring=self.keyring("client.admin"))

    # -- building ----------------------------------------------------------------------

    def _build(self, deadline: float) -> None:
        for sub in ("pids", "log", "run", "mon/mon.a", "osd/osd.0", "mgr/mgr.x", "mds/mds.a"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        fsid = str(uuid.uuid4())
        self.conf.write_text(self._conf_text(fsid))
        bootstrap = self._make_keys()
        with ThreadPoolExecutor(max_workers=2) as pool:
            osd_uuid = str(uuid.uuid4())
            osd_mkfs = pool.submit(self._run, "ceph-osd", "-i", "0", "--mkfs",
                                   "--osd-uuid", osd_uuid, "--no-mon-config")
            self._mkfs_mon(fsid, bootstrap)
            self._start("mon.a")
            osd_mkfs.result()
        with self._admin(timeout=max(5.0, deadline - time.monotonic())) as admin:
            admin.mon("osd new", uuid=osd_uuid, id=0)
            for name in ("osd.0", "mgr.x", "mds.a"):
                self._start(name)
            self._make_filesystem(admin)
            self._wait(deadline, "the MDS to become active", lambda: _mds_active(admin))
            self._wait(deadline, "the mgr volumes module",
                       lambda: _answers(admin, "fs subvolumegroup ls", vol_name=FS_NAME))
            self._make_subvolume(admin)
            self._wait(deadline, "HEALTH_OK and all PGs active+clean",
                       lambda: _health_ok(admin))

    def _check_ports_free(self) -> None:
        for port in (self.port, self.port + 1):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    raise DevClusterError(
                        f"port {port} on 127.0.0.1 is in use (another cluster?): "
                        "choose other mon ports with --port") from None

    def _conf_text(self, fsid: str) -> str:
        d = self.dir
        return f"""[global]
fsid = {fsid}
mon_host = [v2:127.0.0.1:{self.port},v1:127.0.0.1:{self.port + 1}]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_autoscale_mode = off
mgr_initial_modules = iostat
mgr_stats_period = 1
mon_data_avail_warn = 2
mon_data_avail_crit = 1
run_dir = {d}/run
log_file = {d}/log/$name.log
admin_socket = {d}/run/$cluster-$name.asok
keyring = {d}/$cluster.$name.keyring
mon_data = {d}/mon/$name
osd_data = {d}/osd/$name
mgr_data = {d}/mgr/$name
mds_data = {d}/mds/$name

[osd]
osd_objectstore = bluestore
osd_memory_target = 1073741824
bluestore_block_create = true
bluestore_block_size = 10737418240
bluestore_fsck_on_mkfs = false
bluestore_fsck_on_mount = false

[mds]
mds_cache_memory_limit = 268435456

[client]
admin_socket = {d}/run/$cluster-$name.$pid.asok
log_file = {d}/log/$name.$pid.log
"""

    def _make_keys(self) -> Path:
        bootstrap = self.dir / "bootstrap.keyring"
        self._run("ceph-authtool", "--create-keyring", str(bootstrap))
        for entity, caps in KEYS.items():
            own = self.keyring(entity)
            cap_args = [arg for pair in zip(caps[::2], caps[1::2], strict=True)
                        for arg in ("--cap", *pair)]
            self._run("ceph-authtool", "--create-keyring", str(own), "--gen-key",
                      "-n", entity, *cap_args)
            self._run("ceph-authtool", str(bootstrap), "--import-keyring", str(own))
        for path in self.dir.glob("*.keyring"):
            path.chmod(0o600)
        return bootstrap

    def _mkfs_mon(self, fsid: str, bootstrap: Path) -> None:
        monmap = self.dir / "monmap"
        self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                  f"[v2:127.0.0.1:{self.port},v1:127.0.0.1:{self.port + 1}]", str(monmap))
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap),
                  "--keyring", str(bootstrap))

    def _make_filesystem(self, admin: AdminClient) -> None:
        admin.mon("config set", who="mon", name="mon_allow_pool_delete", value="true")
        for pool in ("cephfs.cephfs.meta", "cephfs.cephfs.data"):
            admin.mon("osd pool create", pool=pool, pg_num=8, pgp_num=8)
        admin.mon("fs new", fs_name=FS_NAME, metadata="cephfs.cephfs.meta",
                  data="cephfs.cephfs.data")
        admin.mon("fs set", fs_name=FS_NAME, var="standby_count_wanted", val="0")

    def _make_subvolume(self, admin: AdminClient) -> None:
        admin.mgr("fs subvolumegroup create", vol_name=FS_NAME, group_name=GROUP)
        admin.mgr("fs subvolume create", vol_name=FS_NAME, sub_name=SUBVOLUME,
                  group_name=GROUP, size=QUOTA_BYTES)
        path = admin.subvolume_path(FS_NAME, SUBVOLUME, GROUP)
        admin.mgr("fs subvolume authorize", vol_name=FS_NAME, sub_name=SUBVOLUME,
                  group_name=GROUP, auth_id=CLIENT_ID, access_level="rw")
        key = admin.mon("auth get", entity=f"client.{CLIENT_ID}")[0]["key"]
        keyring = self.keyring(f"client.{CLIENT_ID}")
        fd = os.open(keyring, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"[client.{CLIENT_ID}]\n\tkey = {key}\n")
        self._env_file().write_text(json.dumps({"subvolume_path": path}))

    # -- processes ---------------------------------------------------------------------

    def _run(self, *argv: str) -> None:
        """Run a setup command with our conf; raise with its output if it fails."""
        full = [argv[0], "-c", str(self.conf), *argv[1:]]
        result = subprocess.run(full, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()[-2000:]
            raise DevClusterError(
                f"{' '.join(argv[:2])} failed ({result.returncode}): "
                f"{output or 'no output'}; logs are in {self.dir / 'log'}")

    def _start(self, name: str) -> None:
        """Start a daemon in the foreground of a new session; record its pid."""
        executable, daemon_id = next((exe, i) for n, exe, i in DAEMONS if n == name)
        log = open(self.dir / "log" / f"{name}.stdout", "ab")  # noqa: SIM115 - child owns it
        with log:
            process = subprocess.Popen(
                [executable, "-f", "-c", str(self.conf), "-i", daemon_id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._pid_file(name).write_text(f"{process.pid}\n")

    def _running_pid(self, name: str) -> int:
        pid = self._owned_pid(name)
        if pid is None:
            raise DevClusterError(f"{name} is not running in {self.dir}")
        return pid

    def _owned_pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _cmdline_mentions(pid, str(self.conf)) else None

    def _stop_daemons(self, grace: float = 1.0) -> None:
        """SIGTERM our daemons, SIGKILL what is left after `grace` (the MDS takes ~6 s)."""
        conf = str(self.conf)
        owned = [pid for name, _, _ in reversed(DAEMONS)
                 if (pid := self._owned_pid(name)) is not None]
        for pid in owned:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_cmdline_mentions(p, conf) for p in owned):
            time.sleep(0.05)
        for pid in owned:
            if _cmdline_mentions(pid, conf):
                _signal(pid, signal.SIGKILL)
        for pid in owned:
            _wait_gone(pid, conf)

    def _client_mounts(self) -> list[str]:
        """FUSE mountpoints served by processes that use this cluster's conf."""
        clients = [pid for pid in _all_pids() if _cmdline_mentions(pid, str(self.conf))
                   or _environ_mentions(pid, str(self.dir))]
        served = []
        for mountpoint in _fuse_mountpoints():
            if any(_cmdline_mentions(pid, mountpoint) for pid in clients):
                served.append(mountpoint)
        return served

    def _admin(self, timeout: float) -> AdminClient:
        return AdminClient(str(self.conf), keyring=str(self.keyring("client.admin")),
                           timeout=timeout)

    def _wait(self, deadline: float, what: str, predicate) -> None:
        while True:
            try:
                if predicate():
                    return
            except CephAdminError:
                pass
            if time.monotonic() > deadline:
                raise DevClusterError(
                    f"timed out waiting for {what}; daemon logs are in {self.dir / 'log'}")
            time.sleep(0.25)


# -- cluster state predicates ------------------------------------------------------------

def _health_ok(admin: AdminClient) -> bool:
    if admin.mon("health").get("status") != "HEALTH_OK":
        return False
    states = _pg_states(admin)
    return bool(states) and all(_clean(state) for state in states)


def _clean(state: str) -> bool:
    """Active and clean, perhaps also trimming snapshots or scrubbing (which is no fault:
    removing a snapshot leaves PGs `active+clean+snaptrim` for a moment)."""
    return state.split("+")[:2] == ["active", "clean"]


def _pg_states(admin: AdminClient) -> dict[str, int]:
    summary = admin.mon("pg stat")
    by_state = summary.get("pg_summary", summary).get("num_pg_by_state", [])
    return {entry["name"]: entry["num"] for entry in by_state}


def _mds_active(admin: AdminClient) -> bool:
    dump = admin.mon("fs dump")
    return any(info.get("state") == "up:active"
               for fs in dump.get("filesystems", [])
               for info in fs["mdsmap"]["info"].values())


def _incarnation(admin: AdminClient, name: str) -> int | None:
    """Which start of daemon `name` the cluster runs with, once it is up and in:
    the active MDS's gid, an OSD's up_from epoch; None while it is not."""
    kind, daemon_id = name.split(".", 1)
    if kind == "mds":
        return next((info["gid"] for fs in admin.mon("fs dump").get("filesystems", [])
                     for info in fs["mdsmap"]["info"].values()
                     if info.get("name") == daemon_id and info.get("state") == "up:active"),
                    None)
    if kind == "osd":
        return next((osd["up_from"] for osd in admin.mon("osd dump")["osds"]
                     if str(osd["osd"]) == daemon_id and osd["up"]), None)
    raise DevClusterError(f"cannot tell when {name} is back: only mds and osd daemons")


def _answers(admin: AdminClient, prefix: str, **args: object) -> bool:
    admin.mgr(prefix, **args)
    return True


# -- /proc helpers ------------------------------------------------------------------------

def _all_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def _proc_words(pid: int, what: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return []
    return [w.decode(errors="replace") for w in raw.split(b"\0") if w]


def _cmdline_mentions(pid: int, text: str) -> bool:
    return any(text in word for word in _proc_words(pid, "cmdline"))


def _environ_mentions(pid: int, text: str) -> bool:
    return any(text in word for word in _proc_words(pid, "environ"))


def _fuse_mountpoints() -> list[str]:
    return [entry.mountpoint for entry in mountinfo.mounts()
            if entry.fs_type == "fuse" or entry.fs_type.startswith("fuse.")]


def _unmount(mountpoint: str) -> None:
    for argv in (["fusermount3", "-u", mountpoint], ["fusermount3", "-u", "-z", mountpoint]):
        if subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0:
            return


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, conf: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _cmdline_mentions(pid, conf) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ChildProcessError):  # reap our own child: no zombie left
        os.waitpid(pid, os.WNOHANG)
