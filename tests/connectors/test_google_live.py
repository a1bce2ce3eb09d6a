"""The live Google Workspace connector (connectors/google.py, section "live"): auth, tokens, users, probes, pull.

No Google runs here. The contract is the Admin SDK discovery documents google-api-python-client 2.202.0 ships
(`admin.directory_v1` rev. 20261104, `admin.reports_v1` rev. 20260929; see tests/connectors/google_contract.py):
every request stanch sends is checked against them offline (method, path template, parameter location, type,
enum, pattern, required, the token's scope) and built a second time by googleapiclient from the same document,
which must agree. A request the contract rejects is answered 400 and recorded; each test asserts none was.

The fake Workspace (`FakeWorkspace`, an `httpx.MockTransport`) answers with bodies checked against the same
documents' schemas (`Token`, `Tokens`, `User`, `Users`, `Activities`), shaped as the Admin SDK reference pages
describe them: Directory API "tokens" (list/get/delete, 204 on delete), "users.list" (`nextPageToken` /
`pageToken`, `maxResults` ≤ 500), Reports API "activities.list" (newest first, `nextPageToken`, `maxResults`
≤ 1000, `startTime`/`endTime`), Google's JSON error format (`{"error": {"code", "message", "errors": [{"domain",
"reason", "message"}], "status"}}`, with `rateLimitExceeded` under `usageLimits` as the Admin SDK "Limits and
quotas" pages describe), and the token endpoint per "Using OAuth 2.0 for Server to Server Applications"
(form POST `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`; answer `{"access_token",
"scope", "token_type": "Bearer", "expires_in": 3599}`; errors `unauthorized_client`, `invalid_grant`).

The service-account key is generated per test session (cryptography, RSA 2048) and every token is built at run
time (tests/conftest.py `fake_token`). Nothing asks google.auth for cloud credentials
(`google_contract.no_cloud_credentials`).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt as pyjwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from casefile.case import create_case
from casefile.ingest import ingest
from casefile.live import cursors as stored_cursors
from casefile.live import store_page
from casefile.timeutil import to_micros, to_utc_iso
from connectors import google
from connectors.config import ConfigError, ConnectorSettings, whoami_hook
from connectors.http import (
    ConfigurationError,
    InvalidCredentialError,
    PermissionDeniedError,
    RateLimitedError,
)
from connectors.pull import pull_hook
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE
from tests.conftest import fake_token
from tests.connectors.google_contract import REVISIONS, Discovery, load, no_cloud_credentials

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "google"
ADMIN = "admin@example.com"
SA_EMAIL = "stanch-ir@stanch-test.iam.gserviceaccount.com"
CLIENT = "123456789012-a1b2c3d4e5f6g7h8i9j0klmnopqrstuv.apps.googleusercontent.com"  # the fixtures' "Mail Merge Pro"
OTHER_CLIENT = "999999999999-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz.apps.googleusercontent.com"
API = "https://admin.googleapis.com"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------- key and settings


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def sa_json(rsa_key: rsa.RSAPrivateKey) -> str:
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return json.dumps({
        "type": "service_account", "project_id": "stanch-test", "private_key_id": fake_token("", 40, "k"),
        "private_key": pem, "client_email": SA_EMAIL, "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": google.TOKEN_URI,
    })


@pytest.fixture(scope="module")
def public_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def settings(subject: str | None = ADMIN) -> ConnectorSettings:
    return ConnectorSettings(name="gws-test", kind="google", url=API, client_id=subject)


# ------------------------------------------------------------------------------------------- the fake


def gerror(code: int, reason: str, message: str, status: str, domain: str = "global") -> httpx.Response:
    """Google's JSON error format."""
    return httpx.Response(code, json={"error": {"code": code, "message": message, "errors": [
        {"message": message, "domain": domain, "reason": reason}], "status": status}})


def rate_limited_403() -> httpx.Response:
    return gerror(403, "rateLimitExceeded", "Rate Limit Exceeded", "PERMISSION_DENIED", "usageLimits")


