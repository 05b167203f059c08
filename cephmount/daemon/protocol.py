"""The control socket's protocol, version 1 (docs/daemon.md describes it).

One request per connection: a JSON object of at most MAX_REQUEST bytes ending
in a newline; one JSON reply line. Every field is checked here, at decoding,
against its type and bounds: a request that does not fit gets an error reply
and changes nothing.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec

from cephmount.worker.config import VolumeSpec

PROTOCOL_VERSION = 1
MAX_REQUEST = 64 << 10

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
AbsolutePath = Annotated[str, msgspec.Meta(pattern=r"^/[^\x00]*$", max_length=4096)]
Secret = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9+/=]{1,256}$")]


class VolumeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A volume as a client names it; a path or a subvolume (with its group)."""

    fs_name: Name
    client_id: Name
    path: AbsolutePath | None = None
    group: Name | None = None
    subvolume: Name | None = None
    conf: AbsolutePath | None = None
    keyring: AbsolutePath | None = None
    coherence: Literal["strict", "default", "relaxed"] = "default"
    cache_bytes: Annotated[int, msgspec.Meta(ge=0, le=1 << 40)] = 256 << 20
    timeout: Annotated[float, msgspec.Meta(ge=1, le=600)] = 30.0
    allow_other: bool = True
    default_permissions: bool = True

    def __post_init__(self) -> None:
        if (self.path is None) == (self.subvolume is None):
            raise ValueError("a volume names either a path or a subvolume")
        if self.group is not None and self.subvolume is None:
            raise ValueError("group is for a subvolume")
        for path in (self.path, self.conf, self.keyring):
            _check_normal(path)

    def spec(self, default_conf: str) -> VolumeSpec:
        return VolumeSpec(**{**msgspec.structs.asdict(self), "conf": self.conf or default_conf})


def _check_normal(path: str | None) -> None:
    if path is not None and (path.startswith("//") or os.path.normpath(path) != path):
        raise ValueError(f"path {path!r} is not in normal form "
                         "(no '.', '..', '//' or '/' at the end)")


class Mount(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="mount",
            tag_field="op"):
    volume: VolumeRequest
    target: AbsolutePath
    read_only: bool = False
    key: Secret | None = None
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _check_normal(self.target)


class Unmount(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="unmount",
              tag_field="op"):
    target: AbsolutePath
    force: bool = False
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _check_normal(self.target)


class List(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="list",
           tag_field="op"):
    version: int = PROTOCOL_VERSION


class Status(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="status",
             tag_field="op"):
    version: int = PROTOCOL_VERSION


class ShutdownMounts(msgspec.Struct, frozen=True, forbid_unknown_fields=True,
                     tag="shutdown-mounts", tag_field="op"):
    """Unmount every target and volume (node drain); busy targets are detached."""

    version: int = PROTOCOL_VERSION


Request = Mount | Unmount | List | Status | ShutdownMounts


class TargetInfo(msgspec.Struct, frozen=True):
    path: str
    read_only: bool


class MountInfo(msgspec.Struct, frozen=True):
    mount_id: str
    source: str
    coherence: str
    staging: str
    targets: list[TargetInfo]
    state: str
    worker_pid: int
    worker_started: float
    restarts: int
    takeovers: int
    session_losses: int
    cache_share: int
    stats: dict[str, object] | None = None


class DaemonInfo(msgspec.Struct, frozen=True):
    pid: int
    version: str
    started: float
    socket: str
    state_dir: str
    metrics: str
    memory_budget: int


class Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    ok: bool
    error: str = ""
    code: str = ""
    mount: MountInfo | None = None
    mounts: list[MountInfo] | None = None
    daemon: DaemonInfo | None = None


class ProtocolError(Exception):
    """A request that cannot be served as sent; `code` is for programs, the text for people."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


_decoder = msgspec.json.Decoder(Request)


def decode_request(data: bytes) -> Request:
    if len(data) > MAX_REQUEST:
        raise ProtocolError(f"request larger than {MAX_REQUEST} bytes", "too-large")
    try:
        request = _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProtocolError(f"malformed request: {exc}") from None
    if request.version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {request.version} is not supported "
                            f"(this daemon speaks {PROTOCOL_VERSION})", "version")
    return request


def encode(message: msgspec.Struct) -> bytes:
    return msgspec.json.encode(message) + b"\n"
