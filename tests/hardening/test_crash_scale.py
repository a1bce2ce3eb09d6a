"""kill -9 at random points, several times over one ingest and one apply (issue 12, "Crashes"): the CI slice of
`python -m tests.hardening --full` (1,000,000 events killed 20 times; 1,000 revocations killed 20 times). See
tests/hardening/crash.py for what each kill must leave behind.

The apply runs against a real OpenBao 2.7.2 (`bao`); locally it skips when `bao` is missing, under CI=true it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.__main__ import make_input
from tests.connectors.test_vault_live import bao
from tests.hardening import crash

pytestmark = pytest.mark.timeout(900)
__all__ = ["bao"]  # the fixture, imported for pytest

SEED = 12


def test_ingest_killed_four_times_keeps_every_commit_and_the_last_run_adds_exactly_the_missing_events(
        tmp_path: Path) -> None:
    n = 100_000
    events = make_input("gateway", n, tmp_path)
    figures = crash.ingest_kills(events, n, tmp_path / "kills", kills=4, seed=SEED, chunk_lines=4000)
    assert figures["kills"] == 4 and figures["last_run_added"] == n - figures["stored_at_kills"][-1]


@pytest.mark.peer
def test_apply_killed_five_times_revokes_every_item_once_unless_in_flight(bao: tuple[str, Path],
                                                                           tmp_path: Path) -> None:
    base, audit = bao
    figures = crash.apply_kills(base, audit, 200, tmp_path / "apply", kills=5, seed=SEED)
    assert figures["kills"] >= 3