def activity(app: str, when: str, n: int, email: str = "alice@example.com", name: str | None = None) -> dict[str, Any]:
    event = {"type": "auth", "name": name or "activity", "parameters": [
        {"name": "client_id", "value": CLIENT}, {"name": "app_name", "value": "Mail Merge Pro"},
        {"name": "api_name", "value": "gmail"}, {"name": "method_name", "value": "gmail.users.messages.get"}]}
    if app == "login":
        event = {"type": "login", "name": name or "login_success",
                 "parameters": [{"name": "login_type", "value": "google_password"}]}
    return {"kind": "admin#reports#activity",
            "id": {"time": when, "uniqueQualifier": str(7_000_000_000 + n), "applicationName": app,
                   "customerId": "C03az79cb"},
            "etag": '"fake-etag"', "actor": {"callerType": "USER", "email": email, "profileId": "104000000000000000001"},
            "ownerDomain": "example.com", "ipAddress": "203.0.113.50", "events": [event]}


def spread(app: str, count: int, start: str = "2025-08-17T15:00:00Z", step_s: int = 7) -> list[dict[str, Any]]:
    base = to_micros(start) // 1_000_000
    return [activity(app, to_utc_iso(str(base + i * step_s)), i) for i in range(count)]


class FakeWorkspace:
    """Google's token endpoint and the Admin SDK methods stanch calls, checked against the discovery documents."""

    def __init__(self, public_pem: str, *, users: list[str] | None = None,
                 tokens: dict[str, dict[str, dict[str, Any]]] | None = None,
                 activities: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.public_pem = public_pem
        self.docs = {"directory": Discovery(load("admin.directory_v1")), "reports": Discovery(load("admin.reports_v1"))}
        self.users = users if users is not None else [ADMIN, "alice@example.com", "bob@example.com"]
        self.tokens = tokens if tokens is not None else {}
        self.activities = activities or {}
        self.issued: dict[str, str] = {}  # access token → scope
        self.assertions: list[dict[str, Any]] = []  # (header, claims) of each token request
        self.refuse_scopes: set[str] = set()
        self.seen: list[tuple[str, httpx.Request]] = []  # (method id, request) that kept the contract
        self.violations: list[str] = []
        self.inject: list[httpx.Response] = []  # served (after the checks) before the normal answer
        self.in_flight = self.max_in_flight = 0
        self._shapes: set[tuple[str, tuple[str, ...]]] = set()
        self._n = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def ids(self) -> list[str]:
        return [mid for mid, _ in self.seen]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let other requests in, so concurrency is observable
            if request.url.host == "oauth2.googleapis.com":
                return self.token_endpoint(request)
            return self.api(request)
        finally:
            self.in_flight -= 1

    # --------------------------------------------------------------------------------- token endpoint

    def token_endpoint(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/token", request.url
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert set(form) == {"grant_type", "assertion"} and form["grant_type"] == google.JWT_BEARER
        header = pyjwt.get_unverified_header(form["assertion"])
        claims = pyjwt.decode(form["assertion"], self.public_pem, algorithms=["RS256"], audience=google.TOKEN_URI,
                              options={"verify_exp": False, "verify_iat": False})
        self.assertions.append({"header": header, "claims": claims, "raw": form["assertion"]})
        scope = claims["scope"]
        if scope in self.refuse_scopes:
            return httpx.Response(401, json={"error": "unauthorized_client", "error_description":
                                             "Client is unauthorized to retrieve access tokens using this method, "
                                             "or client not authorized for any of the scopes requested."})
        if claims["sub"] not in self.users:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "Invalid email or User ID"})
        self._n += 1
        token = fake_token("ya29.", 48, salt=f"t{self._n}")
        self.issued[token] = scope
        return httpx.Response(200, json={"access_token": token, "scope": scope, "token_type": "Bearer",
                                         "expires_in": 3599})

    # --------------------------------------------------------------------------------- API

    def api(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        scope = self.issued.get(auth.removeprefix("Bearer "))
        if not auth.startswith("Bearer ") or scope is None:
            return gerror(401, "authError", "Invalid Credentials", "UNAUTHENTICATED")
        doc = self.docs["reports" if request.url.path.startswith("/admin/reports/") else "directory"]
        mid, errs = doc.violations(request, scope)
        if errs or mid is None:
            self.violations.extend(errs)
            return gerror(400, "invalid", "; ".join(errs), "INVALID_ARGUMENT")
        shape = (mid, tuple(sorted(request.url.params.keys())))
        if shape not in self._shapes:  # googleapiclient builds each request shape once, and must agree
            self._shapes.add(shape)
            doc.cross_check(request)
        self.seen.append((mid, request))
        if self.inject:
            return self.inject.pop(0)
        _, params = doc.match(request)
        q = request.url.params
        if mid.startswith("directory.tokens."):
            user = params["userKey"]
            if user not in self.users:
                return gerror(404, "notFound", "Resource Not Found: userKey", "NOT_FOUND")
            held = self.tokens.setdefault(user, {})
            if mid == "directory.tokens.list":
                body: dict[str, Any] = {"kind": "admin#directory#tokenList", "etag": '"e"'}
                if held:
                    body["items"] = [self.token(user, c) for c in held]
                return self.answer(doc, "Tokens", body)
            if params["clientId"] not in held:
                return gerror(404, "notFound", "Resource Not Found: clientId", "NOT_FOUND")
            if mid == "directory.tokens.get":
                return self.answer(doc, "Token", self.token(user, params["clientId"]))
            del held[params["clientId"]]
            return httpx.Response(204)
        if mid == "directory.users.list":
            assert q.get("customer") == "my_customer"
            size, start = int(q.get("maxResults", "100")), int(q.get("pageToken", "0"))
            page = self.users[start:start + size]
            body = {"users": [{"id": f"1{i:020d}", "primaryEmail": u} for i, u in enumerate(page, start)]}
            if start + size < len(self.users):
                body["nextPageToken"] = str(start + size)
            return self.answer(doc, "Users", body)
        if mid == "directory.users.get":
            user = params["userKey"]
            if user not in self.users:
                return gerror(404, "notFound", "Resource Not Found: userKey", "NOT_FOUND")
            return self.answer(doc, "User", {"kind": "admin#directory#user", "id": "100000000000000000001",
                                             "primaryEmail": user, "isAdmin": user == ADMIN, "isDelegatedAdmin": False,
                                             "customerId": "C03az79cb", "suspended": False})
        if mid == "reports.activities.list":
            items = self.activities.get(params["applicationName"], [])
            if params["userKey"] != "all":
                items = [a for a in items if a["actor"].get("email") == params["userKey"]]
            lo = to_micros(to_utc_iso(q["startTime"])) if "startTime" in q else None
            hi = to_micros(to_utc_iso(q["endTime"])) if "endTime" in q else None
            items = [a for a in items if (lo is None or to_micros(to_utc_iso(a["id"]["time"])) >= lo)
                     and (hi is None or to_micros(to_utc_iso(a["id"]["time"])) <= hi)]
            items.sort(key=lambda a: to_micros(to_utc_iso(a["id"]["time"])), reverse=True)  # newest first
            size, start = int(q.get("maxResults", "1000")), int(q.get("pageToken", "0"))
            body = {"kind": "admin#reports#activities", "etag": '"e"'}
            if items[start:start + size]:
                body["items"] = items[start:start + size]
            if start + size < len(items):
                body["nextPageToken"] = str(start + size)
            return self.answer(doc, "Activities", body)
        raise AssertionError(f"the fake does not serve {mid}")

    def token(self, user: str, client_id: str) -> dict[str, Any]:
        return {"kind": "admin#directory#token", "etag": '"t"', "userKey": "100000000000000000001", **self.tokens[user][client_id]}

    @staticmethod
    def answer(doc: Discovery, schema: str, body: dict[str, Any]) -> httpx.Response:
        doc.check_body(schema, body)
        return httpx.Response(200, json=body)


def grant(client_id: str = CLIENT, name: str = "Mail Merge Pro") -> dict[str, Any]:
    return {"clientId": client_id, "displayText": name, "anonymous": False, "nativeApp": False,
            "scopes": ["https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/drive"]}


class Snapshots:
    def __init__(self, fake: FakeWorkspace | None = None) -> None:
        self.taken: list[tuple[str, str, Any]] = []
        self.fake = fake
        self.deletes_before: list[int] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body))
        if self.fake is not None:  # how many DELETEs had been sent when this snapshot was taken
            self.deletes_before.append(sum(1 for m in self.fake.ids() if m == "directory.tokens.delete"))


