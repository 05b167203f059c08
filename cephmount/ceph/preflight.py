"""Checks of the files a client is given, made before libcephfs reads them.

libcephfs reports an unreadable conf as "No such file", and a keyring it cannot
read, or one that holds no key for the client, as a key the monitors refused.
Reading them first lets the error name the file and say what is wrong with it.
"""

from __future__ import annotations

import errno
import re

from cephmount.ceph.errors import CephError

# A keyring section header: `[client.kube]`.
_SECTION = re.compile(rb"^\s*\[\s*(?P<name>[^\]\s]+)\s*\]", re.MULTILINE)
# How Ceph splits a list of files to search (get_str_list).
_LIST = re.compile(r"[;,= \t]+")


def readable(path: str, what: str) -> bytes:
    """The contents of `path`; a CephError naming the file and the reason otherwise."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CephError(exc.errno or errno.EIO, f"read {what} {path}") from None


def check_keyring(search: str, entity: str) -> None:
    """Check the keyring libcephfs will use for `entity` (`client.x`).

    `search` is the `keyring` setting: files to try in turn, of which libcephfs
    takes the first it can open. Refuse when those that exist cannot be read, or
    when the one taken has no section for `entity`. No file at all is left to
    libcephfs (the key may come from elsewhere), and so is a keyring that is not
    text (ceph-authtool's binary form).
    """
    unreadable: CephError | None = None
    for path in filter(None, _LIST.split(search)):
        try:
            content = readable(path, "keyring")
        except CephError as exc:
            if exc.errno != errno.ENOENT:
                unreadable = unreadable or exc
            continue
        _check_entity(path, content, entity)
        return
    if unreadable is not None:
        raise unreadable


def _check_entity(path: str, content: bytes, entity: str) -> None:
    try:
        content.decode()
    except UnicodeDecodeError:
        return
    if entity.encode() not in {m["name"] for m in _SECTION.finditer(content)}:
        raise CephError(errno.ENOKEY, f"keyring {path}", f"it holds no key for {entity}")
