"""Any SOURCE or `-o` text gives a valid result or one clear line, never another exception."""

from __future__ import annotations

import math
import re

from hypothesis import example, given
from hypothesis import strategies as st

from cephmount.fs.options import (
    MAX_MOUNT_TIMEOUT,
    MIN_CACHE_BYTES,
    MIN_MOUNT_TIMEOUT,
    MountOptionError,
    MountOptions,
    parse_options,
    parse_source,
    physical_memory,
)

NAME = re.compile(r"[A-Za-z0-9_.-]+")
KEYS = ["id", "conf", "keyring", "ro", "rw", "allow_other", "noallow_other",
        "default_permissions", "nodefault_permissions", "coherence", "cache_size", "timeout",
        "secret", "key", "bogus"]
# Text as argv can hold it: any character, undecodable bytes as lone surrogates.
argv_text = st.text(st.one_of(st.characters(exclude_categories=()),
                              st.characters(categories=["Cs"])))
number_text = st.one_of(
    st.floats().map(repr), st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_0", " 5", "٣", "9" * 5000]))
size_text = st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 10**25),
                      st.sampled_from(["", "K", "M", "G", "T", "KiB", "mb", "g", "P", "ki"]))
option_value = st.one_of(st.none(), argv_text, number_text, size_text,
                         st.sampled_from(["strict", "default", "relaxed", "kube", "/etc/x"]))
option_text = st.one_of(
    argv_text,
    st.lists(st.tuples(st.sampled_from(KEYS), option_value), max_size=6).map(
        lambda pairs: ",".join(k if v is None else f"{k}={v}" for k, v in pairs)))


def assert_one_line(exc: MountOptionError) -> None:
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message


def assert_valid_options(options: MountOptions, client_id: str | None) -> None:
    assert client_id is None or NAME.fullmatch(client_id)
    assert math.isfinite(options.timeout)
    assert MIN_MOUNT_TIMEOUT <= options.timeout <= MAX_MOUNT_TIMEOUT
    assert options.cache_bytes == 0 or (
        MIN_CACHE_BYTES <= options.cache_bytes <= physical_memory() // 2)
    for path in (options.conf, options.keyring):
        assert path is None or (path and "\0" not in path)


@given(option_text)
@example("timeout=nan")
@example("timeout=inf")
@example("cache_size=1000000G")
@example("cache_size=" + "9" * 5000)
@example("id=a b")
@example("conf=/a\udcff")
def test_any_option_text_parses_or_fails_in_one_line(text: str) -> None:
    try:
        options, client_id = parse_options(text)
    except MountOptionError as exc:
        assert_one_line(exc)
        return
    assert_valid_options(options, client_id)


@given(number_text)
def test_timeout_is_a_finite_number_of_seconds_within_bounds(text: str) -> None:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    within = MIN_MOUNT_TIMEOUT <= number <= MAX_MOUNT_TIMEOUT
    try:
        options, _ = parse_options(f"timeout={text}")
    except MountOptionError as exc:
        assert_one_line(exc)
        assert not within
        return
    assert within and options.timeout == number


@given(st.integers(0, 10**25), st.sampled_from([("", 1), ("K", 1 << 10), ("M", 1 << 20),
                                                ("G", 1 << 30), ("T", 1 << 40)]))
def test_cache_size_is_zero_or_between_a_block_and_half_the_memory(
        number: int, unit: tuple[str, int]) -> None:
    size = number * unit[1]
    allowed = size == 0 or MIN_CACHE_BYTES <= size <= physical_memory() // 2
    try:
        options, _ = parse_options(f"cache_size={number}{unit[0]}")
    except MountOptionError as exc:
        assert_one_line(exc)
        assert not allowed
        return
    assert allowed and options.cache_bytes == size


source_text = st.one_of(
    argv_text,
    st.builds(lambda who, fs, what: f"{who}{fs}:{what}",
              st.sampled_from(["", "kube@", "a b@", "@"]),
              st.sampled_from(["cephfs", "", "c:d", "fs.1"]),
              st.one_of(argv_text, st.sampled_from(["/", "//x/../y/", "csi/vol1", "vol1",
                                                    "a/b/c", "/x\n", "/\0", "csi/"]))))


@given(source_text, st.one_of(st.none(), st.from_regex(NAME, fullmatch=True)))
def test_any_source_parses_or_fails_in_one_line(text: str, client_id: str | None) -> None:
    try:
        source = parse_source(text, client_id)
    except MountOptionError as exc:
        assert_one_line(exc)
        return
    assert NAME.fullmatch(source.client_id) and NAME.fullmatch(source.fs_name)
    if source.path is not None:
        assert source.path.startswith("/") and source.path.isprintable()
    else:
        assert NAME.fullmatch(str(source.group)) and NAME.fullmatch(str(source.subvolume))
    assert parse_source(str(source)) == source
