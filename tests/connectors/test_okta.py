"""Okta System Log parser (`connectors/okta.py`, format `okta-system-log`).

Expected values are written from the raw JSON of the fixtures (quoted in comments), not copied from parser
output. Fixture provenance: tests/fixtures/okta/SOURCES.md.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.records import ACTIONS, OUTCOMES, Event, Parsed, Problem
from casefile.sources import FileSource
from connectors import okta

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "okta"
APPOMNI = FIX / "appomni_okta_system_log_A.jsonl"
ELASTIC = FIX / "elastic_okta_test-okta-system-events_lines1-9.log"
PANTHER = FIX / "panther_okta_system_log_A.jsonl"
ARRAY = FIX / "appomni_okta_system_log_A_array.json"
ARRAY_SOURCE_LINES = (1, 2, 4, 5, 6)  # AppOmni lines the array fixture was built from (SOURCES.md)


def run(path: Path) -> tuple[dict[int, Event], list[Problem]]:
    events: dict[int, Event] = {}
    problems: list[Problem] = []
    for r in okta.parse(FileSource(str(path))):
        if isinstance(r, Parsed):
            assert r.line not in events
            events[r.line] = r.event
        else:
            assert isinstance(r, Problem)
            problems.append(r)
    return events, problems


def one(obj: dict, tmp_path: Path) -> Event:
    """Parse a single hand-made LogEvent written as one JSON line."""
    p = tmp_path / "one.jsonl"
    p.write_text(json.dumps(obj) + "\n", encoding="utf-8")
    events, problems = run(p)
    assert problems == []
    return events[1]


def no_raw_outside_raw(ev: Event, secret: str) -> None:
    fields = dataclasses.asdict(ev)
    fields.pop("raw")
    assert secret not in json.dumps(fields, default=str)


# ------------------------------------------------------------------------------------------------ samples


def test_registered() -> None:
    fmt = formats.get("okta-system-log")
    assert fmt is not None and fmt.vendor == "okta" and fmt.parse is okta.parse


@pytest.mark.parametrize("path", [APPOMNI, ELASTIC, PANTHER, ARRAY], ids=lambda p: p.name)
def test_sniff_claims_every_sample(path: Path) -> None:
    # The pretty-printed array puts "eventType" ~40 lines down, past the 20-line head: the key fallback must fire.
    assert okta.sniff(FileSource(str(path)).head()) >= 0.5


@pytest.mark.parametrize("path,count", [(APPOMNI, 18), (ELASTIC, 9)], ids=["appomni", "elastic"])
def test_vendor_samples_parse_cleanly(path: Path, count: int) -> None:
    events, problems = run(path)
    assert problems == []
    assert sorted(events) == list(range(1, count + 1))
    for ev in events.values():
        assert ev.vendor == "okta"
        assert ev.action in ACTIONS and ev.outcome in OUTCOMES
        assert ev.time.endswith("Z") and ev.vendor_id


# Panther lines that cannot become events; see SOURCES.md "Odd lines".
PANTHER_PROBLEMS = {
    20: "unreadable published time 'redacted'",  # "published":"redacted"
    21: "unreadable published time 'redacted'",
    22: "unreadable published time 'redacted'",
    23: "unreadable published time 'redacted'",
    24: "user.authentication.sso: no published time",  # no "published" key
    25: "user.authentication.sso: no published time",
    27: "user.account.reset_password: no published time",
    30: "user.session.start: no published time",
    31: "user.session.start: no published time",
    32: "logout: no published time",  # {"eventType":"logout"}
    36: "empty JSON object",  # {}
    37: "user.authentication.sso: no published time",
}


def test_panther_sample_problems_are_exactly_the_known_ones() -> None:
    events, problems = run(PANTHER)
    assert {p.line for p in problems} == set(PANTHER_PROBLEMS)
    for p in problems:
        assert p.kind == "malformed"
        assert PANTHER_PROBLEMS[p.line] in p.reason
    assert sorted(events) == sorted(set(range(1, 40)) - set(PANTHER_PROBLEMS))
    for ev in events.values():
        assert ev.action in ACTIONS and ev.outcome in OUTCOMES and ev.time.endswith("Z")
    # Lines 1 and 2 have no uuid: no vendor id, so the Parsed carries the text the stable id hashes.
    assert events[1].vendor_id is None and events[2].vendor_id is None


def test_panther_missing_uuid_gets_id_text() -> None:
    results = list(okta.parse(FileSource(str(PANTHER))))
    first = results[0]
    assert isinstance(first, Parsed) and first.line == 1
    assert (
        first.event.vendor_id is None
        and first.id_text
        and "user.session.impersonation.grant" in first.id_text
    )


# ------------------------------------------------------------------------------------------------ chosen events


def test_appomni_report_export() -> None:
    # AppOmni line 1: "published":"2023-09-14T17:45:28.879Z", "eventType":"analytics.reports.export.download",
    # actor "alternateId":"alice@example.com", client "ipAddress":"198.51.100.1", "country":"United States",
    # "city":"San Francisco", securityContext "asNumber":14618, "externalSessionId":"10234ABC123abc1234abc1234",
    # debugData "requestId":"ABCD111111111111111111111111",
    # "requestUri":"/reports/user/mfa/download/mfa88888888888888888.csv", outcome "result":"SUCCESS",
    # transaction "detail":{} (no API token).
    ev = run(APPOMNI)[0][1]
    assert ev.time == "2023-09-14T17:45:28.879Z"
    assert ev.principal == "alice@example.com"
    assert ev.src_ip == "198.51.100.1"
    assert (ev.country, ev.city, ev.asn) == ("United States", "San Francisco", "14618")
    assert ev.action == "data.export" and ev.outcome == "success"
    assert ev.vendor_type == "analytics.reports.export.download"
    assert ev.vendor_id == "11111111-2222-3333-4444-abcdef111111111111"
    assert ev.session_id == "10234ABC123abc1234abc1234"
    assert ev.request_id == "ABCD111111111111111111111111"
    assert ev.resource == "/reports/user/mfa/download/mfa88888888888888888.csv"
    assert ev.credential is None and ev.subject is None
    assert ev.user_agent is not None and ev.user_agent.startswith("Mozilla/5.0 (Windows NT 10.0")


def test_appomni_failed_ad_agent_auth_is_auth_fail_with_app_client() -> None:
    # AppOmni line 2: "eventType":"user.authentication.auth_via_AD_agent", "outcome":{"result":"FAILURE"},
    # "published":"2023-09-14T17:32:17.023Z", client "id":null, target {"id":"00ua1aaaa1abc0A0B987","type":"AppInstance"}
    ev = run(APPOMNI)[0][2]
    assert ev.time == "2023-09-14T17:32:17.023Z"
    assert ev.action == "auth.fail" and ev.outcome == "failure"
    assert ev.client == "00ua1aaaa1abc0A0B987"


def test_elastic_policy_evaluation() -> None:
    # Elastic line 3: "published":"2020-02-14T20:18:57.762Z", "eventType":"policy.evaluate_sign_on",
    # "alternateId":"xxxxxx@elastic.co", "ipAddress":"175.16.199.1", "outcome":{"result":"ALLOW"},
    # "externalSessionId":"102bZDNFfWaQSyEZQuDgWt-uQ", "requestId":"XkcAsWb8WjwDP76xh@1v8wAABp0",
    # "asNumber":null, "uuid":"3af594f9-4f67-11ea-abd3-1f5d113f2546", transaction "detail":{}
    ev = run(ELASTIC)[0][3]
    assert ev.time == "2020-02-14T20:18:57.762Z"
    assert ev.principal == "xxxxxx@elastic.co"
    assert ev.src_ip == "175.16.199.1"
    assert ev.action == "other" and ev.outcome == "success"  # an evaluation, not a change; ALLOW = success
    assert ev.vendor_id == "3af594f9-4f67-11ea-abd3-1f5d113f2546"
    assert ev.session_id == "102bZDNFfWaQSyEZQuDgWt-uQ"
    assert ev.request_id == "XkcAsWb8WjwDP76xh@1v8wAABp0"
    assert ev.asn is None and ev.credential is None


def test_panther_api_token_request() -> None:
    # Panther line 11: "published":"2024-05-02 18:46:21.121000000" (Panther form, read as UTC),
    # "eventType":"system.org.rate_limit.warning", "alternateId":"jim.kalafut@panther.com",
    # "ipAddress":"11.22.33.44", "rawUserAgent":"Go-http-client/2.0",
    # "transaction":{"detail":{"requestApiTokenId":"00T1bjatrp6Nl1dOc5d7"},...}, "requestUri":"/api/v1/logs"
    ev = run(PANTHER)[0][11]
    assert ev.time == "2024-05-02T18:46:21.121000000Z"  # all nine fraction digits kept
    assert ev.principal == "jim.kalafut@panther.com"
    assert ev.src_ip == "11.22.33.44"
    assert ev.user_agent == "Go-http-client/2.0"
    assert ev.action == "api.call"
    assert ev.credential is not None
    assert ev.credential.keys == ("okta-token:00T1bjatrp6Nl1dOc5d7",)
    assert ev.credential.kind == "api-key"
    assert ev.credential.principal == "jim.kalafut@panther.com"
    assert ev.resource == "/api/v1/logs"


def test_panther_lowercased_keys_failed_login() -> None:
    # Panther line 5 has Panther-lowercased top-level keys: "eventtype":"user.session.start",
    # "authenticationcontext":{"externalSessionId":"100-abc-9999"}, "securitycontext":{"asNumber":701,...},
    # "debugcontext":{"debugData":{"requestId":"AbCdEf12G",...}}, "outcome":{"result":"FAILURE"},
    # "published":"2022-06-22 18:18:29.015", "alternateId":"homer.simpson@duff.com", "ipAddress":"1.3.2.4"
    ev = run(PANTHER)[0][5]
    assert ev.time == "2022-06-22T18:18:29.015Z"
    assert ev.vendor_type == "user.session.start"
    assert ev.action == "auth.fail" and ev.outcome == "failure"
    assert ev.principal == "homer.simpson@duff.com" and ev.src_ip == "1.3.2.4"
    assert ev.session_id == "100-abc-9999" and ev.asn == "701" and ev.request_id == "AbCdEf12G"


# ------------------------------------------------------------------------------------------------ token events
# The samples hold no api_token or OAuth token event, so these are minimal hand-made LogEvents following the
# LogEvent shape of connectors.md §1.2 and the OAuth2ResourceDetails / OAuth2RefreshTokenReuseDebugData
# property names of Okta's event-types.json (hash, scope, expires, old_refresh_token_hash). The target `type`
# strings and id prefixes (00T…, AT.…, oar…) are background knowledge, not from a stored sample.


def logevent(event_type: str, **over: object) -> dict:
    base: dict = {
        "uuid": "0f6d2b6e-0000-11ef-aaaa-000000000001",
        "published": "2024-06-01T10:00:00.123Z",
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "actor": {
            "id": "00u1admin",
            "type": "User",
            "alternateId": "admin@example.com",
            "displayName": "Admin",
        },
        "client": {"ipAddress": "203.0.113.9", "userAgent": {"rawUserAgent": "curl/8.5.0"}},
        "authenticationContext": {"externalSessionId": "unknown"},
        "outcome": {"result": "SUCCESS"},
        "target": [],
        "debugContext": {"debugData": {"requestId": "req-1"}},
        "transaction": {"type": "WEB", "id": "req-1", "detail": {}},
    }
    base.update(over)
    return base


def test_api_token_create_and_revoke(tmp_path: Path) -> None:
    target = [
        {"id": "00Tabc123def456GHI78", "type": "Token", "alternateId": "unknown", "displayName": "ci-deploy"}
    ]
    created = one(logevent("system.api_token.create", target=target), tmp_path)
    assert created.action == "token.issue"
    assert created.subject is not None and created.subject.keys == ("okta-token:00Tabc123def456GHI78",)
    assert created.subject.kind == "api-key" and created.subject.issued_at == "2024-06-01T10:00:00.123Z"
    assert created.session_id is None  # "externalSessionId":"unknown" is ignored

    revoked = one(logevent("system.api_token.revoke", target=target), tmp_path)
    assert revoked.action == "token.revoke"
    assert revoked.subject is not None and revoked.subject.keys == ("okta-token:00Tabc123def456GHI78",)


def test_oauth_access_token_grant(tmp_path: Path) -> None:
    ev = one(
        logevent(
            "app.oauth2.as.token.grant.access_token",
            client={"id": "0oa1clientAbc", "ipAddress": "203.0.113.9"},
            authenticationContext={"issuer": {"id": "aus1defaultAS", "type": "AuthorizationServer"}},
            target=[
                {
                    "id": "AT.hYz4-xQk",
                    "type": "access_token",
                    "alternateId": "unknown",
                    "detailEntry": {
                        "expires": "2024-06-01T11:00:00.000Z",
                        "subject": "00u1user",
                        "hash": "QC5tNrS5U1QuE1PdEOz+14qv340noOt1k+HvHoin86U=",
                        "scope": "openid offline_access",
                    },
                }
            ],
            debugContext={
                "debugData": {"grantType": "authorization_code", "grantedScopes": "openid, offline_access"}
            },
        ),
        tmp_path,
    )
    assert ev.action == "token.issue" and ev.client == "0oa1clientAbc"
    s = ev.subject
    assert s is not None
    assert s.keys == (
        "okta-token:AT.hYz4-xQk",
        "okta-token:hash:QC5tNrS5U1QuE1PdEOz+14qv340noOt1k+HvHoin86U=",
    )
    assert (s.kind, s.client, s.issuer, s.scopes) == (
        "access",
        "0oa1clientAbc",
        "aus1defaultAS",
        "openid offline_access",
    )
    assert s.expires_at == "2024-06-01T11:00:00.000Z" and s.issued_at == "2024-06-01T10:00:00.123Z"
    assert ev.credential is None


@pytest.mark.parametrize(
    "event_type,grant_type,action",
    [
        ("app.oauth2.as.token.grant.refresh_token", "refresh_token", "token.refresh"),
        ("app.oauth2.token.grant.refresh_token", None, "token.refresh"),
        ("app.oauth2.as.token.grant.refresh_token", "authorization_code", "token.issue"),
        ("app.oauth2.token.grant.access_token", "refresh_token", "token.refresh"),
    ],
)
def test_refresh_mapping(tmp_path: Path, event_type: str, grant_type: str | None, action: str) -> None:
    debug = {"grantType": grant_type} if grant_type else {}
    ev = one(
        logevent(
            event_type,
            debugContext={"debugData": debug},
            target=[{"id": "oar1refresh", "type": "refresh_token"}],
        ),
        tmp_path,
    )
    assert ev.action == action
    assert (
        ev.subject is not None
        and ev.subject.keys == ("okta-token:oar1refresh",)
        and ev.subject.kind == "refresh"
    )


def test_failed_grant_is_auth_fail(tmp_path: Path) -> None:
    ev = one(
        logevent("app.oauth2.as.token.grant", outcome={"result": "FAILURE", "reason": "invalid_grant"}),
        tmp_path,
    )
    assert ev.action == "auth.fail" and ev.outcome == "failure" and ev.subject is None


def test_oauth_token_revoke_and_reuse(tmp_path: Path) -> None:
    revoked = one(
        logevent("app.oauth2.token.revoke", target=[{"id": "oar9xyz", "type": "refresh_token"}]), tmp_path
    )
    assert revoked.action == "token.revoke"
    assert revoked.subject is not None and revoked.subject.keys == ("okta-token:oar9xyz",)

    reuse = one(
        logevent(
            "app.oauth2.as.token.detect_reuse",
            outcome={"result": "FAILURE"},
            debugContext={
                "debugData": {
                    "old_refresh_token_hash": "0PPYOXwksjglcdH79HzjcZUIPcFJa9l23Nk33dMqQKU=",
                    "current_refresh_token_hash": "UMSca/1Vo5ze7pOclI75IY52DlgJtrwHgaxm2b9zT50=",
                }
            },
        ),
        tmp_path,
    )
    assert reuse.action == "token.reuse"
    assert reuse.credential is not None
    assert reuse.credential.keys == ("okta-token:hash:0PPYOXwksjglcdH79HzjcZUIPcFJa9l23Nk33dMqQKU=",)
    assert reuse.credential.kind == "refresh"

    consent = one(logevent("app.oauth2.as.consent.revoke.user"), tmp_path)
    assert consent.action == "token.revoke"


@pytest.mark.parametrize(
    "event_type,action",
    [
        ("app.oauth2.invalid_client_credentials", "auth.fail"),
        ("app.oauth2.credentials.lifecycle.create", "admin.change"),
        ("application.lifecycle.update", "admin.change"),
        ("oauth2.as.updated", "admin.change"),
        ("system.api_token.update", "admin.change"),
        ("user.session.clear", "logout"),
        ("user.session.expire", "logout"),
        ("app.oauth2.as.authorize.code", "token.issue"),
        ("user.account.update_password", "other"),
    ],
)
def test_action_table(tmp_path: Path, event_type: str, action: str) -> None:
    assert one(logevent(event_type), tmp_path).action == action


def test_raw_token_in_id_field_is_fingerprinted(tmp_path: Path) -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIwMHUxdXNlciIsImp0aSI6IkFULjEifQ.c2lnbmF0dXJlLXBhcnQ"
    ev = one(
        logevent("app.oauth2.token.grant.access_token", target=[{"id": jwt, "type": "access_token"}]),
        tmp_path,
    )
    assert ev.subject is not None
    assert all(k.startswith(("sha256:", "sha256/16:", "jti:")) for k in ev.subject.keys)
    no_raw_outside_raw(ev, jwt)


def test_secret_query_values_are_redacted_in_resource(tmp_path: Path) -> None:
    session_token = "20111AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    ev = one(
        logevent(
            "user.session.start",
            debugContext={
                "debugData": {
                    "url": f"/login/sessionCookieRedirect?token={session_token}&redirectUrl=https%3A%2F%2Fapp.example"
                }
            },
        ),
        tmp_path,
    )
    assert ev.resource is not None and ev.resource.startswith(
        "/login/sessionCookieRedirect?token=[redacted sha256:"
    )
    assert "redirectUrl=" in ev.resource
    no_raw_outside_raw(ev, session_token)


# ------------------------------------------------------------------------------------------------ shapes


def test_bad_lines_in_json_lines(tmp_path: Path) -> None:
    good = logevent("user.session.start")
    p = tmp_path / "mixed.jsonl"
    p.write_text(json.dumps(good) + "\n\nnot json\n[1, 2]\n" + json.dumps(good) + "\n", encoding="utf-8")
    events, problems = run(p)
    assert sorted(events) == [1, 5]
    assert [(x.line, x.kind) for x in problems] == [(2, "skipped"), (3, "malformed"), (4, "malformed")]
    assert "not JSON" in problems[1].reason and "not a JSON object" in problems[2].reason


def _expected_array_events() -> list[Event]:
    lines = run(APPOMNI)[0]
    return [lines[n] for n in ARRAY_SOURCE_LINES]


def test_pretty_printed_array_matches_json_lines() -> None:
    events, problems = run(ARRAY)
    assert problems == []
    assert sorted(events) == [1, 2, 3, 4, 5]  # provenance "line" = 1-based item index
    assert [events[i] for i in range(1, 6)] == _expected_array_events()


def test_single_line_and_gzipped_array_match_json_lines(tmp_path: Path) -> None:
    items = json.loads(ARRAY.read_text(encoding="utf-8"))
    single = tmp_path / "single.json"
    single.write_text(json.dumps(items, separators=(",", ":")), encoding="utf-8")  # no trailing newline
    assert okta.sniff(FileSource(str(single)).head()) >= 0.5
    events, problems = run(single)
    assert problems == []
    assert [events[i] for i in range(1, 6)] == _expected_array_events()

    gz = tmp_path / "logs.json.gz"
    gz.write_bytes(gzip.compress(ARRAY.read_bytes()))
    events, problems = run(gz)
    assert problems == [] and [events[i] for i in range(1, 6)] == _expected_array_events()


@pytest.mark.parametrize("pretty", [False, True], ids=["single-line", "pretty"])
def test_truncated_array_keeps_items_before_the_cut(tmp_path: Path, pretty: bool) -> None:
    items = json.loads(ARRAY.read_text(encoding="utf-8"))
    parts = [json.dumps(i, indent=2 if pretty else None) for i in items]
    sep = ",\n" if pretty else ","
    text = "[" + sep.join(parts) + "]"
    start4 = len("[" + sep.join(parts[:3]) + sep)
    assert text[start4:].startswith(parts[3])
    cut = tmp_path / "cut.json"
    cut.write_text(text[: start4 + len(parts[3]) // 2], encoding="utf-8")  # cut in the middle of item 4
    events, problems = run(cut)
    assert sorted(events) == [1, 2, 3]
    assert [events[i] for i in (1, 2, 3)] == _expected_array_events()[:3]
    assert len(problems) == 1
    assert problems[0].kind == "malformed" and problems[0].line == 4
    assert "after item 3" in problems[0].reason


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_text("\n\n", encoding="utf-8")
    assert run(p) == ({}, [])


# ------------------------------------------------------------------------------------------------ sniff


VAULT_LINE = (
    '{"time":"2024-05-01T12:00:00.123456789Z","type":"request","auth":{"client_token":"hmac-sha256:ab12",'
    '"accessor":"hmac-sha256:cd34","display_name":"token","policies":["root"],"token_type":"service"},'
    '"request":{"id":"9f3c","operation":"read","path":"secret/data/app","remote_address":"10.0.0.5"}}'
)
NGINX_LINE = (
    '{"time":"2024-05-01T12:00:00+00:00","remote_addr":"203.0.113.7","xff":"-","method":"GET",'
    '"uri":"/api/v1/users?limit=1","status":200,"bytes":512,"rt":0.012,"ua":"curl/8.5.0",'
    '"request_id":"7d1f0c","upstream":"10.0.0.2:8080","urt":"0.011"}'
)
CLOUDTRAIL_LINE = (  # has an "eventType" key, but it is not a dotted Okta event type and there is no published/uuid/actor
    '{"eventVersion":"1.08","eventTime":"2024-05-01T12:00:00Z","eventSource":"sts.amazonaws.com",'
    '"eventName":"AssumeRole","eventType":"AwsApiCall","eventID":"1b2c"}'
)


@pytest.mark.parametrize(
    "line", [VAULT_LINE, NGINX_LINE, CLOUDTRAIL_LINE], ids=["vault", "nginx", "cloudtrail"]
)
def test_sniff_rejects_other_vendors_json(line: str) -> None:
    assert okta.sniff([line]) < 0.5
    assert okta.sniff([line] * 5) < 0.5
    assert okta.sniff(["[" + line + "]"]) < 0.5


def test_sniff_empty_and_text() -> None:
    assert okta.sniff([]) == 0.0
    assert okta.sniff(['203.0.113.7 - - [17/Aug/2025:11:15:42 +0000] "GET / HTTP/1.1" 200 5']) == 0.0


def test_a_chunk_parsed_by_an_ingest_worker_keeps_the_files_line_numbers():
    from casefile.pipeline import ChunkSource

    lines = (FIX / "appomni_okta_system_log_A.jsonl").read_text().splitlines()
    chunk = ChunkSource("x", 11, lines[10:14])
    parsed = [p for p in okta.parse(chunk) if not isinstance(p, Problem)]
    assert [p.line for p in parsed] == [11, 12, 13, 14]