async def no_sleep(_s: float) -> None:
    return None


def client(fake: FakeWorkspace, sa: str, **kw: Any) -> google.GoogleClient:
    options: dict[str, Any] = {"transport": fake.transport(), "sleep": no_sleep, "max_retries": 2}
    options.update(kw)
    return google.client_for(settings(), sa, **options)


@pytest.fixture(autouse=True)
def _offline() -> Any:
    with no_cloud_credentials():
        yield


# ------------------------------------------------------------------------------------------- the contract itself


def test_the_contract_is_the_pinned_discovery_documents() -> None:
    for name, revision in REVISIONS.items():
        doc = load(name)
        assert doc["revision"] == revision, f"{name} changed: review the contract, then update REVISIONS"
    directory, reports = Discovery(load("admin.directory_v1")), Discovery(load("admin.reports_v1"))
    # connectors.md §6.9 facts, read from the documents
    tokens = directory.doc["resources"]["tokens"]["methods"]
    assert {m: (tokens[m]["httpMethod"], tokens[m]["path"]) for m in tokens} == {
        "list": ("GET", "admin/directory/v1/users/{userKey}/tokens"),
        "get": ("GET", "admin/directory/v1/users/{userKey}/tokens/{clientId}"),
        "delete": ("DELETE", "admin/directory/v1/users/{userKey}/tokens/{clientId}")}
    assert all(m["scopes"] == [google.SCOPE_TOKENS] for m in tokens.values())
    assert set(directory.doc["schemas"]["Token"]["properties"]) == {
        "anonymous", "clientId", "displayText", "etag", "kind", "nativeApp", "scopes", "userKey"}
    assert directory.doc["schemas"]["Tokens"]["properties"]["kind"]["default"] == "admin#directory#tokenList"
    assert "nextPageToken" not in directory.doc["schemas"]["Tokens"]["properties"]  # tokens.list does not page
    assert google.SCOPE_USERS in directory.methods["directory.users.list"]["scopes"]
    assert google.SCOPE_TOKENS not in directory.methods["directory.users.list"]["scopes"]
    listing = reports.methods["reports.activities.list"]
    assert set(google.PULL_APPLICATIONS) <= set(listing["parameters"]["applicationName"]["enum"])
    assert listing["parameters"]["maxResults"]["maximum"] == str(google.REPORTS_PAGE_SIZE)
    assert directory.methods["directory.users.list"]["parameters"]["maxResults"]["maximum"] == str(
        google.USERS_PAGE_SIZE)
    assert listing["scopes"] == [google.SCOPE_REPORTS]


