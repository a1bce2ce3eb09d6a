"""`connectors.pull.run_pull`: page by page, cursor after each stored page, resume after a failure.

The vendor side here is a scripted hook (a test double for a vendor module's `pull`); the real pulls run
against their peers (OpenBao in test_vault_live.py, Okta's contract in test_okta_live.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from casefile import live
from casefile.audit import verify
from casefile.case import create_case
from connectors import pull
from connectors.config import ConfigError, ConnectorSettings
from connectors.http import ServerError
from connectors.pull import Page
from tests.casefile import toy  # noqa: F401  (registers the toy format)

SETTINGS = ConnectorSettings(name="scripted", kind="okta", url="https://example.invalid")


def events(lo: int, hi: int) -> list[dict[str, Any]]:
    return [{"t": f"2025-08-12T10:00:{i:02d}Z", "id": f"e{i}", "action": "api.call"} for i in range(lo, hi)]


def scripted(fail_after: int | None, seen_cursors: list[Mapping[str, str]]) -> Any:
    async def hook(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
                   cursors: Mapping[str, str], on_journal: Any = None) -> AsyncIterator[Page]:
        seen_cursors.append(dict(cursors))
        start = int(cursors.get("events", "0"))
        for n, lo in enumerate(range(start, 30, 10)):
            if fail_after is not None and n == fail_after:
                raise ServerError("503 from scripted: try again later", connector="scripted", status=503)
            yield Page.json_lines("events", "toy-jsonl", events(lo, lo + 10), str(lo + 10), f"GET /e?after={lo}")

    return hook


def test_a_failed_pull_keeps_its_pages_and_the_next_one_resumes_after_them(tmp_path, monkeypatch):
    seen: list[Mapping[str, str]] = []
    monkeypatch.setattr(pull, "pull_hook", lambda kind: scripted(1, seen))
    with create_case(tmp_path / "c.stanch") as case:
        with pytest.raises(ServerError):
            pull.run_pull(case, SETTINGS, "secret-not-used")
        assert case.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 10
        assert live.cursors(case, "scripted") == {"events": "10"}
        monkeypatch.setattr(pull, "pull_hook", lambda kind: scripted(None, seen))
        done = pull.run_pull(case, SETTINGS, "secret-not-used")
        assert seen[-1] == {"events": "10"}
        assert done.pages == 2 and done.events_added == 20 and done.streams == {"events": "30"}
        assert case.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 30
        ops = [r[0] for r in case.conn.execute("SELECT operation FROM audit WHERE operation LIKE 'pull.%'")]
        assert ops == ["pull.start", "pull.cursor", "pull.failed", "pull.start", "pull.cursor", "pull.cursor",
                       "pull.done"]
        # --reset starts again from the beginning; everything dedupes.
        again = pull.run_pull(case, SETTINGS, "secret-not-used", reset=True)
        assert seen[-1] == {} and again.events_added == 0 and again.pages == 3
        assert not verify(case.conn)[2]


def test_a_kind_without_pull_says_which_can(tmp_path):
    with create_case(tmp_path / "c.stanch") as case, pytest.raises(ConfigError, match="cannot pull yet; kinds"):
        pull.run_pull(case, ConnectorSettings(name="gw", kind="gateway", url="https://gw.example"), "x")
