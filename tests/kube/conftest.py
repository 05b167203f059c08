"""The kube tests run the driver against a node daemon of their own (tests/daemon)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cephmount.devcluster import ClientEnv
from tests.daemon.conftest import DaemonProcess, running_daemon

# What a node admin would allow: the dev cluster's filesystem and its csi group.
POLICY = {"filesystems": ["cephfs"], "subvolume_groups": ["csi"], "paths": ["/volumes/csi"]}


@pytest.fixture
def kube_daemon(client_env: ClientEnv) -> Iterator[DaemonProcess]:
    with running_daemon(client_env, json.dumps(POLICY)) as process:
        yield process