def test_the_checker_rejects_what_the_contract_rejects() -> None:
    reports = Discovery(load("admin.reports_v1"))
    url = f"{API}/admin/reports/v1/activity/users/all/applications/tokens"
    _, errs = reports.violations(httpx.Request("GET", url, params={"maxResults": 5000, "startTime": "yesterday",
                                                                   "nosuch": "1"}), google.SCOPE_TOKENS)
    text = " | ".join(errs)
    for expected in ("maxResults=5000 above maximum 1000", "startTime='yesterday' does not match",
                     "unknown query parameter 'nosuch'", "applicationName='tokens' not in its enum",
                     "token scope https://www.googleapis.com/auth/admin.directory.user.security is not among"):
        assert expected in text, text
    directory = Discovery(load("admin.directory_v1"))
    _, errs = directory.violations(httpx.Request("POST", f"{API}/admin/directory/v1/users/a%40b/tokens/c"))
    assert errs and "no method" in errs[0]
    _, errs = directory.violations(httpx.Request("GET", f"{API}/admin/directory/v1/users"))
    assert errs == []  # customer/domain are documented as "one of", not as required
    with pytest.raises(TypeError):  # googleapiclient's own validation, the second check
        reports.cross_check(httpx.Request("GET", url))


def test_the_fake_answers_keep_the_schemas() -> None:
    reports = Discovery(load("admin.reports_v1"))
    for line in (FIX / "handmade_reports_activities.jsonl").read_text().splitlines()[:6]:
        reports.check_body("Activity", json.loads(line))
    with pytest.raises(AssertionError, match="not in the schema"):
        reports.check_body("Activity", {"id": {"time": "x"}, "nosuch": 1})


# ------------------------------------------------------------------------------------------- auth


def test_the_jwt_bearer_grant_is_signed_cached_per_scope_and_verifiable_by_google_auth(
        sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem, tokens={"alice@example.com": {CLIENT: grant()}})

    async def go() -> None:
        async with client(fake, sa_json) as c:
            for _ in range(3):
                await google.list_tokens(c, "alice@example.com")
            assert len(fake.assertions) == 1  # cached
            await google.get_token(c, "alice@example.com", CLIENT)
            async for _ in google.list_users(c):
                pass
            assert [a["claims"]["scope"] for a in fake.assertions] == [google.SCOPE_TOKENS, google.SCOPE_USERS]

    run(go())
    assert fake.violations == []
    first = fake.assertions[0]
    claims, header = first["claims"], first["header"]
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"] == json.loads(sa_json)["private_key_id"]
    assert claims["iss"] == SA_EMAIL and claims["sub"] == ADMIN and claims["aud"] == google.TOKEN_URI
    assert claims["exp"] - claims["iat"] == 3600 and abs(claims["iat"] - time.time()) < 60
    # Google's own library verifies the same assertion with the public key.
    from google.auth import jwt as gjwt

    verified = gjwt.decode(first["raw"], certs=public_pem, audience=google.TOKEN_URI)
    assert verified["sub"] == ADMIN and verified["scope"] == google.SCOPE_TOKENS


