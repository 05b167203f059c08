"""What to mount and how: the SOURCE argument and `-o` options, parsed and checked.

SOURCE is `[ID@]FSNAME:/PATH` for a path inside a filesystem, or
`[ID@]FSNAME:[GROUP/]SUBVOLUME` for a subvolume the mgr resolves to its path.
Options follow ceph-fuse's names where it has one (`conf`, `id`, `keyring`).
Secrets are never accepted here: a key lives in a keyring file.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from enum import Enum

DEFAULT_CLIENT_ID = "admin"
DEFAULT_SUBVOLUME_GROUP = "_nogroup"
DEFAULT_CACHE_BYTES = 256 << 20
DEFAULT_MOUNT_TIMEOUT = 30.0
# The smallest cache that holds one block (fs/cache.py MAX_BLOCK); 0 means no data cache.
MIN_CACHE_BYTES = 1 << 20
# A mount that waits longer than this for the cluster is better told it failed.
MAX_MOUNT_TIMEOUT = 3600.0
# libcephfs and rados take whole seconds: anything shorter would mean "wait forever".
MIN_MOUNT_TIMEOUT = 1.0

_NAME = r"[A-Za-z0-9_.-]+"
_SOURCE = re.compile(rf"(?:(?P<id>{_NAME})@)?(?P<fs>{_NAME}):(?P<what>[^\x00-\x1f\x7f]+)")
_SUBVOLUME = re.compile(rf"(?:(?P<group>{_NAME})/)?(?P<name>{_NAME})")
_CLIENT_ID = re.compile(_NAME)
_SIZE = re.compile(r"(?P<number>[0-9]{1,19})(?P<unit>[KMGT]?)i?B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class MountOptionError(ValueError):
    """SOURCE or an option is malformed; the message says which and why."""


class Coherence(Enum):
    """How fresh reads are across nodes; docs/cache-and-coherence.md says what each promises."""

    STRICT = "strict"
    DEFAULT = "default"
    RELAXED = "relaxed"


@dataclass(frozen=True)
class Source:
    client_id: str
    fs_name: str
    path: str | None = None
    group: str | None = None
    subvolume: str | None = None

    def __str__(self) -> str:
        what = self.path if self.path else f"{self.group}/{self.subvolume}"
        return f"{self.client_id}@{self.fs_name}:{what}"


@dataclass(frozen=True)
class MountOptions:
    conf: str | None = None
    keyring: str | None = None
    read_only: bool = False
    allow_other: bool = True
    default_permissions: bool = True
    coherence: Coherence = Coherence.DEFAULT
    cache_bytes: int = DEFAULT_CACHE_BYTES
    timeout: float = DEFAULT_MOUNT_TIMEOUT


def parse_source(text: str, client_id: str | None = None) -> Source:
    _utf8("source", text)
    match = _SOURCE.fullmatch(text)
    if not match:
        raise MountOptionError(
            f"source {text!r} is not [ID@]FSNAME:/PATH or [ID@]FSNAME:[GROUP/]SUBVOLUME")
    if match["id"] and client_id and match["id"] != client_id:
        raise MountOptionError(f"source names client {match['id']!r} but -o id={client_id}")
    who = match["id"] or client_id or DEFAULT_CLIENT_ID
    what = match["what"]
    if what.startswith("/"):
        return Source(who, match["fs"], path=os.path.normpath(what).replace("//", "/"))
    sub = _SUBVOLUME.fullmatch(what)
    if not sub:
        raise MountOptionError(f"{what!r} is neither an absolute path nor [GROUP/]SUBVOLUME")
    return Source(who, match["fs"], group=sub["group"] or DEFAULT_SUBVOLUME_GROUP,
                  subvolume=sub["name"])


def parse_size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise MountOptionError(f"size {text!r} is not a number with an optional K, M, G or T")
    return int(match["number"]) * _UNITS[match["unit"].upper()]


def physical_memory() -> int:
    """This machine's memory in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _cache_size(value: str) -> int:
    """cache_size: 0 (no data cache) or from one block up to half the machine's memory.

    Half, because the process holds libcephfs's own caches and buffers besides ours
    and the node runs pods: a cache the size of the memory would end in the OOM killer.
    """
    value = value.strip()
    size = parse_size(value)
    limit = physical_memory() // 2
    if 0 < size < MIN_CACHE_BYTES:
        raise MountOptionError(
            f"cache_size={value} is below one block (1M): use 0 for no data cache, or 1M or more")
    if size > limit:
        raise MountOptionError(
            f"cache_size={value} is more than half of this machine's memory "
            f"({limit >> 20}M of {physical_memory() >> 20}M)")
    return size


