"""kubelet's side of the FlexVolume protocol, as pkg/volume/flexvolume does it.

The driver is executed with argv only (no stdin); its stdout and stderr are
read together and must be one JSON object; the options are the PV's
`flexVolume.options` plus kubelet's own keys, each Secret data key as
`kubernetes.io/secret/<key>`, base64 of the data. The Secret must be of the
type named by the driver.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DRIVER = [sys.executable, "-m", "cephmount.kube.flexvolume"]
STATUSES = {"Success", "Failure", "Not supported"}


@dataclass(frozen=True)
class Call:
    code: int
    output: str

    @property
    def reply(self) -> dict[str, Any]:
        """The one JSON object kubelet reads (json.loads refuses anything around it)."""
        body = json.loads(self.output)
        assert isinstance(body, dict), self.output
        return body

    @property
    def status(self) -> str:
        return str(self.reply["status"])


def run(*argv: str, socket: str, driver: list[str] = DRIVER, timeout: int = 120,
        extra_env: dict[str, str] | None = None) -> Call:
    env = {**os.environ, "CEPHMOUNT_SOCKET": socket, **(extra_env or {})}
    done = subprocess.run([*driver, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
    return Call(done.returncode, done.stdout.decode(errors="replace"))


def options(flex_options: dict[str, str], read_only: bool = False,
            secret: dict[str, Any] | None = None, pod: str = "pod-a",
            volume_name: str = "vol") -> str:
    """The JSON kubelet passes to `mount` for a PV with these options (and its Secret)."""
    values = {"kubernetes.io/fsType": "", "kubernetes.io/readwrite": "ro" if read_only else "rw",
              "kubernetes.io/pvOrVolumeName": volume_name, "kubernetes.io/pod.name": pod,
              "kubernetes.io/pod.namespace": "default",
              "kubernetes.io/pod.uid": "0c2d3f4e-1111-2222-3333-444455556666",
              "kubernetes.io/serviceAccount.name": "default"}
    if secret is not None:
        assert secret["type"] == "cephmount/cephfs"  # GetSecretForPV checks the type
        for name, data in secret["data"].items():
            raw = base64.b64decode(data)  # the API server keeps the bytes
            values[f"kubernetes.io/secret/{name}"] = base64.b64encode(raw).decode()
    values.update(flex_options)
    return json.dumps(values)


def mount(target: Path, option_json: str, socket: str) -> Call:
    target.mkdir(mode=0o750, parents=True, exist_ok=True)  # kubelet's prepareForMount
    return run("mount", str(target), option_json, socket=socket)


def unmount(target: Path, socket: str) -> Call:
    return run("unmount", str(target), socket=socket)