def test_the_access_token_is_renewed_before_it_expires_and_after_a_401(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem)
    now = [1_900_000_000.0]

    async def go() -> None:
        async with client(fake, sa_json, clock=lambda: now[0]) as c:
            await google.list_tokens(c, "alice@example.com")
            now[0] += 3599 - google.TOKEN_REFRESH_MARGIN_S - 1
            await google.list_tokens(c, "alice@example.com")
            assert len(fake.assertions) == 1
            now[0] += 2  # inside the margin: a new token
            await google.list_tokens(c, "alice@example.com")
            assert len(fake.assertions) == 2
            fake.issued.clear()  # Google forgets every token: 401, then one fresh token and a retry
            await google.list_tokens(c, "alice@example.com")
            assert len(fake.assertions) == 3

    run(go())
    assert fake.violations == [] and fake.ids().count("directory.tokens.list") == 4


def test_token_endpoint_refusals_name_the_fix_and_no_secret(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem)
    fake.refuse_scopes.add(google.SCOPE_TOKENS)
    journal: list[Any] = []

    async def go() -> None:
        async with client(fake, sa_json, on_journal=journal.append) as c:
            with pytest.raises(InvalidCredentialError) as e:
                await google.list_tokens(c, "alice@example.com")
            msg = str(e.value)
            assert "unauthorized_client" in msg and "Domain-wide delegation" in msg and google.SCOPE_TOKENS in msg
            assert e.value.status == 401
        fake.refuse_scopes.clear()
        async with google.client_for(settings("nobody@example.com"), sa_json, transport=fake.transport()) as c:
            with pytest.raises(InvalidCredentialError, match="invalid_grant: Invalid email or User ID"):
                await google.list_tokens(c, "alice@example.com")

    run(go())
    key = json.loads(sa_json)["private_key"]
    text = repr(journal)
    assert journal and all(a["raw"] not in text for a in fake.assertions)
    assert key.splitlines()[1] not in text and "assertion" not in text


def test_settings_and_secret_are_checked_before_anything_is_sent(sa_json: str) -> None:
    with pytest.raises(ConfigError, match="set client_id to the Workspace admin"):
        google.client_for(settings(None), sa_json)
    for bad, why in (("not json", "not JSON"), ('{"type": "authorized_user"}', "not 'service_account'"),
                     ('{"type": "service_account", "client_email": "a@b", "private_key": "x"}', "no private_key")):
        with pytest.raises(ConfigurationError, match=why):
            google.client_for(settings(), bad)
    evil = json.loads(sa_json) | {"token_uri": "http://attacker.example/token"}
    with pytest.raises(ConfigurationError, match="https"):
        google.client_for(settings(), json.dumps(evil))
    try:
        google.client_for(settings(), sa_json.replace("MII", "XXX"))
    except ConfigurationError as e:  # an unreadable key fails at signing, never echoing the PEM
        assert "PRIVATE KEY" not in str(e)


