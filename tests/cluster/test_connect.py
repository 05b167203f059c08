"""What `cephmount.fs.mount.connect` sets up in the libcephfs client of a mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from cephmount.devcluster import ClientEnv
from cephmount.fs import mount as fs_mount
from cephmount.fs.options import MountOptions, Source

pytestmark = pytest.mark.cluster


def _connected_log_levels(env: ClientEnv, conf: Path) -> dict[str, str]:
    source = Source(env.client_id, env.fs_name, path=env.subvolume_path)
    options = MountOptions(conf=str(conf), keyring=str(env.keyring))
    client = fs_mount.connect(source, options, "test-connect")
    try:
        return {option: client.conf_get(option) for option in fs_mount.QUIET_LOGS}
    finally:
        client.close()


def test_the_client_keeps_no_memory_log_of_its_requests(client_env: ClientEnv) -> None:
    """Ceph gathers `client` entries up to level 5 in memory by default ("0/5"): a
    formatted entry and a wake of its log thread per request. A mount's client does not."""
    levels = _connected_log_levels(client_env, client_env.conf)
    assert levels == dict.fromkeys(fs_mount.QUIET_LOGS, "0/0")


def test_a_log_the_conf_asks_for_is_kept(client_env: ClientEnv, tmp_path: Path) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text(client_env.conf.read_text() + "\n[client]\ndebug_client = 1/5\n")
    levels = _connected_log_levels(client_env, conf)
    assert levels["debug_client"] == "1/5"
    assert levels["debug_objectcacher"] == "0/0"
