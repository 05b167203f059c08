"""SOURCE and -o parsing: what a user types and the one-line errors they get."""

from __future__ import annotations

import pytest

from cephmount.fs.options import (
    Coherence,
    MountOptionError,
    Source,
    parse_options,
    parse_size,
    parse_source,
)


def test_path_source_with_client_id() -> None:
    assert parse_source("kube@cephfs:/volumes/csi/vol1//x/") == Source(
        "kube", "cephfs", path="/volumes/csi/vol1/x")


def test_subvolume_source_with_and_without_group() -> None:
    assert parse_source("cephfs:csi/vol1", "kube") == Source(
        "kube", "cephfs", group="csi", subvolume="vol1")
    assert parse_source("cephfs:vol1") == Source(
        "admin", "cephfs", group="_nogroup", subvolume="vol1")


@pytest.mark.parametrize("text", ["cephfs", ":/x", "cephfs:a/b/c", "a b@fs:/x", "fs:"])
def test_malformed_sources_are_refused(text: str) -> None:
    with pytest.raises(MountOptionError):
        parse_source(text)


def test_conflicting_client_ids_are_refused() -> None:
    with pytest.raises(MountOptionError, match="id=other"):
        parse_source("kube@cephfs:/", "other")


def test_options_parse_into_typed_values() -> None:
    options, client_id = parse_options(
        "id=kube,conf=/c.conf,keyring=/k,ro,noallow_other,coherence=strict,cache_size=64M,"
        "timeout=2.5")
    assert client_id == "kube"
    assert options.conf == "/c.conf" and options.keyring == "/k"
    assert options.read_only and not options.allow_other and options.default_permissions
    assert options.coherence is Coherence.STRICT
    assert options.cache_bytes == 64 << 20
    assert options.timeout == 2.5


def test_defaults() -> None:
    options, client_id = parse_options("")
    assert client_id is None
    assert options.allow_other and options.default_permissions and not options.read_only
    assert options.coherence is Coherence.DEFAULT


@pytest.mark.parametrize("text, message", [
    ("secret=AQD", "keyring file"),
    ("key=AQD", "keyring file"),
    ("coherence=eventual", "strict, default, relaxed"),
    ("cache_size=lots", "number"),
    ("timeout=0", "seconds from 1 to 3600"),
    ("timeout=nan", "seconds from 1 to 3600"),
    ("timeout=inf", "seconds from 1 to 3600"),
    ("timeout=-5", "seconds from 1 to 3600"),
    ("timeout=1e9", "seconds from 1 to 3600"),
    ("cache_size=1000000G", "half of this machine's memory"),
    ("cache_size=4K", "use 0 for no data cache"),
    ("id=a b", "client id"),
    ("ro=1", "no value"),
    ("conf", "needs a value"),
    ("frobnicate", "unknown option"),
])
def test_bad_options_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(MountOptionError, match=message):
        parse_options(text)


def test_cache_size_zero_means_no_data_cache() -> None:
    assert parse_options("cache_size=0")[0].cache_bytes == 0


@pytest.mark.parametrize("text, size", [("4096", 4096), ("1K", 1024), ("2MiB", 2 << 20),
                                        ("1g", 1 << 30)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size
