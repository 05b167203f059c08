"""kubelet reads one JSON object from the driver, whatever happens; the key never shows."""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import short_tmpdir
from tests.kube import kubelet

KEY = "AQBxaW5vdGFyZWFsa2V5YnV0c2hhcGVkbGlrZW9uZQ=="
PV = {"fsName": "cephfs", "subvolume": "vol1", "subvolumeGroup": "csi", "clientId": "kube"}
NOWHERE = "/nonexistent/cephmount.sock"
Serve = Callable[[Callable[[socket.socket], None]], str]
EXIT_CODES = {"Success": 0, "Not supported": 0, "Failure": 1}


def check(call: kubelet.Call) -> None:
    """Exactly one JSON object (json.loads refuses trailing text), a known status, its code."""
    assert call.status in kubelet.STATUSES, call.output
    assert call.code == EXIT_CODES[call.status], call.output
    assert call.output.count("\n") == 1 and call.output.endswith("}\n"), call.output


def test_init_declares_no_attach_no_fsgroup_no_relabel() -> None:
    call = kubelet.run("init", socket=NOWHERE)
    check(call)
    assert call.reply == {"status": "Success", "capabilities": {
        "attach": False, "selinuxRelabel": False, "fsGroup": False}}


@pytest.mark.parametrize("argv", [["attach", "{}", "node"], ["getvolumename", "{}"],
                                  ["mountdevice", "/x", "/dev/x", "{}"], []])
def test_other_calls_are_not_supported(argv: list[str]) -> None:
    call = kubelet.run(*argv, socket=NOWHERE)
    check(call)
    assert call.status == "Not supported"


arg_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=40)
option_keys = st.sampled_from([*PV, "path", "conf", "keyring", "coherence", "cacheSize",
                               "kubernetes.io/readwrite", "kubernetes.io/fsType",
                               "kubernetes.io/secret/key", "kubernetes.io/mounterArgs.FsGroup",
                               "kubernetes.io/pod.name"]) | arg_text
json_values = st.recursive(st.none() | st.booleans() | st.integers() | arg_text,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(arg_text, inner, max_size=3), max_leaves=6)
option_json = st.one_of(
    st.dictionaries(option_keys, arg_text | st.sampled_from(["/volumes/csi", "ro", "eA=="]),
                    max_size=8).map(lambda d: json.dumps({**PV, **d})),
    json_values.map(json.dumps), arg_text)
argv = st.one_of(
    st.tuples(st.just("mount"), arg_text | st.just("/tmp/t"), option_json),
    st.tuples(st.just("unmount"), arg_text | st.just("/tmp")),
    st.lists(st.sampled_from(["init", "mount", "unmount", "attach"]) | arg_text, max_size=4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv)
def test_every_call_answers_one_json_object(args: tuple[str, ...] | list[str]) -> None:
    check(kubelet.run(*args, socket=NOWHERE))


@pytest.fixture
def fake_daemon() -> Iterator[Serve]:
    """A socket whose 'daemon' does what the test says with each connection."""
    root = short_tmpdir("cmk.")
    servers: list[socket.socket] = []

    def serve(handle: Callable[[socket.socket], None]) -> str:
        path = str(root / "sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen()
        servers.append(server)

        def loop() -> None:
            connection, _ = server.accept()
            with connection:
                handle(connection)

        threading.Thread(target=loop, daemon=True).start()
        return path

    yield serve
    for server in servers:
        server.close()
    for path in root.iterdir():
        path.unlink()
    root.rmdir()


def options_with_secret() -> str:
    return kubelet.options(PV, secret={"type": "cephmount/cephfs", "data": {
        "key": base64.b64encode(KEY.encode()).decode()}})


def test_a_daemon_that_does_not_answer_is_a_failure_in_time(fake_daemon: Serve) -> None:
    path = fake_daemon(lambda connection: connection.recv(1 << 16) and threading.Event().wait(30))
    call = kubelet.run("mount", "/tmp", options_with_secret(), socket=path,
                       extra_env={"CEPHMOUNT_FLEXVOLUME_TIMEOUT": "3"}, timeout=30)
    check(call)
    assert call.status == "Failure" and "did not answer" in call.reply["message"]


def test_a_reply_that_is_not_the_protocol_is_a_failure(fake_daemon: Serve) -> None:
    def garbage(connection: socket.socket) -> None:
        connection.recv(1 << 16)
        connection.sendall(b"Traceback (most recent call last):\n")

    path = fake_daemon(garbage)
    call = kubelet.run("mount", "/tmp", options_with_secret(), socket=path)
    check(call)
    assert call.status == "Failure" and "not understood" in call.reply["message"]


def test_the_key_is_erased_from_the_drivers_command_line(fake_daemon: Serve) -> None:
    """kubelet puts the Secret in argv; while the driver waits for the daemon, /proc shows none.

    The request on the socket is the one place the key goes.
    """
    seen: dict[str, bytes] = {}

    def look(connection: socket.socket) -> None:
        ucred = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid = struct.unpack("3i", ucred)[0]
        seen["cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes()
        seen["environ"] = Path(f"/proc/{pid}/environ").read_bytes()
        seen["request"] = connection.recv(1 << 16)

    path = fake_daemon(look)
    call = kubelet.run("mount", "/tmp", options_with_secret(), socket=path)
    check(call)
    encoded = base64.b64encode(KEY.encode())
    assert b"cephmount.kube.flexvolume\0mount\0/tmp\0" in seen["cmdline"]
    for where in ("cmdline", "environ"):
        assert KEY.encode() not in seen[where] and encoded not in seen[where], where
    assert json.loads(seen["request"])["key"] == KEY
