"""Google Workspace Reports API parser (`connectors/google.py`, format `google-reports`).

Expected values are written from the raw JSON of the hand-made fixtures (quoted in comments), not copied from parser
output. Fixture provenance: tests/fixtures/google/SOURCES.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.records import ACTIONS, OUTCOMES, Event, Parsed, Problem
from casefile.sources import FileSource
from connectors import google

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "google"
LINES = FIX / "handmade_reports_activities.jsonl"
PAGE = FIX / "handmade_activities_list_page.json"
CLIENT = "123456789012-a1b2c3d4e5f6g7h8i9j0klmnopqrstuv.apps.googleusercontent.com"

OKTA_LINE = ('{"uuid":"f0e1d2c3-0000-1111-2222-333344445555","published":"2025-08-17T11:15:42.123Z",'
             '"eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"a@example.com"},'
             '"outcome":{"result":"SUCCESS"},"client":{"ipAddress":"203.0.113.5"}}')
VAULT_LINE = ('{"time":"2025-08-17T11:15:42.123456Z","type":"request","auth":{"accessor":"hmac-sha256:ab",'
              '"display_name":"token"},"request":{"id":"r1","operation":"read","path":"secret/data/x",'
              '"remote_address":"203.0.113.5"}}')
NGINX_LINE = ('{"time_local":"17/Aug/2025:11:15:42 +0000","remote_addr":"203.0.113.5","request":"GET / HTTP/1.1",'
              '"status":200,"body_bytes_sent":512,"http_user_agent":"curl/8.5.0"}')
GITHUB_LINE = ('{"@timestamp":1755429342123,"_document_id":"hK3rZ0cVq1mD4sT6uW8yAa","action":"git.clone",'
               '"actor":"mallory-dev","actor_ip":"203.0.113.50","org":"acme-corp","repo":"acme-corp/payments-api"}')


def run_path(path: Path) -> tuple[list[tuple[int, Event]], list[Problem]]:
    events: list[tuple[int, Event]] = []
    problems: list[Problem] = []
    for r in google.parse(FileSource(str(path))):
        if isinstance(r, Parsed):
            assert (r.event.vendor_id is None) == (r.id_text is not None)
            events.append((r.line, r.event))
        else:
            problems.append(r)
    return events, problems


def by_line(path: Path) -> dict[int, list[Event]]:
    out: dict[int, list[Event]] = {}
    for line, ev in run_path(path)[0]:
        out.setdefault(line, []).append(ev)
    return out


def write(tmp_path: Path, text: str, name: str = "in.jsonl") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def activity(name: str, app: str = "token", **extra) -> dict:
    return {"kind": "admin#reports#activity",
            "id": {"time": "2025-08-17T11:15:42.123Z", "uniqueQualifier": "77", "applicationName": app},
            "actor": {"email": "a@example.com"}, "ipAddress": "203.0.113.5",
            "events": [{"name": name, "parameters": [{"name": "client_id", "value": "c-1"}]}], **extra}


# ------------------------------------------------------------------------------------------------ fixtures


def test_registered() -> None:
    fmt = formats.get("google-reports")
    assert fmt is not None and fmt.vendor == "google" and fmt.parse is google.parse


def test_every_event_is_canonical() -> None:
    for path in (LINES, PAGE):
        for _, ev in run_path(path)[0]:
            assert ev.vendor == "google" and ev.action in ACTIONS and ev.outcome in OUTCOMES
            assert ev.time.endswith("Z") and ev.vendor_id and ev.credential is None and ev.subject is None


def test_authorize_is_token_issue() -> None:
    # line 1: "id":{"time":"2025-08-17T11:15:42.123Z","uniqueQualifier":"-4002873813067783265","applicationName":"token"},
    # "actor":{"email":"alice@example.com"}, "ipAddress":"203.0.113.50", events[0]: "name":"authorize",
    # client_id CLIENT, app_name "Mail Merge Pro", client_type "WEB",
    # scope multiValue [".../auth/gmail.readonly", ".../auth/drive"]
    [ev] = by_line(LINES)[1]
    assert ev.time == "2025-08-17T11:15:42.123Z"
    assert (ev.action, ev.outcome, ev.vendor_type) == ("token.issue", "success", "token.authorize")
    assert ev.principal == "alice@example.com" and ev.src_ip == "203.0.113.50" and ev.client == CLIENT
    assert ev.extra["scopes"] == ("https://www.googleapis.com/auth/gmail.readonly "
                                  "https://www.googleapis.com/auth/drive")
    assert ev.extra["app_name"] == "Mail Merge Pro" and ev.extra["client_type"] == "WEB"
    assert ev.vendor_id == "token:2025-08-17T11:15:42.123Z:-4002873813067783265:0"


def test_token_activity_and_revoke() -> None:
    lines = by_line(LINES)
    # line 2: "name":"activity", "method_name":"gmail.users.messages.list", "num_response_bytes" intValue "52344"
    [use] = lines[2]
    assert (use.action, use.resource, use.bytes, use.client) == ("api.call", "gmail.users.messages.list", 52344, CLIENT)
    # line 3: "time":"2025-08-17T12:01:00Z", actor admin@example.com, "ipAddress":"198.51.100.7", "name":"revoke"
    [rev] = lines[3]
    assert (rev.action, rev.time, rev.principal, rev.src_ip) == (
        "token.revoke", "2025-08-17T12:01:00Z", "admin@example.com", "198.51.100.7")
    assert rev.client == CLIENT


def test_login_activity_with_two_events() -> None:
    # line 4: "time":"2025-08-17T09:00:00.000-04:00", "uniqueQualifier":"2310984417759160001", actor bob@example.com,
    # "ipAddress":"2001:db8::7", events: login_verification (login_challenge_status "passed"), login_success
    verify, success = by_line(LINES)[4]
    assert verify.time == success.time == "2025-08-17T13:00:00.000Z"
    assert (verify.action, verify.outcome) == ("other", "success")
    assert (success.action, success.outcome, success.principal, success.src_ip) == (
        "login", "success", "bob@example.com", "2001:db8::7")
    assert verify.vendor_id != success.vendor_id
    assert success.vendor_id is not None and success.vendor_id.endswith(":2310984417759160001:1")
    assert success.extra["login_challenge_method"] == ["password", "security_key"]


def test_login_failure_and_logout() -> None:
    lines = by_line(LINES)
    # line 5: "time":"2025-08-17T13:30:10.250Z", "name":"login_failure", "login_failure_type":"login_failure_invalid_password"
    [fail] = lines[5]
    assert (fail.action, fail.outcome, fail.time) == ("auth.fail", "failure", "2025-08-17T13:30:10.250Z")
    assert fail.extra["login_failure_type"] == "login_failure_invalid_password" and fail.extra["is_suspicious"] is True
    # line 6: "name":"logout"
    assert lines[6][0].action == "logout"


def test_bad_lines_become_problems() -> None:
    events, problems = run_path(LINES)
    assert len(events) == 7
    assert [(p.line, p.kind) for p in problems] == [(7, "skipped"), (8, "malformed"), (9, "malformed"), (10, "malformed")]
    assert problems[1].reason.startswith("activity has no `id` object")
    assert problems[2].reason.startswith("login: unreadable id.time 'yesterday'")
    assert problems[3].reason.startswith("not JSON")


def test_pretty_printed_list_page() -> None:
    # items[0]: "time":"2025-08-18T08:00:00.001Z", actor bob@example.com, "ipAddress":"198.51.100.23", "authorize",
    # client_type "NATIVE_DESKTOP", scope ["https://www.googleapis.com/auth/calendar", "openid"];
    # items[1]: "revoke"; items[2]: "login_success" at "2025-08-18T08:10:00Z"
    events, problems = run_path(PAGE)
    assert problems == []
    assert [(line, ev.action) for line, ev in events] == [(1, "token.issue"), (2, "token.revoke"), (3, "login")]
    first = events[0][1]
    assert first.time == "2025-08-18T08:00:00.001Z" and first.src_ip == "198.51.100.23"
    assert first.extra["scopes"] == "https://www.googleapis.com/auth/calendar openid"
    assert events[2][1].time == "2025-08-18T08:10:00Z"


# ------------------------------------------------------------------------------------------------ other shapes


def test_list_page_on_one_line_and_empty_page(tmp_path: Path) -> None:
    page = json.loads(PAGE.read_text(encoding="utf-8"))
    text = json.dumps(page) + "\n" + json.dumps({"kind": "admin#reports#activities", "etag": "x"}) + "\n"
    events, problems = run_path(write(tmp_path, text))
    assert [line for line, _ in events] == [1, 1, 1]
    assert len({ev.vendor_id for _, ev in events}) == 3
    assert problems == [Problem(2, "skipped", "activities list page with no items")]


def test_array_of_activities_and_single_event_object(tmp_path: Path) -> None:
    # Collectors that split activities give `events` as one object rather than a list: accepted.
    split = activity("revoke")
    split["events"] = split["events"][0]
    arr = write(tmp_path, json.dumps([activity("authorize"), split], indent=2), "arr.json")
    assert google.sniff(FileSource(str(arr)).head()) >= 0.5
    events, problems = run_path(arr)
    assert problems == [] and [(line, ev.action) for line, ev in events] == [(1, "token.issue"), (2, "token.revoke")]
    assert events[1][1].client == "c-1"


def test_pretty_pages_back_to_back_and_truncated(tmp_path: Path) -> None:
    text = PAGE.read_text(encoding="utf-8")
    two = write(tmp_path, text + text, "two.json")
    events, problems = run_path(two)
    assert problems == [] and [line for line, _ in events] == [1, 2, 3, 4, 5, 6]
    cut = write(tmp_path, text[: text.index('"3333333333333333333"')], "cut.json")
    events, problems = run_path(cut)
    assert [line for line, _ in events] == [1, 2]
    assert len(problems) == 1 and problems[0].line == 3 and problems[0].kind == "malformed"


def test_activity_without_qualifier_gets_id_text(tmp_path: Path) -> None:
    rec = activity("authorize")
    del rec["id"]["uniqueQualifier"]
    rec["events"].append({"name": "revoke"})
    results = list(google.parse(FileSource(str(write(tmp_path, json.dumps(rec) + "\n")))))
    assert all(isinstance(r, Parsed) for r in results) and len(results) == 2
    texts = [r.id_text for r in results if isinstance(r, Parsed)]
    assert texts[0] and texts[1] and texts[0] != texts[1]


# ------------------------------------------------------------------------------------------------ mapping


@pytest.mark.parametrize(
    "app,name,params,action",
    [
        ("token", "authorize", {}, "token.issue"),
        ("token", "revoke", {}, "token.revoke"),
        ("token", "activity", {}, "api.call"),
        ("token", "request", {}, "api.call"),
        ("login", "login_success", {}, "login"),
        ("login", "login_failure", {}, "auth.fail"),
        ("login", "logout", {}, "logout"),
        ("login", "login_challenge", {"login_challenge_status": "Challenge Failed."}, "auth.fail"),
        ("login", "login_verification", {"login_challenge_status": "passed"}, "other"),
        ("login", "suspicious_login", {}, "other"),
        ("admin", "CHANGE_APPLICATION_SETTING", {}, "admin.change"),
        ("drive", "download", {}, "other"),
    ],
)
def test_action_mapping(app: str, name: str, params: dict, action: str) -> None:
    assert google.action_for(app, name, None, params) == action


def test_login_type_password_change_is_admin_change() -> None:
    assert google.action_for("login", "password_edit", "password_change") == "admin.change"
    assert google.action_for("login", "2sv_disable", "2sv_change") == "admin.change"


# ------------------------------------------------------------------------------------------------ sniff


@pytest.mark.parametrize("path", [LINES, PAGE], ids=lambda p: p.name)
def test_sniff_claims_fixtures(path: Path) -> None:
    assert google.sniff(FileSource(str(path)).head()) >= 0.5


@pytest.mark.parametrize("line", [OKTA_LINE, VAULT_LINE, NGINX_LINE, GITHUB_LINE], ids=["okta", "vault", "nginx", "github"])
def test_sniff_rejects_other_vendors(line: str) -> None:
    assert google.sniff([line]) < 0.5
    assert google.sniff(["[", *json.dumps(json.loads(line), indent=2).splitlines()]) < 0.5