def _split(option_text: str) -> dict[str, str | None]:
    pairs: dict[str, str | None] = {}
    for item in filter(None, (part.strip() for part in option_text.split(","))):
        key, sep, value = item.partition("=")
        pairs[key] = value if sep else None
    return pairs


def _flag(key: str, value: str | None) -> bool:
    if value is not None:
        raise MountOptionError(f"option {key} takes no value")
    return True


def parse_options(option_text: str) -> tuple[MountOptions, str | None]:
    """Parse `-o a,b=c`; return the options and the client id they name, if any."""
    _utf8("-o", option_text)
    values: dict[str, object] = {}
    client_id = None
    for key, value in _split(option_text).items():
        if key in {"secret", "key"}:
            raise MountOptionError(
                f"option {key}= is refused: a secret on a command line is visible to every "
                "user; put the key in a keyring file and use keyring=PATH")
        if key == "id":
            client_id = _client_id(_required(key, value))
        elif key in {"conf", "keyring"}:
            values[key] = _path(key, _required(key, value))
        elif key in {"ro", "rw"}:
            values["read_only"] = _flag(key, value) and key == "ro"
        elif key in {"allow_other", "noallow_other"}:
            values["allow_other"] = _flag(key, value) and key == "allow_other"
        elif key in {"default_permissions", "nodefault_permissions"}:
            values["default_permissions"] = _flag(key, value) and key == "default_permissions"
        elif key == "coherence":
            values["coherence"] = _coherence(_required(key, value))
        elif key == "cache_size":
            values["cache_bytes"] = _cache_size(_required(key, value))
        elif key == "timeout":
            values["timeout"] = _timeout(_required(key, value))
        else:
            raise MountOptionError(f"unknown option {key!r}")
    return MountOptions(**values), client_id  # type: ignore[arg-type]


def _required(key: str, value: str | None) -> str:
    if not value:
        raise MountOptionError(f"option {key} needs a value: {key}=...")
    return value


def _coherence(value: str) -> Coherence:
    try:
        return Coherence(value)
    except ValueError:
        choices = ", ".join(mode.value for mode in Coherence)
        raise MountOptionError(f"coherence={value!r}: choose one of {choices}") from None


def _utf8(what: str, text: str) -> None:
    """Refuse text that is not UTF-8 (undecodable bytes from argv): libcephfs takes UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise MountOptionError(f"{what} {text!r} is not valid UTF-8") from None


def _client_id(value: str) -> str:
    if not _CLIENT_ID.fullmatch(value):
        raise MountOptionError(f"id={value!r}: a client id is letters, digits, '_', '.' or '-'")
    return value


def _path(key: str, value: str) -> str:
    if "\0" in value:
        raise MountOptionError(f"option {key}= holds a NUL byte")
    return value


def _timeout(value: str) -> float:
    """Seconds to wait for the cluster: a finite number in [1, 3600]."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not MIN_MOUNT_TIMEOUT <= number <= MAX_MOUNT_TIMEOUT:
        raise MountOptionError(
            f"timeout={value!r} must be a number of seconds from {MIN_MOUNT_TIMEOUT:g} "
            f"to {MAX_MOUNT_TIMEOUT:g}")
    return number
