"""The kubelet FlexVolume driver `cephmount~cephfs/cephfs`: a thin client of the node daemon.

kubelet runs it as `init`, `mount <target dir> <json options>` and `unmount
<target dir>`, and reads its stdout and stderr together as one JSON object.
So on every path (bad input, no daemon, a timeout, a bug) it prints exactly
one object and exits 0 for Success and "Not supported", 1 for Failure; what
it has to log goes to syslog. The mounts themselves are the daemon's: one
FUSE mount per volume on the node, each pod's target a bind mount of it, and
nothing left in kubelet's cgroup for systemd to kill.

PV options (flexVolume.options; all strings):
    fsName: cephfs                 clientId: NAME (required: no default user)
    subvolume: NAME + subvolumeGroup: NAME, or path: /ABSOLUTE/NORMAL/PATH
    conf, keyring: absolute paths on the node (optional)
    coherence: strict | default | relaxed     cacheSize: e.g. 256Mi
The cephx key comes from the PV's secretRef: a Secret of type cephmount/cephfs
with one key, `key`; or from a keyring file on the node.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import syslog
from collections.abc import Sequence
from types import FrameType
from typing import Any

SUCCESS, FAILURE, NOT_SUPPORTED = "Success", "Failure", "Not supported"
CAPABILITIES = {"attach": False, "selinuxRelabel": False, "fsGroup": False}
# kubelet waits for ever; the driver does not. A first mount starts a worker (~1 s,
# at most the volume's mount timeout plus the daemon's slack).
DEFAULT_TIMEOUT = 120


def _timeout() -> int:
    """Seconds the whole call may take ($CEPHMOUNT_FLEXVOLUME_TIMEOUT, default 120)."""
    text = os.environ.get("CEPHMOUNT_FLEXVOLUME_TIMEOUT", "")
    return int(text) if text.isdigit() and 2 <= int(text) <= 3600 else DEFAULT_TIMEOUT


class DriverTimeout(Exception):
    pass


def _reply(status: str, message: str = "", **extra: Any) -> int:
    body: dict[str, Any] = {"status": status, **extra}
    if message:
        body["message"] = message
    try:
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()
    except OSError:
        pass
    return 1 if status == FAILURE else 0


def _log(message: str) -> None:
    syslog.syslog(syslog.LOG_INFO, message)


def _mount(target: str, raw_options: str) -> int:
    from cephmount.daemon import client
    from cephmount.kube.options import SECRET_PREFIX, decode, mount_request

    if SECRET_PREFIX in raw_options:
        _hide(raw_options)
    options, key = decode(raw_options)
    request = mount_request(target, options, key)
    reply = client.call(client.socket_path(), request, timeout=_timeout() - 1)
    assert reply.mount is not None
    what = f"{reply.mount.source} at {target}{' (read-only)' if request.read_only else ''}"
    _log(f"mounted {what} for pod {options.pod_namespace}/{options.pod_name}")
    return _reply(SUCCESS, f"mounted {what}")


def _hide(raw_options: str) -> None:
    """Erase the options (they hold the Secret) from /proc/PID/cmdline; best effort."""
    from cephmount.kube import argv

    try:
        argv.erase(os.fsencode(raw_options))
    except OSError as exc:
        _log(f"cannot hide the options from the process list: {exc}")


def _unmount(target: str) -> int:
    """Unmount; a target the daemon does not know is fine when nothing is mounted there."""
    from cephmount.daemon import client
    from cephmount.host import mountinfo

    try:
        client.call(client.socket_path(), client.Unmount(os.path.normpath(target)),
                    timeout=_timeout() - 1)
    except client.DaemonError as exc:
        if exc.code not in ("not-mounted", "unavailable") or mountinfo.is_mountpoint(target):
            raise
    _log(f"unmounted {target}")
    return _reply(SUCCESS, f"unmounted {target}")


def _run(args: list[str]) -> int:
    command = args[0] if args else ""
    if command == "init" and len(args) == 1:
        return _reply(SUCCESS, capabilities=CAPABILITIES)
    if command == "mount" and len(args) == 3:
        return _mount(args[1], args[2])
    if command == "unmount" and len(args) == 2:
        return _unmount(args[1])
    if command in ("init", "mount", "unmount"):
        return _reply(FAILURE, f"{command}: {len(args) - 1} arguments is the wrong number")
    return _reply(NOT_SUPPORTED, f"{command or 'no command'} is not supported")


def _timed_out(signum: int, frame: FrameType | None) -> None:
    raise DriverTimeout(f"no answer in {_timeout()} s")


def main(args: Sequence[str] | None = None) -> int:
    """Answer one kubelet call; never raises, never prints more than one JSON object."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # stray warnings must not break kubelet's JSON
    os.close(devnull)
    syslog.openlog("cephmount-flexvolume", syslog.LOG_PID, syslog.LOG_DAEMON)
    signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(_timeout())
    try:
        return _run(list(sys.argv[1:] if args is None else args))
    except Exception as exc:  # every failure is one JSON reply: kubelet reads nothing else
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _log(f"failed: {message}")
        return _reply(FAILURE, message)
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    sys.exit(main())
