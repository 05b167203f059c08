"""When the dev cluster counts as ready (pure logic, on recorded answers)."""

from __future__ import annotations

from typing import Any

import pytest

from cephmount.devcluster import _health_ok


class RecordedAdmin:
    def __init__(self, states: dict[str, int]) -> None:
        self._answers: dict[str, Any] = {
            "health": {"status": "HEALTH_OK"},
            "pg stat": {"pg_summary": {"num_pg_by_state": [
                {"name": name, "num": num} for name, num in states.items()]}},
        }

    def mon(self, prefix: str) -> Any:
        return self._answers[prefix]


@pytest.mark.parametrize("states", [
    {"active+clean": 17},
    {"active+clean": 15, "active+clean+snaptrim": 1, "active+clean+snaptrim_wait": 1},
    {"active+clean": 16, "active+clean+scrubbing": 1},
])
def test_clean_pgs_trimming_snapshots_are_ready(states: dict[str, int]) -> None:
    assert _health_ok(RecordedAdmin(states))  # type: ignore[arg-type]


@pytest.mark.parametrize("states", [
    {}, {"active+clean": 16, "peering": 1}, {"active+undersized+degraded": 17},
    {"active+clean": 16, "active+recovering": 1},
])
def test_pgs_not_active_and_clean_are_not(states: dict[str, int]) -> None:
    assert not _health_ok(RecordedAdmin(states))  # type: ignore[arg-type]
