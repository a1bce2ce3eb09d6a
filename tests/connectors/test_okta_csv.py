"""Okta Admin Console System Log CSV parser (`connectors/okta.py`, format `okta-csv`).

The fixture is hand-made (tests/fixtures/okta/SOURCES.md): Okta's column names are not in a stored primary
source, so the parser reads human labels and the LogEvent's dotted paths alike. Expected values are written from
the raw CSV cells (quoted in comments), not copied from parser output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.records import Event, Parsed, Problem
from casefile.sources import FileSource
from connectors import okta

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "okta"
CSV = FIX / "okta-admin-export.csv"


def run(path: Path) -> tuple[dict[int, Event], list[Problem]]:
    events: dict[int, Event] = {}
    problems: list[Problem] = []
    for r in okta.parse_csv(FileSource(str(path))):
        if isinstance(r, Parsed):
            events[r.line] = r.event
        else:
            problems.append(r)
    return events, problems


def test_registered() -> None:
    fmt = formats.get("okta-csv")
    assert fmt is not None and fmt.vendor == "okta" and fmt.splittable is None


def test_fixture() -> None:
    events, problems = run(CSV)
    assert sorted(events) == [2, 3, 4, 6, 7]
    assert [(p.line, p.kind) for p in problems] == [(1, "skipped"), (5, "skipped"), (8, "malformed"),
                                                    (9, "malformed")]
    assert problems[0].reason == "CSV header"
    assert problems[2].reason == "user.session.start: unreadable published time 'redacted'"
    assert problems[3].reason == "6 cells, the header has 16"

    # line 2: 2025-08-17T11:15:42.123Z,Alice Example,alice@example.com,…,user.session.start,…,SUCCESS,,203.0.113.7,,
    #         "Mozilla/5.0 …",Lisbon,Portugal,,6b0c5e2a-…
    ev = events[2]
    assert ev.time == "2025-08-17T11:15:42.123Z"
    assert (ev.action, ev.outcome, ev.vendor, ev.vendor_type) == ("login", "success", "okta", "user.session.start")
    assert ev.principal == "alice@example.com" and ev.src_ip == "203.0.113.7"
    assert (ev.country, ev.city) == ("Portugal", "Lisbon")
    assert ev.user_agent == "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
    assert ev.vendor_id == "6b0c5e2a-7b1d-11f0-8de9-0242ac120002"
    assert isinstance(ev.raw, dict) and ev.raw["Actor Alternate ID"] == "alice@example.com"

    # line 3: user.authentication.auth_via_mfa FAILURE, reason INVALID_CREDENTIALS
    assert (events[3].action, events[3].outcome) == ("auth.fail", "failure")
    assert events[3].extra["outcome_reason"] == "INVALID_CREDENTIALS"

    # line 4: system.api_token.create, Target cell = JSON [{"id":"00T1bjatrp6Nl1dOc5d7","type":"Token",…}]
    tok = events[4]
    assert tok.action == "token.issue" and tok.principal == "deploy-bot@example.com"
    assert tok.subject is not None and tok.subject.keys == ("okta-token:00T1bjatrp6Nl1dOc5d7",)
    assert tok.subject.kind == "api-key" and tok.subject.issued_at == "2025-08-17T11:20:00.500Z"

    # line 6: app.oauth2.as.token.grant.refresh_token, Client ID 0oa5b6…, Target "Portal App (AppInstance)"
    rt = events[6]
    assert rt.action == "token.refresh" and rt.client == "0oa5b6c7d8e9f0g1h2i3"
    assert rt.extra["target"] == "Portal App (AppInstance)"
    assert events[7].action == "logout"  # user.session.end


def test_same_canonical_fields_as_the_json_event(tmp_path: Path) -> None:
    # The CSV row of line 4 and the LogEvent it stands for map to the same action, subject and principal.
    logevent = {"uuid": "8d2e7a4c-7b1d-11f0-8de9-0242ac120002", "published": "2025-08-17T11:20:00.500Z",
                "eventType": "system.api_token.create", "actor": {"alternateId": "deploy-bot@example.com"},
                "client": {"ipAddress": "192.0.2.50"}, "outcome": {"result": "SUCCESS"},
                "target": [{"id": "00T1bjatrp6Nl1dOc5d7", "type": "Token"}]}
    p = tmp_path / "one.jsonl"
    p.write_text(json.dumps(logevent) + "\n")
    from_json = next(r for r in okta.parse(FileSource(str(p))) if isinstance(r, Parsed)).event
    from_csv = run(CSV)[0][4]
    for field in ("time", "action", "outcome", "principal", "src_ip", "vendor_type", "vendor_id"):
        assert getattr(from_csv, field) == getattr(from_json, field), field
    assert from_csv.subject is not None and from_json.subject is not None
    assert from_csv.subject.keys == from_json.subject.keys


def test_dotted_header(tmp_path: Path) -> None:
    p = tmp_path / "dotted.csv"
    p.write_text(
        "uuid,published,eventType,displayMessage,actor.alternateId,client.ipAddress,outcome.result,"
        "transaction.detail.requestApiTokenId\n"
        "u-1,2025-08-17T12:00:00.000Z,system.org.rate_limit.warning,Rate limit warning,ops@example.com,"
        "192.0.2.9,SUCCESS,00T1bjatrp6Nl1dOc5d7\n",
        encoding="utf-8",
    )
    assert okta.sniff_csv(FileSource(str(p)).head()) >= 0.5
    events, problems = run(p)
    ev = events[2]
    # a request made with an SSWS API token: api.call, credential okta-token:00T…
    assert ev.action == "api.call" and ev.principal == "ops@example.com" and ev.src_ip == "192.0.2.9"
    assert ev.credential is not None and ev.credential.keys == ("okta-token:00T1bjatrp6Nl1dOc5d7",)


def test_quoted_multiline_cell_keeps_the_record_start_line(tmp_path: Path) -> None:
    p = tmp_path / "ml.csv"
    p.write_text(
        "Date,Actor Alternate ID,Event Type,Display Message,UUID\n"
        '2025-08-17T12:00:00Z,a@example.com,user.session.start,"two\nlines",u-1\n'
        "2025-08-17T12:00:01Z,a@example.com,user.session.end,x,u-2\n",
        encoding="utf-8",
    )
    events, problems = run(p)
    assert problems == [Problem(1, "skipped", "CSV header")]
    assert sorted(events) == [2, 4] and events[4].action == "logout"


def test_not_an_okta_header(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n1,2,3\n")
    events, problems = run(p)
    assert events == {} and [(x.line, x.kind) for x in problems] == [(1, "malformed")]


@pytest.mark.parametrize("head", [
    # Salesforce EventLogFile CSV header
    '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","ORGANIZATION_ID","USER_ID","RUN_TIME","CPU_TIME","URI","CLIENT_IP"',
    # an Okta LogEvent JSON line
    '{"uuid":"1","published":"2025-08-17T11:15:42.123Z","eventType":"user.session.start","actor":{"id":"00u1"}}',
    # a Vault audit line
    '{"time":"2025-08-17T11:15:42.123456Z","type":"request","auth":{"client_token":"hmac-sha256:ab"}}',
    # an nginx JSON line
    '{"time_iso8601":"2025-08-17T11:15:42+00:00","remote_addr":"192.0.2.1","request_uri":"/api","status":200}',
    # an nginx combined line
    '192.0.2.1 - - [17/Aug/2025:11:15:42 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8"',
], ids=["salesforce-csv", "okta-json", "vault", "nginx-json", "nginx-combined"])
def test_sniff_rejects_other_formats(head: str) -> None:
    assert okta.sniff_csv([head]) < 0.5


def test_json_sniff_does_not_claim_the_csv() -> None:
    assert okta.sniff(FileSource(str(CSV)).head()) < 0.5
