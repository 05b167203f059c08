"""The control socket's request format: anything that does not fit is refused as data."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cephmount.daemon.budget import MIN_CACHE, WORKER_BASE, BudgetExceeded, MemoryBudget
from cephmount.daemon.protocol import (
    MAX_REQUEST,
    List,
    Mount,
    ProtocolError,
    Unmount,
    VolumeRequest,
    decode_request,
    encode,
)

VOLUME = {"fs_name": "cephfs", "client_id": "kube", "path": "/volumes/csi/vol1/x"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused(data: bytes) -> None:
    try:
        decode_request(data)
    except ProtocolError as exc:
        assert str(exc) and "\n" not in exc.code


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["op", "volume", "target", "read_only", "key",
                                        "version", "force", "extra"]), json_values))
def test_any_json_object_decodes_or_is_refused(fields: dict[str, object]) -> None:
    with contextlib.suppress(ProtocolError):
        decode_request(json.dumps(fields).encode())


@pytest.mark.parametrize("change", [
    {"path": "/a/../b"}, {"path": "relative"}, {"path": "/a/"}, {"path": "//a"},
    {"fs_name": "fs,id=admin"}, {"client_id": "admin,keyring=/x"}, {"coherence": "none"},
    {"cache_bytes": -1}, {"timeout": 0}, {"timeout": 1e9}, {"subvolume": "vol1"},
    {"path": None, "group": "csi"}, {"conf": "/etc/ceph/../x"}, {"unknown": 1},
])
def test_bad_volume_fields_are_refused(change: dict[str, object]) -> None:
    volume = {**VOLUME, **change}
    request = {"op": "mount", "volume": volume, "target": "/mnt/x"}
    with pytest.raises(ProtocolError):
        decode_request(json.dumps(request).encode())


@pytest.mark.parametrize("request_fields", [
    {"op": "mount", "volume": VOLUME, "target": "/mnt/x/../y"},
    {"op": "mount", "volume": VOLUME, "target": "/mnt/x", "key": "not a key!"},
    {"op": "unmount", "target": "mnt"},
    {"op": "format-disk"},
    {"op": "list", "version": 2},
    {"volume": VOLUME},
    [1, 2],
])
def test_bad_requests_are_refused(request_fields: object) -> None:
    with pytest.raises(ProtocolError):
        decode_request(json.dumps(request_fields).encode())


def test_oversized_requests_are_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_request(b" " * (MAX_REQUEST + 1))
    assert refused.value.code == "too-large"


def test_requests_round_trip() -> None:
    mount = Mount(VolumeRequest("cephfs", "kube", subvolume="vol1", group="csi"), "/mnt/x",
                  read_only=True, key="QUJDRA==")
    for request in (mount, Unmount("/mnt/x", force=True), List()):
        assert decode_request(encode(request).strip()) == request
    decoded = msgspec.json.decode(encode(mount))
    assert decoded["op"] == "mount"


def test_memory_budget_shares() -> None:
    assert MemoryBudget(None).shares({"a": 1 << 30}) == {"a": 1 << 30}
    budget = MemoryBudget(2 * WORKER_BASE + 2 * (64 << 20))
    assert budget.shares({"a": 256 << 20, "b": 256 << 20}) == {"a": 64 << 20, "b": 64 << 20}
    assert budget.shares({"a": 16 << 20, "b": 256 << 20})["a"] == 16 << 20
    with pytest.raises(BudgetExceeded):
        MemoryBudget(WORKER_BASE + MIN_CACHE).shares({"a": 1 << 30, "b": 1 << 30})