def test_whoami_reports_the_service_account_the_admin_and_the_scopes(
        sa_json: str, public_pem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeWorkspace(public_pem)
    fake.refuse_scopes.add(google.SCOPE_REPORTS)
    real = google.client_for
    monkeypatch.setattr(google, "client_for", lambda s, sec, **kw: real(s, sec, transport=fake.transport(), **kw))
    hook = whoami_hook("google")
    assert hook is google.whoami
    who = hook(settings(), sa_json)
    assert who["service_account"] == SA_EMAIL and who["subject"] == ADMIN
    assert who["admin"]["primaryEmail"] == ADMIN and who["admin"]["isAdmin"] is True
    assert who["scopes"] == {google.SCOPE_TOKENS: "granted", google.SCOPE_USERS: "granted",
                             google.SCOPE_REPORTS: "refused (401)"}
    assert fake.ids() == ["directory.users.get"] and fake.violations == []
    text = json.dumps(who)
    assert "PRIVATE KEY" not in text and not any(t in text for t in fake.issued)


# ------------------------------------------------------------------------------------------- tokens


def test_list_delete_with_snapshot_first_and_probe(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem, tokens={"alice@example.com": {CLIENT: grant(), OTHER_CLIENT: grant(
        OTHER_CLIENT, "Calendar Sync")}})
    snaps = Snapshots(fake)

    async def go() -> None:
        async with client(fake, sa_json) as c:
            listed = await google.list_tokens(c, "alice@example.com")
            assert {t["clientId"] for t in listed} == {CLIENT, OTHER_CLIENT}
            assert {"displayText", "scopes", "anonymous", "nativeApp"} <= set(listed[0])
            assert (await google.probe_token(c, "alice@example.com", CLIENT)).status == STILL_LIVE
            result = await google.delete_token(c, "alice@example.com", CLIENT, snaps)
            assert result["status_code"] == 204 and result["snapshot"]["clientId"] == CLIENT
            verdict = await google.probe_token(c, "alice@example.com", CLIENT)
            assert verdict.status == REVOKED_VERIFIED and verdict.http_status == 404
            again = await google.delete_token(c, "alice@example.com", CLIENT, snaps)
            assert again == {"snapshot": None, "status_code": 404}
            # A misspelled user is no proof of death.
            unknown = await google.probe_token(c, "alicee@example.com", CLIENT)
            assert unknown.status == REVOKED_UNVERIFIED
            assert [t["clientId"] for t in await google.list_tokens(c, "alice@example.com")] == [OTHER_CLIENT]

    run(go())
    assert snaps.taken == [("google.oauth_token", f"alice@example.com:{CLIENT}", snaps.taken[0][2])]
    assert snaps.deletes_before == [0]  # the snapshot came before the DELETE
    assert fake.violations == []
    deletes = [r for m, r in fake.seen if m == "directory.tokens.delete"]
    assert len(deletes) == 1 and deletes[0].url.raw_path.decode() == (
        f"/admin/directory/v1/users/alice%40example.com/tokens/{CLIENT}")


def test_a_snapshot_that_cannot_be_stored_stops_the_delete(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem, tokens={"alice@example.com": {CLIENT: grant()}})

    def refuse(*_a: Any) -> None:
        raise RuntimeError("case is read-only")

    async def go() -> None:
        async with client(fake, sa_json) as c:
            with pytest.raises(RuntimeError):
                await google.delete_token(c, "alice@example.com", CLIENT, refuse)

    run(go())
    assert "directory.tokens.delete" not in fake.ids() and CLIENT in fake.tokens["alice@example.com"]


def test_delete_across_users_pages_users_to_the_end_with_bounded_concurrency(sa_json: str, public_pem: str) -> None:
    users = [ADMIN] + [f"user{i:04d}@example.com" for i in range(1_100)]
    holders = ["user0003@example.com", "user0777@example.com", "user1099@example.com"]  # pages 1, 2 and 3
    fake = FakeWorkspace(public_pem, users=users, tokens={u: {CLIENT: grant()} for u in holders}
                         | {"user0500@example.com": {OTHER_CLIENT: grant(OTHER_CLIENT)}})
    snaps = Snapshots(fake)

    async def go() -> dict[str, Any]:
        async with client(fake, sa_json, concurrency=4) as c:
            return await google.delete_token_all_users(c, CLIENT, snaps)

    result = run(go())
    assert fake.violations == []
    listing = [r for m, r in fake.seen if m == "directory.users.list"]
    assert [r.url.params.get("pageToken") for r in listing] == [None, "500", "1000"]
    assert all(r.url.params["maxResults"] == "500" for r in listing)
    assert result["users_checked"] == len(users) and result["deleted"] == holders and result["failed"] == []
    assert result["status_code"] == 204 and len(result["snapshot"]) == 3
    assert sorted(t for _, t, _ in snaps.taken) == [f"{u}:{CLIENT}" for u in holders]
    assert fake.ids().count("directory.tokens.get") == len(users)
    assert fake.ids().count("directory.tokens.delete") == 3
    assert 1 < fake.max_in_flight <= 4
    assert all(CLIENT not in fake.tokens.get(u, {}) for u in holders) and fake.tokens["user0500@example.com"]


def test_a_user_that_fails_is_listed_and_the_rest_go_on(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem, tokens={"alice@example.com": {CLIENT: grant()},
                                              "bob@example.com": {CLIENT: grant()}})
    real = fake.api

    def flaky(request: httpx.Request) -> httpx.Response:
        if "bob%40example.com" in request.url.raw_path.decode() and request.method == "DELETE":
            return gerror(503, "backendError", "Backend Error", "UNAVAILABLE")
        return real(request)

    fake.api = flaky  # type: ignore[method-assign]

    async def go() -> dict[str, Any]:
        async with client(fake, sa_json, max_retries=1) as c:
            return await google.delete_token_all_users(c, CLIENT)

    result = run(go())
    assert result["deleted"] == ["alice@example.com"] and result["status_code"] == 503
    assert [f["user"] for f in result["failed"]] == ["bob@example.com"] and "503" in result["failed"][0]["error"]


# ------------------------------------------------------------------------------------------- rate limits, errors


def test_403_rate_limit_and_429_are_waited_out(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    fake.inject = [rate_limited_403(), httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {
        "code": 429, "message": "Quota exceeded", "errors": [{"message": "Quota exceeded", "domain": "usageLimits",
                                                              "reason": "rateLimitExceeded"}],
        "status": "RESOURCE_EXHAUSTED"}})]

    async def go() -> None:
        async with client(fake, sa_json, sleep=sleep) as c:
            assert await google.list_tokens(c, "alice@example.com") == []

    run(go())
    assert fake.ids() == ["directory.tokens.list"] * 3 and 3.0 in slept and len(slept) == 2


