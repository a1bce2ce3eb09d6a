"""oidc-provider event parser (`connectors/oidc.py`, format `oidc-provider-events`).

The fixture follows what the lab's server.mjs writes (test-peers.md §1); its first six lines are the "Real lines"
quoted there. Expected values are written from the raw lines (quoted in comments), not copied from parser output.
Fixture provenance: tests/fixtures/oidc/SOURCES.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from casefile import formats
from casefile.records import ACTIONS, Event, Parsed, Problem
from casefile.secrets import fingerprint
from casefile.sources import FileSource
from connectors import oidc

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "oidc"
LOG = FIX / "oidc-provider-events.jsonl"

# Tokens of the fixture's scenario (the opaque ones are the real values shown in test-peers.md §1).
OPAQUE_AT = "zT-AZ-p3djmR3KyV_626bjX9JCplOOM1iPTbQaQFCIk"
SEEDED_RT = "0JGXZpDua9eEjinRbWJyXPahgepa-VMrvGNJ4IkR2PC"
JWT_JTI = "zAld-qUB40CXL3IlxeLsB0KeLDds-MYIIdS5GBrvy5B"


def fp16(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def run(path: Path) -> tuple[dict[int, Event], list[Problem]]:
    events: dict[int, Event] = {}
    problems: list[Problem] = []
    for r in oidc.parse(FileSource(str(path))):
        if isinstance(r, Parsed):
            events[r.line] = r.event
        else:
            problems.append(r)
    return events, problems


def test_registered() -> None:
    fmt = formats.get("oidc-provider-events")
    assert fmt is not None and fmt.vendor == "oidc" and fmt.parse is oidc.parse


def test_fixture_counts_and_problems() -> None:
    events, problems = run(LOG)
    assert sorted(events) == list(range(1, 30))
    assert [(p.line, p.kind) for p in problems] == [(30, "skipped"), (31, "malformed"), (32, "malformed"),
                                                    (33, "malformed")]
    assert problems[1].reason.startswith("not JSON")  # a DEBUG=oidc-provider:* console line
    assert problems[2].reason == "access_token.saved: no ts"
    for ev in events.values():
        assert ev.vendor == "oidc" and ev.action in ACTIONS and ev.time.endswith("Z")


def test_real_lines() -> None:
    events, _ = run(LOG)
    # line 1: {"ts":"2026-11-29T03:59:03.647Z","event":"client_credentials.saved","kind":"ClientCredentials",
    #          "client_id":"ir-app","token_fp":"7890149987d5b710"}
    ev = events[1]
    assert (ev.time, ev.action, ev.outcome, ev.client) == ("2026-11-29T03:59:03.647Z", "token.issue", "success", "ir-app")
    assert ev.subject is not None and ev.subject.keys == ("sha256/16:7890149987d5b710",)
    assert ev.subject.kind == "access" and ev.subject.client == "ir-app"
    assert ev.subject.issued_at == "2026-11-29T03:59:03.647Z" and ev.credential is None
    # line 2: the same token destroyed 93 ms later
    assert events[2].action == "token.revoke" and events[2].subject is not None
    assert events[2].subject.keys == ev.subject.keys
    # line 3: introspection.error by "gateway", error "unsupported_token_type"
    ie = events[3]
    assert (ie.action, ie.outcome, ie.client, ie.resource) == ("auth.fail", "failure", "gateway", "introspection")
    assert ie.extra["error"] == "unsupported_token_type"
    # line 4: grant.error client_id "ir-mtls", error "invalid_client"
    assert (events[4].action, events[4].client, events[4].extra["error"]) == ("auth.fail", "ir-mtls", "invalid_client")
    # line 5: grant.revoked by "ir-admin", grant_id WmuD… (a grant id is a fact, never a key)
    gr = events[5]
    assert gr.action == "token.revoke" and gr.client == "ir-admin" and gr.subject is None
    assert gr.extra["grant_id"] == "WmuDl7COlhyAhwXSyWw6FvD6aocCpWKzGH4b_7aP9NB"
    # line 6: request route "token" POST status 400 from 127.0.0.1
    rq = events[6]
    assert (rq.action, rq.outcome, rq.method, rq.status, rq.resource, rq.src_ip) == (
        "api.call", "failure", "POST", 400, "token", "127.0.0.1")


def test_opaque_token_key_joins_the_token_fingerprint() -> None:
    events, _ = run(LOG)
    # line 7: client_credentials.saved token_fp = sha256(OPAQUE_AT)[:16]; line 11: destroyed
    assert events[7].subject is not None
    key = f"sha256/16:{fp16(OPAQUE_AT)}"
    assert events[7].subject.keys == (key,)
    assert key in fingerprint(OPAQUE_AT).keys  # the same key the gateway logs and the operator's token give
    assert events[11].action == "token.revoke" and events[11].subject is not None
    assert events[11].subject.keys == (key,)
    # line 12: the revocation request (200) proves nothing by itself: an api.call, not a revoke
    assert (events[12].action, events[12].client, events[12].resource) == ("api.call", "ir-admin", "revocation")
    # line 14: a revocation with a wrong secret: status 401
    assert (events[14].action, events[14].outcome, events[14].status) == ("auth.fail", "failure", 401)


def test_structured_token_key_is_not_a_token_fingerprint() -> None:
    events, _ = run(LOG)
    # line 15: client_credentials.issued (JWT, resource urn:ir:api:jwt): token_fp = sha256(jti)[:16]
    ev = events[15]
    assert ev.action == "token.issue" and ev.subject is not None
    assert ev.subject.keys == (f"jti:oidc-provider:sha256/16:{fp16(JWT_JTI)}",)
    assert not any(k.startswith("sha256/16:") for k in ev.subject.keys)


def test_bindings_refresh_and_code_flow() -> None:
    events, _ = run(LOG)
    # line 17: ir-dpop token with "jkt"; line 18: ir-mtls token with "x5t"
    assert events[17].subject is not None and events[17].subject.binding == "dpop"
    assert events[17].extra["jkt"] == "Ie4KaqjVsU1auGMljZ-zOnIhfrH6SkmFjdeWOsz1RZ0"
    assert events[18].subject is not None and events[18].subject.binding == "mtls"
    # line 19: access_token.saved account "alice", grant_id 41Y5…; line 20: grant.success gty "refresh_token"
    at = events[19]
    assert at.principal == "alice" and at.subject is not None and at.subject.principal == "alice"
    assert at.extra["grant_id"] == "41Y5II50m7g7qW4Oi7bmFxp8hf7CMqoUv2mCT3IQEoZ"
    assert (events[20].action, events[20].src_ip) == ("token.refresh", "127.0.0.1")
    # line 21: refresh_token.destroyed of the seeded refresh token
    rt = events[21]
    assert rt.action == "token.revoke" and rt.subject is not None
    assert rt.subject.keys == (f"sha256/16:{fp16(SEEDED_RT)}",) and rt.subject.kind == "refresh"
    # line 24: grant.saved (consent bookkeeping): no credential
    assert events[24].action == "other" and events[24].subject is None and events[24].credential is None
    # line 25/26: authorization code saved, then consumed (presented at the token endpoint)
    assert events[25].action == "token.issue"
    assert events[26].action == "token.use" and events[26].credential is not None
    assert events[26].credential.keys == events[25].subject.keys  # type: ignore[union-attr]
    assert events[29].action == "token.issue"  # grant.success gty authorization_code


@pytest.mark.parametrize("name,rec,action", [
    ("access_token.saved", {}, "token.issue"), ("access_token.issued", {}, "token.issue"),
    ("access_token.destroyed", {}, "token.revoke"), ("client_credentials.saved", {}, "token.issue"),
    ("client_credentials.destroyed", {}, "token.revoke"), ("refresh_token.saved", {}, "token.issue"),
    ("refresh_token.consumed", {}, "token.refresh"), ("refresh_token.destroyed", {}, "token.revoke"),
    ("authorization_code.consumed", {}, "token.use"), ("grant.saved", {}, "other"),
    ("grant.destroyed", {}, "token.revoke"), ("grant.revoked", {}, "token.revoke"),
    ("grant.success", {"gty": "client_credentials"}, "token.issue"),
    ("grant.success", {"gty": "refresh_token"}, "token.refresh"),
    ("grant.error", {}, "auth.fail"), ("introspection.error", {}, "auth.fail"),
    ("revocation.error", {}, "auth.fail"), ("server_error", {}, "other"),
    ("request", {"status": 200}, "api.call"), ("request", {"status": 401}, "auth.fail"),
])
def test_action_mapping(name: str, rec: dict, action: str) -> None:
    assert oidc.action_of(name, rec) == action


OKTA_LINE = ('{"uuid":"11111111-2222-3333-4444-555555555555","published":"2025-08-17T11:15:42.123Z",'
             '"eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"a@example.com"},'
             '"outcome":{"result":"SUCCESS"}}')
VAULT_LINE = ('{"time":"2025-08-17T11:15:42.123456Z","type":"request","auth":{"client_token":"hmac-sha256:ab",'
              '"accessor":"hmac-sha256:cd"},"request":{"id":"r1","operation":"read","path":"secret/data/x"}}')
NGINX_LINE = ('{"time_iso8601":"2025-08-17T11:15:42+00:00","remote_addr":"192.0.2.1","request_method":"GET",'
              '"request_uri":"/api","status":200,"body_bytes_sent":12,"http_user_agent":"curl/8"}')
KEYCLOAK_LINE = ('{"time":1755429342123,"type":"LOGIN","realmId":"acme","clientId":"web","userId":"u1",'
                 '"ipAddress":"192.0.2.1","details":{}}')


@pytest.mark.parametrize("line", [OKTA_LINE, VAULT_LINE, NGINX_LINE, KEYCLOAK_LINE],
                         ids=["okta", "vault", "nginx", "keycloak"])
def test_sniff_rejects_other_vendors(line: str) -> None:
    assert oidc.sniff([line]) < 0.5


def test_sniff_claims_fixture() -> None:
    assert oidc.sniff(FileSource(str(LOG)).head()) >= 0.5
