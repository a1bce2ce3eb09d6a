"""`casefile.live`: pulled pages go through the same ingest as files, cursors move only after a page is
stored, and snapshots are redacted and audited. (Vendor-free: the pages here are in the test format of
tests/casefile/toy.py; the real pulls are tested against their peers in tests/connectors.)"""

from __future__ import annotations

import orjson
import pytest

from casefile import live
from casefile.audit import verify
from casefile.case import CaseError, create_case
from casefile.ingest import ingest
from tests.casefile import toy  # noqa: F401  (registers the toy format)
from tests.conftest import fake_token


def page(*events: dict) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def test_a_page_is_ingested_like_a_file_and_dedupes_with_it(tmp_path):
    ev = [{"t": f"2025-08-12T10:00:0{i}Z", "id": f"e{i}", "action": "api.call"} for i in range(3)]
    exported = tmp_path / "export.jsonl"
    exported.write_bytes(page(*ev))
    with create_case(tmp_path / "c.stanch") as case:
        s = live.store_page(case, "conn", "events", "toy-jsonl", page(*ev[:2]), "cursor-1", "GET /events")
        assert s.events_added == 2 and s.error is None
        assert live.cursors(case, "conn") == {"events": "cursor-1"}
        # The same events in an exported file add only the one the pull had not seen.
        (summary,) = ingest(case, [str(exported)], "toy-jsonl")
        assert summary.events_added == 1 and summary.duplicates == 2
        # The same page again is recognised and adds nothing; the cursor moves on.
        again = live.store_page(case, "conn", "events", "toy-jsonl", page(*ev[:2]), "cursor-2", "GET /events")
        assert again.already_ingested and live.cursors(case, "conn") == {"events": "cursor-2"}
        path = case.conn.execute("SELECT path FROM sources ORDER BY id LIMIT 1").fetchone()[0]
        assert path == "pull:conn/events GET /events"
        assert not verify(case.conn)[2]
        assert live.forget_cursors(case, "conn") == 1 and live.cursors(case, "conn") == {}


def test_a_bad_line_in_a_page_is_counted_and_an_unknown_format_keeps_the_cursor(tmp_path):
    with create_case(tmp_path / "c.stanch") as case:
        s = live.store_page(case, "conn", "events", "toy-jsonl",
                            page({"t": "2025-08-12T10:00:00Z", "id": "a", "action": "api.call"}) + b"{nope\n",
                            "c1", "GET /events")
        assert s.events_added == 1 and s.malformed == 1 and s.problems[0]["line"] == 2
        with pytest.raises(CaseError, match="no parser registers"):
            live.store_page(case, "conn", "events", "no-such-format", b"{}\n", "c2", "GET /events")
        assert live.cursors(case, "conn") == {"events": "c1"}


def test_snapshots_are_redacted_audited_and_refuse_a_secret_target(tmp_path):
    token = fake_token("ghp_")
    with create_case(tmp_path / "c.stanch") as case:
        n = live.store_snapshot(case, "gh", "github.token", "12345",
                                {"id": 12345, "token": token, "note": f"leaked {token}", "scopes": ["repo"]})
        (snap,) = live.snapshots(case, "12345")
        assert snap["id"] == n and snap["body"]["scopes"] == ["repo"] and snap["body"]["id"] == 12345
        text = case.conn.execute("SELECT body FROM snapshots").fetchone()[0]
        assert token not in text and "[redacted sha256:" in text
        with pytest.raises(CaseError, match="secret"):
            live.store_snapshot(case, "gh", "github.token", token, {})
        assert not verify(case.conn)[2]
