"""`mount.fuse.cephmount`: what mount(8) runs for an /etc/fstab line of type fuse.cephmount.

mount(8) calls `mount.fuse.cephmount SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS]
[-t TYPE]`. Options meant for mount(8) and systemd (`_netdev`, `nofail`,
`x-systemd.*`, `defaults`, ...) are dropped; the rest are cephmount's `-o`
options, and the mount goes through the node daemon when one runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Options of mount(8), systemd and fstab itself, not of the filesystem.
NOT_OURS = {"_netdev", "nofail", "noauto", "auto", "defaults", "user", "users", "nouser",
            "owner", "group", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev",
            "atime", "noatime", "relatime", "strictatime", "nodiratime", "sync", "async"}
NOT_OURS_PREFIXES = ("x-", "comment=", "_")


def filter_options(text: str) -> str:
    kept = [option for option in text.split(",") if option
            and option not in NOT_OURS and not option.startswith(NOT_OURS_PREFIXES)]
    return ",".join(kept)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mount.fuse.cephmount")
    parser.add_argument("source")
    parser.add_argument("mountpoint")
    parser.add_argument("-o", dest="options", default="")
    parser.add_argument("-t", dest="type")
    parser.add_argument("-N", dest="namespace")
    for flag in ("-s", "-f", "-n", "-v"):
        parser.add_argument(flag, action="store_true")
    args = parser.parse_args(argv)
    from cephmount import cli

    options = filter_options(args.options)
    return cli.main(["mount", *(["-o", options] if options else []), args.source,
                     args.mountpoint])


if __name__ == "__main__":
    sys.exit(main())