def test_a_rate_limit_that_persists_and_a_real_403(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem)

    async def go() -> None:
        async with client(fake, sa_json, max_retries=2) as c:
            fake.inject = [rate_limited_403() for _ in range(3)]
            with pytest.raises(RateLimitedError, match="rateLimitExceeded"):
                await google.list_tokens(c, "alice@example.com")
            assert len(fake.seen) == 3
            fake.inject = [gerror(403, "forbidden", "Not Authorized to access this resource/api", "PERMISSION_DENIED")]
            with pytest.raises(PermissionDeniedError, match="Not Authorized to access this resource/api") as e:
                await google.list_tokens(c, "alice@example.com")
            assert google.SCOPE_TOKENS in str(e.value) and len(fake.seen) == 4
            fake.inject = [gerror(403, "forbidden", "Not Authorized", "PERMISSION_DENIED")]
            verdict = await google.probe_token(c, "alice@example.com", CLIENT)
            assert verdict.status == REVOKED_UNVERIFIED and verdict.http_status == 403

    run(go())


# ------------------------------------------------------------------------------------------- Reports pull


def file_activities() -> list[dict[str, Any]]:
    """The six well-formed activities of the hand-made export (3 token, 3 login)."""
    lines = (FIX / "handmade_reports_activities.jsonl").read_text().splitlines()[:6]
    return [json.loads(line) for line in lines]


def pulled(fake: FakeWorkspace, sa: str, app: str, **kw: Any) -> list[Any]:
    async def go() -> list[Any]:
        async with client(fake, sa) as c:
            return [p async for p in google.pull_activities(c, app, **kw)]

    return run(go())


def test_pull_pages_to_the_end_newest_first_and_only_the_last_page_moves_the_cursor(
        sa_json: str, public_pem: str) -> None:
    acts = spread("token", 2_100)
    fake = FakeWorkspace(public_pem, activities={"token": acts})
    pages = pulled(fake, sa_json, "token", since="2025-08-17T00:00:00Z", until="2025-08-20T00:00:00Z")
    assert fake.violations == []
    assert [len(p.records) for p in pages] == [1000, 1000, 100]
    assert [p.cursor for p in pages[:-1]] == [None, None]
    newest = max(to_micros(a["id"]["time"]) for a in acts)
    assert pages[-1].cursor is not None and to_micros(pages[-1].cursor) == newest
    assert all(p.stream == "token" and p.format == "google-reports" for p in pages)
    reqs = [r for _, r in fake.seen]
    assert [r.url.params.get("pageToken") for r in reqs] == [None, "1000", "2000"]
    assert all(r.url.params["startTime"] == "2025-08-17T00:00:00Z" and r.url.params["endTime"] ==
               "2025-08-20T00:00:00Z" and r.url.params["maxResults"] == "1000" for r in reqs)
    assert pages[0].endpoint.startswith("GET /admin/reports/v1/activity/users/all/applications/token?")
    assert "pageToken" not in pages[0].endpoint
    # Every activity came once, each line one activity as the API gave it.
    seen = [orjson.loads(r)["id"]["uniqueQualifier"] for p in pages for r in p.records]
    assert sorted(seen) == sorted(a["id"]["uniqueQualifier"] for a in acts)
    # Resuming starts RESUME_OVERLAP_S before the cursor.
    fake.seen.clear()
    again = pulled(fake, sa_json, "token", since=None, until=None, cursor=pages[-1].cursor)
    start = fake.seen[0][1].url.params["startTime"]
    assert to_micros(start) == newest - google.RESUME_OVERLAP_S * 1_000_000 and "endTime" not in fake.seen[0][1].url.params
    assert sum(len(p.records) for p in again) == 3600 // 7 + 1 and again[-1].cursor == pages[-1].cursor


