"""Keycloak events parser (`connectors/keycloak.py`, format `keycloak-events`).

Expected values are written from the raw fixture lines (quoted in comments), not copied from parser output.
Fixture provenance: tests/fixtures/keycloak/SOURCES.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.records import ACTIONS, Event, Parsed, Problem
from casefile.sources import FileSource
from connectors import keycloak

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "keycloak"
ELASTIC = FIX / "elastic_keycloak_test-log.log"
EVENTS = FIX / "keycloak-events.jsonl"
SERVER = FIX / "keycloak-server.log"
JSONLOG = FIX / "keycloak-json-log.jsonl"

SID = "b8e1d0c2-5a6f-4c3b-8e9d-0f1a2b3c4d5e"
ALICE = "3f1c2a4e-7b59-4e0f-9d6c-1a2b3c4d5e6f"
AT1 = "jti:keycloak/acme:0c8b6d4e-1111-4a2b-9c3d-aaaaaaaaaaa1"
AT2 = "jti:keycloak/acme:0c8b6d4e-1111-4a2b-9c3d-aaaaaaaaaaa2"
RT1 = "jti:keycloak/acme:7f3e2d1c-2222-4b3c-8d4e-bbbbbbbbbbb1"
RT2 = "jti:keycloak/acme:7f3e2d1c-2222-4b3c-8d4e-bbbbbbbbbbb2"


def run(path: Path) -> tuple[dict[int, Event], list[Problem]]:
    events: dict[int, Event] = {}
    problems: list[Problem] = []
    for r in keycloak.parse(FileSource(str(path))):
        if isinstance(r, Parsed):
            events[r.line] = r.event
        else:
            problems.append(r)
    return events, problems


def lines(tmp_path: Path, *text: str) -> tuple[dict[int, Event], list[Problem]]:
    p = tmp_path / "kc.log"
    p.write_text("\n".join(text) + "\n", encoding="utf-8")
    return run(p)


def test_registered() -> None:
    fmt = formats.get("keycloak-events")
    assert fmt is not None and fmt.vendor == "keycloak" and fmt.parse is keycloak.parse


# ------------------------------------------------------------------------------------------ Elastic sample


def test_elastic_sample_time_of_day_only_lines_are_malformed_not_dated() -> None:
    events, problems = run(ELASTIC)
    assert events == {}  # no line carries a date: nothing is placed on a guessed day
    assert [p.line for p in problems if p.kind == "skipped"] == list(range(1, 18))
    bad = [p for p in problems if p.kind == "malformed"]
    assert [p.line for p in bad] == list(range(18, 33))
    # line 18: `21:01:45,403 WARN  [org.keycloak.events] (default task-1) type=LOGIN_ERROR, ...`
    assert bad[0].reason.startswith("LOGIN_ERROR: time of day only ('21:01:45,403')")


def test_elastic_line_in_a_docker_wrapper_takes_the_wrapper_time(tmp_path: Path) -> None:
    # Elastic sample line 26, wrapped as Docker's json-file driver writes it.
    text = ("21:20:42,120 WARN  [org.keycloak.events] (default task-2) type=LOGIN_ERROR, realmId=test, clientId=test, "
            "userId=cc74404c-de7e-482a-98f7-b271ff3c49be, ipAddress=172.18.0.1, error=invalid_user_credentials, "
            "auth_method=openid-connect, auth_type=code, redirect_uri=http://127.0.0.1:8080, "
            "code_id=3a76b735-e324-42b1-aa15-7c1f69f22eb8, username=admin, "
            "authSessionParentId=3a76b735-e324-42b1-aa15-7c1f69f22eb8, authSessionTabId=oJpF-WjDC04")
    wrapped = json.dumps({"log": text + "\n", "stream": "stdout", "time": "2021-10-22T21:20:42.120945Z"})
    events, problems = lines(tmp_path, wrapped)
    assert problems == []
    ev = events[1]
    assert ev.time == "2021-10-22T21:20:42.120945Z"
    assert (ev.action, ev.outcome, ev.vendor_type) == ("auth.fail", "failure", "LOGIN_ERROR")
    assert ev.principal == "cc74404c-de7e-482a-98f7-b271ff3c49be" and ev.client == "test"
    assert ev.src_ip == "172.18.0.1"
    assert ev.extra["realm"] == "test" and ev.extra["error"] == "invalid_user_credentials"
    assert ev.extra["username"] == "admin"
    assert ev.credential is None and ev.subject is None
    assert keycloak.sniff([wrapped]) >= 0.5


# ------------------------------------------------------------------------------------------ event JSON


def test_event_json_fixture() -> None:
    events, problems = run(EVENTS)
    assert sorted(events) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    assert [(p.line, p.kind) for p in problems] == [(11, "skipped"), (14, "malformed"), (15, "malformed")]
    for ev in events.values():
        assert ev.vendor == "keycloak" and ev.action in ACTIONS and ev.time.endswith("Z") and ev.vendor_id

    # line 1: "time":1755429342123,"type":"LOGIN",...,"sessionId":"b8e1…","ipAddress":"203.0.113.7"
    login = events[1]
    assert login.time == "2025-08-17T11:15:42.123Z"
    assert (login.action, login.outcome, login.principal, login.client) == ("login", "success", ALICE, "web-portal")
    assert login.src_ip == "203.0.113.7" and login.session_id == SID and login.vendor_id == "e0a1"
    assert login.subject is not None and login.subject.keys == (f"session:keycloak/acme:{SID}",)
    assert login.subject.kind == "session" and login.subject.issued_at == "2025-08-17T11:15:42.123Z"

    # line 2: CODE_TO_TOKEN details.token_id …aaa1, refresh_token_id …bbb1, scope "openid profile"
    c2t = events[2]
    assert c2t.action == "token.issue" and c2t.credential is None
    assert c2t.subject is not None and c2t.subject.keys == (RT1,) and c2t.subject.kind == "refresh"
    assert c2t.subject.client == "web-portal" and c2t.subject.principal == ALICE
    assert c2t.subject.scopes == "openid profile" and c2t.subject.issued_at == "2025-08-17T11:15:42.456Z"
    assert c2t.extra["other_tokens"] == [[AT1]]
    assert c2t.session_id == SID  # the session is a field here, never a key

    # line 3: REFRESH_TOKEN refresh_token_id …bbb1 presented, updated_refresh_token_id …bbb2, from 198.51.100.23
    ref = events[3]
    assert ref.action == "token.refresh" and ref.src_ip == "198.51.100.23"
    assert ref.credential is not None and ref.credential.keys == (RT1,)
    assert ref.subject is not None and ref.subject.keys == (RT2,) and ref.subject.issued_at == "2025-08-17T11:20:01.000Z"
    assert ref.extra["other_tokens"] == [[AT2]]

    # line 4: REFRESH_TOKEN_ERROR "error":"invalid_token", refresh_token_id …bbb1
    err = events[4]
    assert (err.action, err.outcome, err.extra["error"]) == ("auth.fail", "failure", "invalid_token")
    assert err.credential is not None and err.credential.keys == (RT1,) and err.subject is None

    # line 5: CLIENT_LOGIN for billing-batch, token_id …aaa3, no refresh token
    cl = events[5]
    assert cl.action == "token.issue" and cl.client == "billing-batch"
    assert cl.subject is not None and cl.subject.keys == ("jti:keycloak/acme:0c8b6d4e-1111-4a2b-9c3d-aaaaaaaaaaa3",)
    assert cl.subject.kind == "access" and "other_tokens" not in cl.extra

    # line 6: INTROSPECT_TOKEN by resource-api of token …aaa3
    it = events[6]
    assert it.action == "token.use" and it.principal is None
    assert it.credential is not None and it.credential.keys == cl.subject.keys

    assert events[7].action == "token.issue"  # TOKEN_EXCHANGE
    # line 8: REVOKE_GRANT refresh_token_id …bbb2
    assert events[8].action == "token.revoke"
    assert events[8].subject is not None and events[8].subject.keys == (RT2,)
    # line 9: LOGOUT "clientId":null, sessionId b8e1…
    lo = events[9]
    assert lo.action == "logout" and lo.client is None
    assert lo.subject is not None and lo.subject.keys == (f"session:keycloak/acme:{SID}",)
    # line 10: LOGIN_ERROR "userId":null, details.username "mallory", "error":"user_not_found"
    le = events[10]
    assert (le.action, le.principal, le.extra["error"]) == ("auth.fail", "mallory", "user_not_found")


def test_admin_events() -> None:
    events, _ = run(EVENTS)
    # line 12: "operationType":"ACTION","resourceType":"CLIENT","resourcePath":"clients/5d6e…/client-secret",
    #          authDetails {"realmId":"master","clientId":"security-admin-console","userId":"0d0e…","ipAddress":"192.0.2.10"}
    rot = events[12]
    assert rot.time == "2025-08-17T11:40:00.000Z"
    assert (rot.action, rot.vendor_type, rot.outcome) == ("admin.change", "ACTION:CLIENT", "success")
    assert rot.principal == "0d0e0f10-4444-4d5e-9f60-dddddddddddd" and rot.client == "security-admin-console"
    assert rot.src_ip == "192.0.2.10"
    assert rot.resource == "clients/5d6e7f80-5555-4e6f-a071-eeeeeeeeeeee/client-secret"
    assert rot.extra["realm"] == "acme" and rot.extra["auth_realm"] == "master"
    # line 13: DELETE USER_SESSION sessions/b8e1…: an admin killed the session
    kill = events[13]
    assert kill.action == "token.revoke" and kill.vendor_type == "DELETE:USER_SESSION"
    assert kill.subject is not None and kill.subject.keys == (f"session:keycloak/acme:{SID}",)


# ------------------------------------------------------------------------------------------ text and JSON logs


def test_server_log_text_lines() -> None:
    events, problems = run(SERVER)
    assert sorted(events) == [2, 3, 4, 8, 9]
    assert [(p.line, p.kind) for p in problems] == [(1, "skipped"), (5, "skipped"), (6, "skipped"),
                                                    (7, "skipped"), (10, "malformed")]
    # line 3: 2025-08-17 11:15:42,456 … type="CODE_TO_TOKEN", realmId="acme", … token_id="…aaa1", refresh_token_id="…bbb1"
    c2t = events[3]
    assert c2t.time == "2025-08-17T11:15:42.456Z"  # no offset in the line: read as UTC
    assert c2t.action == "token.issue" and c2t.principal == ALICE and c2t.src_ip == "203.0.113.7"
    assert c2t.subject is not None and c2t.subject.keys == (RT1,) and c2t.extra["other_tokens"] == [[AT1]]
    assert c2t.extra["grant_type"] == "authorization_code"
    assert c2t.raw == SERVER.read_text().splitlines()[2]
    # line 4: userId="null", username="alice", error="invalid_user_credentials"
    assert (events[4].action, events[4].principal) == ("auth.fail", "alice")
    # line 8: operationType="UPDATE", resourceType="CLIENT", resourcePath="clients/5d6e…" (unquoted admin text)
    adm = events[8]
    assert (adm.action, adm.vendor_type, adm.resource) == (
        "admin.change", "UPDATE:CLIENT", "clients/5d6e7f80-5555-4e6f-a071-eeeeeeeeeeee")
    assert adm.principal == "0d0e0f10-4444-4d5e-9f60-dddddddddddd" and adm.client == "security-admin-console"
    # line 9: unquoted (pre-24) values: type=LOGOUT, clientId=null
    assert events[9].action == "logout" and events[9].client is None
    assert events[9].subject is not None and events[9].subject.keys == (f"session:keycloak/acme:{SID}",)


def test_json_log_records() -> None:
    events, problems = run(JSONLOG)
    assert sorted(events) == [2, 3]
    assert [(p.line, p.kind) for p in problems] == [(1, "skipped"), (4, "skipped")]
    # line 3: "@timestamp":"2025-08-17T11:20:01.000000000Z", message type="REFRESH_TOKEN" … updated_refresh_token_id=…bbb2
    ev = events[3]
    assert ev.time == "2025-08-17T11:20:01.000000000Z"
    assert ev.action == "token.refresh"
    assert ev.credential is not None and ev.credential.keys == (RT1,)
    assert ev.subject is not None and ev.subject.keys == (RT2,)
    assert isinstance(ev.raw, dict) and ev.raw["log.logger"] == "org.keycloak.events"


def test_rest_array(tmp_path: Path) -> None:
    items = [json.loads(x) for x in EVENTS.read_text().splitlines()[:3]]
    p = tmp_path / "events.json"
    p.write_text(json.dumps(items, indent=2), encoding="utf-8")
    assert keycloak.sniff(FileSource(str(p)).head()) >= 0.5
    events, problems = run(p)
    assert problems == [] and sorted(events) == [1, 2, 3]  # array items are numbered 1, 2, 3
    assert events[2].subject is not None and events[2].subject.keys == (RT1,)
    p.write_text(json.dumps(items)[:-40], encoding="utf-8")  # truncated
    events, problems = run(p)
    assert sorted(events) == [1, 2] and [(x.line, x.kind) for x in problems] == [(3, "malformed")]


# ------------------------------------------------------------------------------------------ mapping


@pytest.mark.parametrize("vendor_type,action", [
    ("LOGIN", "login"), ("LOGIN_ERROR", "auth.fail"), ("CODE_TO_TOKEN", "token.issue"),
    ("CLIENT_LOGIN", "token.issue"), ("TOKEN_EXCHANGE", "token.issue"), ("REFRESH_TOKEN", "token.refresh"),
    ("REFRESH_TOKEN_ERROR", "auth.fail"), ("INTROSPECT_TOKEN", "token.use"), ("USER_INFO_REQUEST", "token.use"),
    ("REVOKE_GRANT", "token.revoke"), ("LOGOUT", "logout"), ("IMPERSONATE", "login"),
    ("OAUTH2_DEVICE_CODE_TO_TOKEN", "token.issue"), ("CLIENT_UPDATE", "admin.change"),
    ("UPDATE_PASSWORD", "admin.change"), ("REGISTER", "other"), ("SEND_RESET_PASSWORD", "other"),
])
def test_action_mapping(vendor_type: str, action: str) -> None:
    assert keycloak.action_of(vendor_type) == action


def test_password_grant_login_mints_tokens(tmp_path: Path) -> None:
    line = json.dumps({"time": 1755429342000, "type": "LOGIN", "realmId": "acme", "clientId": "cli",
                       "userId": "u1", "sessionId": "s1", "ipAddress": "192.0.2.1",
                       "details": {"grant_type": "password", "token_id": "t1", "refresh_token_id": "r1"}})
    ev = lines(tmp_path, line)[0][1]
    assert ev.action == "login"
    assert ev.subject is not None and ev.subject.keys == ("jti:keycloak/acme:r1",)
    assert ev.extra["other_tokens"] == [["jti:keycloak/acme:t1"]]
    assert ev.extra["session_key"] == "session:keycloak/acme:s1"


def test_no_raw_secret_outside_raw(tmp_path: Path) -> None:
    # An admin CREATE CLIENT event with details enabled carries the client secret in `representation`.
    rec = {"time": 1755429342000, "realmId": "acme", "operationType": "CREATE", "resourceType": "CLIENT",
           "resourcePath": "clients/c1", "authDetails": {"userId": "a1", "ipAddress": "192.0.2.1"},
           "representation": '{"clientId":"evil","secret":"s3cr3t-Value-XYZ"}'}
    ev = lines(tmp_path, json.dumps(rec))[0][1]
    fields = dataclasses.asdict(ev)
    fields.pop("raw")
    assert "s3cr3t-Value-XYZ" not in json.dumps(fields)


def test_bad_lines(tmp_path: Path) -> None:
    events, problems = lines(
        tmp_path,
        "",
        "{broken",
        '{"type":"LOGIN","realmId":"acme","time":"yesterday"}',
        '{"hello":"world"}',
        "2025-08-17 11:15:42,123 DEBUG [org.keycloak.events] (t) type=LOGIN, realmId=acme, userId=u",
    )
    assert sorted(events) == [5]
    assert [(p.line, p.kind) for p in problems] == [(1, "skipped"), (2, "malformed"), (3, "malformed"),
                                                    (4, "malformed")]
    assert problems[2].reason.startswith("LOGIN: unreadable time")


# ------------------------------------------------------------------------------------------ sniff

OKTA_LINE = ('{"uuid":"11111111-2222-3333-4444-555555555555","published":"2025-08-17T11:15:42.123Z",'
             '"eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"a@example.com"},'
             '"outcome":{"result":"SUCCESS"}}')
VAULT_LINE = ('{"time":"2025-08-17T11:15:42.123456Z","type":"request","auth":{"client_token":"hmac-sha256:ab",'
              '"accessor":"hmac-sha256:cd"},"request":{"id":"r1","operation":"read","path":"secret/data/x"}}')
NGINX_LINE = ('{"time_iso8601":"2025-08-17T11:15:42+00:00","remote_addr":"192.0.2.1","request_method":"GET",'
              '"request_uri":"/api","status":200,"body_bytes_sent":12,"http_user_agent":"curl/8"}')
OIDC_LINE = ('{"ts":"2026-11-29T03:59:03.647Z","event":"client_credentials.saved","kind":"ClientCredentials",'
             '"client_id":"ir-app","token_fp":"7890149987d5b710"}')


@pytest.mark.parametrize("line", [OKTA_LINE, VAULT_LINE, NGINX_LINE, OIDC_LINE],
                         ids=["okta", "vault", "nginx", "oidc"])
def test_sniff_rejects_other_vendors(line: str) -> None:
    assert keycloak.sniff([line]) < 0.5


@pytest.mark.parametrize("path", [ELASTIC, EVENTS, SERVER, JSONLOG], ids=lambda p: p.name)
def test_sniff_claims_fixtures(path: Path) -> None:
    assert keycloak.sniff(FileSource(str(path)).head()) >= 0.5
