"""`cephmount install-systemd`: the daemon's unit and mount(8)'s helper, for this host.

The templates live in the source tree's systemd/ (installed as data under
<prefix>/share/cephmount/systemd); they are filled in with this installation's
interpreter and `cephmount` script, so the unit runs exactly this cephmount.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = "cephmountd.service"
HELPER = "mount.fuse.cephmount"


def templates() -> Path:
    for candidate in (Path(__file__).resolve().parent.parent / "systemd",
                      Path(sys.prefix) / "share" / "cephmount" / "systemd"):
        if (candidate / UNIT).exists():
            return candidate
    raise FileNotFoundError(f"the {UNIT} template is not installed")


def _write(path: Path, text: str, mode: int) -> None:
    """Write atomically: a dot-file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(text)
    temporary.chmod(mode)
    os.replace(temporary, path)


def install_systemd(root: Path, enable: bool) -> list[str]:
    """Install the unit and the helper under `root`; what was done, line by line."""
    source = templates()
    cephmount = shutil.which("cephmount", path=str(Path(sys.executable).parent)) or \
        f"{sys.executable} -m cephmount.cli"
    unit = (source / UNIT).read_text().replace("@CEPHMOUNT@", cephmount)
    helper = (source / HELPER).read_text().replace("@PYTHON@", sys.executable)
    unit_path = root / "etc/systemd/system" / UNIT
    helper_path = root / "usr/sbin" / HELPER
    _write(unit_path, unit, 0o644)
    _write(helper_path, helper, 0o755)
    done = [f"installed {unit_path}", f"installed {helper_path}"]
    if not enable:
        return done
    if not Path("/run/systemd/system").exists():
        return [*done, "systemd is not running here: enable it later with "
                       f"`systemctl enable --now {UNIT}`"]
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", UNIT]):
        subprocess.run(argv, check=True, timeout=120)
    return [*done, f"enabled and started {UNIT}"]