def test_an_empty_window_yields_nothing_and_keeps_the_cursor(sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem, activities={"token": spread("token", 5)})
    assert pulled(fake, sa_json, "token", since="2030-01-01T00:00:00Z", until=None) == []
    with pytest.raises(ConfigError, match="not a time"):
        pulled(fake, sa_json, "token", since="last tuesday", until=None)


def test_pull_hook_streams_filters_and_dedupe_with_the_exported_file(
        tmp_path: Path, sa_json: str, public_pem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    exported = file_activities()
    acts = {"token": [a for a in exported if a["id"]["applicationName"] == "token"] + spread("token", 1_500),
            "login": [a for a in exported if a["id"]["applicationName"] == "login"],
            "admin": [activity("admin", "2025-08-17T16:00:00Z", 1, ADMIN, "CHANGE_APPLICATION_SETTING")]}
    fake = FakeWorkspace(public_pem, activities=acts)
    real = google.client_for
    monkeypatch.setattr(google, "client_for", lambda s, sec, **kw: real(s, sec, transport=fake.transport(), **kw))
    hook = pull_hook("google")
    assert hook is google.pull

    async def collect(cursors: dict[str, str], filters: dict[str, str] | None = None) -> list[Any]:
        return [p async for p in hook(settings(), sa_json, since="2025-08-01T00:00:00Z", until=None,
                                      cursors=cursors, filters=filters)]  # type: ignore[call-arg]

    with create_case(tmp_path / "c.stanch") as case:
        (from_file,) = ingest(case, [str(FIX / "handmade_reports_activities.jsonl")], "google-reports")
        assert from_file.events_added == 7
        pages = run(collect({}))
        assert [p.stream for p in pages] == ["token", "token", "login", "admin"]
        added = dup = 0
        for p in pages:
            s = store_page(case, "gws-test", p.stream, p.format, p.data(), p.cursor, p.endpoint)
            added, dup = added + s.events_added, dup + s.duplicates
        assert dup == 7 and added == 1_500 + 1  # the pulled copies of the exported activities dedupe
        saved = stored_cursors(case, "gws-test")
        assert set(saved) == {"token", "login", "admin"}
        assert saved["login"] == "2025-08-17T14:00:00Z" and saved["admin"] == "2025-08-17T16:00:00Z"
        n = case.conn.execute("SELECT count(*) FROM events WHERE vendor = 'google'").fetchone()[0]
        assert n == 7 + 1_501
    assert fake.violations == []
    # Filters: one application, one user; the user's streams keep their own cursors.
    fake.seen.clear()
    pages = run(collect({}, {"application": "token", "user": "alice@example.com"}))
    assert {p.stream for p in pages} == {"token:user=alice@example.com"}
    assert all("/users/alice%40example.com/applications/token" in r.url.raw_path.decode() for _, r in fake.seen)
    with pytest.raises(ConfigError, match="unknown filter"):
        run(collect({}, {"client_id": CLIENT}))
    with pytest.raises(ConfigError, match="choose one of"):
        run(collect({}, {"application": "drive"}))


def test_a_pull_that_dies_mid_way_leaves_the_old_cursor(tmp_path: Path, sa_json: str, public_pem: str) -> None:
    fake = FakeWorkspace(public_pem, activities={"token": spread("token", 2_100)})
    fake_pages = pulled(fake, sa_json, "token", since="2025-08-17T00:00:00Z", until=None)
    with create_case(tmp_path / "c.stanch") as case:
        store_page(case, "gws-test", "token", "google-reports", b"", "2025-08-17T00:00:00Z", "seed")
        first = fake_pages[0]  # stored, then the pull dies
        store_page(case, "gws-test", first.stream, first.format, first.data(), first.cursor, first.endpoint)
        assert stored_cursors(case, "gws-test") == {"token": "2025-08-17T00:00:00Z"}
