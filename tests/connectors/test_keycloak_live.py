"""The live Keycloak connector (connectors/keycloak.py, section "live API"): whoami, clients, secret rotation,
sessions, logout, not-before, the events pull, event configuration, probes.

Checked against Keycloak's official OpenAPI (tests/fixtures/keycloak/spec/openapi.json, Admin REST API 26.6.0,
unchanged; provenance in that folder's SOURCES.md) served by Prism 5.14.2 — no real Keycloak runs here. Prism
validates each request (path, query types, body) and each test asserts there was no violation
(`RecordingTransport.assert_contract_kept`). What the spec lacks, the test supplies, and says so:

- The realm's token endpoint (`realms/{realm}/protocol/openid-connect/token`) is not in the Admin API spec: a
  local handler answers it (a fake client-credentials token) and every other request goes to Prism. So the
  client-credentials exchange, and `probe_old_secret`, are checked for request shape only; whether Keycloak
  answers `invalid_client` to an old secret needs a real server.
- The spec declares no security scheme, so Prism does not check the bearer token; the tests check it is sent.
- `GET /admin/realms/{realm}` is too complex for Prism to generate (500 SCHEMA_TOO_COMPLEX): the local handler
  answers it with a minimal RealmRepresentation; the PUT and push-revocation go to Prism.
- Some answers carry an `sl-violations` header that starts "Too many violations!" (response-schema violations of
  ClientRepresentation); `prism_peer.violations` reads the violation objects it still holds, so request
  violations are still seen.

Prism generates bodies from the schemas (no examples: ids are "string", times a huge negative number), so paging
(`first`/`max`), the pull's cursor in both sort orders, token refresh and the ingest into a case are tested
through an `httpx.MockTransport` with events shaped as the spec's EventRepresentation /
AdminEventRepresentation.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from casefile.case import create_case
from casefile.ingest import ingest
from casefile.live import store_page
from connectors import keycloak as kc
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import InvalidCredentialError
from connectors.pull import Page, pull_hook
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory, request_violations

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]
__all__ = ["prism_factory"]  # the fixture, imported for pytest

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "keycloak" / "spec" / "openapi.json"
CLIENT_SECRET = "stanch-FAKE-keycloak-client-secret"  # noqa: S105
ACCESS_TOKEN = "stanch-FAKE-keycloak-access-token"  # noqa: S105
NEW_SECRET = "stanch-FAKE-keycloak-rotated-secret"  # noqa: S105
REALM = "acme"
ADMIN = f"/admin/realms/{REALM}"
TOKEN = f"/realms/{REALM}/protocol/openid-connect/token"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000


def settings(url: str, client_id: str = "stanch-responder") -> ConnectorSettings:
    return ConnectorSettings(name="kc-test", kind="keycloak", url=url, client_id=client_id)


@pytest.fixture(scope="module")
def prism(prism_factory: Any) -> PrismPeer:  # noqa: F811  (the imported fixture)
    return prism_factory(SPEC)


class KcRecording(RecordingTransport):
    """RecordingTransport that answers the token endpoint and `GET /admin/realms/{realm}` locally (not
    served by Prism: see the module docstring) and makes a "Too many violations!" header readable."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.local: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN:
            self.local.append(request)
            return httpx.Response(200, json={"access_token": ACCESS_TOKEN, "expires_in": 300,
                                             "token_type": "Bearer", "scope": "profile email"})
        if request.method == "GET" and request.url.path == ADMIN:
            self.local.append(request)
            return httpx.Response(200, json={"id": "acme-id", "realm": REALM, "notBefore": 0, "enabled": True})
        return await super().handle_async_request(request)


def live(prism: PrismPeer, client_id: str = "stanch-responder", **kw: Any) -> tuple[kc.KeycloakAdmin, KcRecording]:
    transport = KcRecording(**kw)
    admin = kc.open_admin(settings(f"{prism.url}/realms/{REALM}", client_id), CLIENT_SECRET, transport=transport,
                          max_retries=0)
    return admin, transport


def check_sent(rec: KcRecording) -> None:
    """Every admin call carried the bearer token and nothing carried the client secret in clear."""
    rec.assert_contract_kept()
    for r in rec.exchanges:
        assert r.request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert CLIENT_SECRET not in str(r.request.url)
    for t in rec.local:
        if t.url.path == TOKEN:
            assert t.headers["authorization"].startswith("Basic ")
            assert t.content == b"grant_type=client_credentials"


class Snapshots:
    def __init__(self) -> None:
        self.taken: list[tuple[str, str, Any]] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body))


# ------------------------------------------------------------------------------------------- realm URL


@pytest.mark.parametrize(("url", "base", "realm"), [
    ("https://kc.example.com/realms/acme", "https://kc.example.com/", "acme"),
    ("https://kc.example.com/admin/realms/acme/", "https://kc.example.com/", "acme"),
    ("https://kc.example.com:8443/auth/realms/my-realm", "https://kc.example.com:8443/auth/", "my-realm"),
])
def test_realm_comes_from_the_connector_url(url: str, base: str, realm: str) -> None:
    assert kc.realm_of(url) == (base, realm)


def test_a_url_without_a_realm_or_a_client_id_is_refused() -> None:
    with pytest.raises(ValueError, match="must name the realm"):
        kc.realm_of("https://kc.example.com/")
    with pytest.raises(ValueError, match="needs a client_id"):
        kc.open_admin(ConnectorSettings(name="kc", kind="keycloak", url="https://kc.example.com/realms/a"), "x")


# ------------------------------------------------------------------------------------------- Prism: contract


def test_the_harness_sees_a_request_the_contract_rejects(prism: PrismPeer) -> None:
    admin, rec = live(prism)

    async def go() -> None:
        async with admin:
            with pytest.raises(Exception, match="400 from kc-test"):  # first is an int32
                await admin.request("GET", f"{ADMIN}/events", params={"first": "abc"})

    run(go())
    assert [r.status_code for r in rec.exchanges] == [400]
    assert request_violations(rec.exchanges[0])
    with pytest.raises(AssertionError, match="contract rejects"):
        rec.assert_contract_kept()


def test_whoami(prism: PrismPeer) -> None:
    assert whoami_hook("keycloak") is kc.whoami
    rec = KcRecording()
    # Prism's generated ClientRepresentation has clientId "string": the connector's client_id must match it.
    facts = kc.whoami(settings(f"{prism.url}/realms/{REALM}", "string"), CLIENT_SECRET, transport=rec,
                      max_retries=0)
    check_sent(rec)
    assert facts["realm"] == REALM and facts["service_account"] == "string" and facts["token_expires_in"] == 300
    assert [r.request.url.path for r in rec.exchanges] == [
        f"{ADMIN}/clients", f"{ADMIN}/clients/string/service-account-user", f"{ADMIN}/events/config"]
    assert rec.exchanges[0].request.url.params["clientId"] == "string"
    assert facts["event_warnings"] == [f"realm {REALM}: event types not stored: " + ", ".join(kc.NEEDED_EVENT_TYPES)]
    assert CLIENT_SECRET not in orjson.dumps(facts).decode() and ACCESS_TOKEN not in orjson.dumps(facts).decode()


def test_reads_keep_the_contract(prism: PrismPeer) -> None:
    admin, rec = live(prism)

    async def go() -> tuple[Any, ...]:
        async with admin:
            clients = await kc.list_clients(admin)
            one = await kc.find_client(admin, "string")
            online = await kc.user_sessions(admin, "u-1")
            offline = await kc.user_sessions(admin, "u-1", offline_client_uuid="c-1")
            by_client = await kc.client_sessions(admin, "c-1")
            by_client_offline = await kc.client_sessions(admin, "c-1", offline=True)
            config = await kc.event_config(admin)
            return clients, one, online, offline, by_client, by_client_offline, config

    clients, one, online, offline, by_client, by_client_offline, config = run(go())
    check_sent(rec)
    assert one["id"] == "string" and "secret" not in one and "registrationAccessToken" not in one
    assert all("secret" not in c for c in clients)
    assert [s["id"] for s in online + offline + by_client + by_client_offline] == ["string"] * 4
    assert config["events_enabled"] and config["admin_events_enabled"]
    assert config["missing_event_types"] == list(kc.NEEDED_EVENT_TYPES)  # enabledEventTypes: ["string"]
    paged = [r.request.url for r in rec.exchanges if r.request.url.path.endswith(("clients", "sessions"))
             and "users" not in r.request.url.path]
    assert all(u.params["first"] == "0" and u.params["max"] == "100" for u in paged)


def test_regenerate_secret_snapshots_without_any_secret(prism: PrismPeer) -> None:
    admin, rec = live(prism)
    snap = Snapshots()

    async def go() -> dict[str, Any]:
        async with admin:
            return await kc.regenerate_secret(admin, "c-1", snapshot=snap)

    out = run(go())
    check_sent(rec)
    assert rec.calls() == [("GET", f"{ADMIN}/clients/c-1", 200), ("POST", f"{ADMIN}/clients/c-1/client-secret", 200)]
    [(what, target, body)] = snap.taken
    assert (what, target) == ("keycloak.client", "c-1") and "secret" not in body
    assert out["rotated"] is True and out["status_code"] == 200
    assert set(out) == {"snapshot", "status_code", "rotated", "credential_type"}  # no `value` anywhere


def test_invalidate_rotated_secret_keeps_no_secret(prism: PrismPeer) -> None:
    admin, rec = live(prism)
    snap = Snapshots()

    async def go() -> dict[str, Any]:
        async with admin:
            return await kc.invalidate_rotated_secret(admin, "c-1", snapshot=snap)

    out = run(go())
    check_sent(rec)
    assert rec.calls() == [("GET", f"{ADMIN}/clients/c-1/client-secret/rotated", 200),
                           ("DELETE", f"{ADMIN}/clients/c-1/client-secret/rotated", 200)]
    [(what, target, body)] = snap.taken
    assert (what, target) == ("keycloak.rotated_secret", "c-1")
    assert not {"value", "secretData", "credentialData"} & set(body) and out["status_code"] == 200


def test_session_verbs_snapshot_then_act(prism: PrismPeer) -> None:
    admin, rec = live(prism)
    snap = Snapshots()

    async def go() -> tuple[Any, ...]:
        async with admin:
            a = await kc.logout_user(admin, "u-1", snapshot=snap)
            b = await kc.delete_session(admin, "u-1", "string", snapshot=snap)
            c = await kc.delete_session(admin, "u-1", "s-9", offline_client_uuid="c-1", snapshot=snap)
            return a, b, c

    a, b, c = run(go())
    check_sent(rec)
    assert rec.calls() == [
        ("GET", f"{ADMIN}/users/u-1/sessions", 200), ("POST", f"{ADMIN}/users/u-1/logout", 204),
        ("GET", f"{ADMIN}/users/u-1/sessions", 200), ("DELETE", f"{ADMIN}/sessions/string", 204),
        ("GET", f"{ADMIN}/users/u-1/offline-sessions/c-1", 200), ("DELETE", f"{ADMIN}/sessions/s-9", 204)]
    assert [r.request.url.params.get("isOffline") for r in rec.exchanges if r.request.method == "DELETE"] == [
        "false", "true"]
    assert [(w, t) for w, t, _ in snap.taken] == [("keycloak.user_sessions", "u-1"), ("keycloak.session", "string"),
                                                  ("keycloak.session", "s-9")]
    assert snap.taken[2][2] == {"id": "s-9", "listed": False}
    assert (a["status_code"], b["status_code"], c["status_code"]) == (204, 204, 204)


def test_not_before_snapshot_put_and_push(prism: PrismPeer) -> None:
    admin, rec = live(prism)
    snap = Snapshots()

    async def go() -> dict[str, Any]:
        async with admin:
            return await kc.revoke_not_before(admin, snapshot=snap)

    out = run(go())
    check_sent(rec)
    assert [(m, p) for m, p, _ in rec.calls()] == [("PUT", ADMIN), ("POST", f"{ADMIN}/push-revocation")]
    assert [t.method for t in rec.local if t.url.path == ADMIN] == ["GET"]  # answered locally, before the PUT
    assert snap.taken[0][:2] == ("keycloak.realm", REALM)
    put = orjson.loads(rec.exchanges[0].request.content)
    assert put == {"realm": REALM, "notBefore": out["not_before"]} and out["not_before"] > 1_700_000_000
    assert out["push_status_code"] == 200 and set(out["push"]) == {"successRequests", "failedRequests"}


def test_a_failing_snapshot_stops_the_act(prism: PrismPeer) -> None:
    admin, rec = live(prism)

    def refuse(*_: Any) -> None:
        raise RuntimeError("case is read-only")

    async def go() -> None:
        async with admin:
            with pytest.raises(RuntimeError):
                await kc.regenerate_secret(admin, "c-1", snapshot=refuse)
            with pytest.raises(RuntimeError):
                await kc.logout_user(admin, "u-1", snapshot=refuse)

    run(go())
    assert [m for m, _, _ in rec.calls()] == ["GET", "GET"]


def test_probe_session_against_the_spec(prism: PrismPeer) -> None:
    admin, rec = live(prism)

    async def go() -> tuple[Any, Any]:
        async with admin:
            return (await kc.probe_session(admin, "u-1", "string"),
                    await kc.probe_session(admin, "u-1", "gone-session", offline_client_uuid="c-1"))

    listed, gone = run(go())
    check_sent(rec)
    assert listed.status == STILL_LIVE and gone.status == REVOKED_VERIFIED


def test_probe_session_is_unverified_when_the_list_fails(prism: PrismPeer) -> None:
    admin, rec = live(prism, prefer={"/sessions": "code=403"})

    async def go() -> Any:
        async with admin:
            return await kc.probe_session(admin, "u-1", "string")

    v = run(go())
    assert v.status == REVOKED_UNVERIFIED and v.http_status == 403


def test_pull_keeps_the_contract(prism: PrismPeer) -> None:
    rec = KcRecording()
    hook = pull_hook("keycloak")
    assert hook is kc.pull

    async def go() -> list[Page]:
        return [p async for p in kc.pull(settings(f"{prism.url}/realms/{REALM}"), CLIENT_SECRET,
                                         since="2026-11-01T00:00:00Z", until="2026-11-29T00:00:00Z", cursors={},
                                         transport=rec, max_retries=0)]

    pages = run(go())
    check_sent(rec)
    assert [(p.stream, p.format, len(p.records)) for p in pages] == [("events", "keycloak-events", 1),
                                                                     ("admin-events", "keycloak-events", 1)]
    for r in rec.exchanges:
        q = r.request.url.params
        assert (q["direction"], q["dateFrom"], q["dateTo"], q["first"], q["max"]) == (
            "asc", str(ms(2026, 11, 1)), str(ms(2026, 11, 29)), "0", "100")
    assert orjson.loads(pages[1].records[0])["operationType"] == "string"


# ------------------------------------------------------------------------------------------- MockTransport

T0 = 1_764_000_000_000  # epoch ms


def event(n: int, kind: str = "REFRESH_TOKEN") -> dict[str, Any]:
    """An EventRepresentation (schema fields: id, time, type, realmId, clientId, userId, sessionId, ipAddress,
    error, details)."""
    return {"id": f"ev-{n:04d}", "time": T0 + n * 1000, "type": kind, "realmId": REALM, "clientId": "billing-api",
            "userId": "u-1", "sessionId": "s-1", "ipAddress": "203.0.113.7",
            "details": {"grant_type": "refresh_token", "refresh_token_id": f"rt-{n}", "token_id": f"at-{n}",
                        "updated_refresh_token_id": f"rt-{n + 1}"}}


def admin_event(n: int) -> dict[str, Any]:
    """An AdminEventRepresentation (id, time, realmId, authDetails{…}, operationType, resourceType,
    resourcePath, representation, error, details)."""
    return {"id": f"ad-{n:04d}", "time": T0 + n * 1000, "realmId": REALM,
            "authDetails": {"realmId": "master", "clientId": "admin-cli", "userId": "admin-1",
                            "ipAddress": "198.51.100.2"},
            "operationType": "DELETE", "resourceType": "USER_SESSION", "resourcePath": f"sessions/s-{n}"}


class Fake:
    """A Keycloak whose token endpoint issues numbered tokens and whose event listings page by first/max."""

    def __init__(self, events: list[dict[str, Any]], admin_events: list[dict[str, Any]] | None = None, *,
                 expire_after: int | None = None) -> None:
        self.events, self.admin_events = events, admin_events or []
        self.tokens = 0
        self.expire_after = expire_after  # admin calls before token 1 stops working
        self.admin_calls = 0
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == TOKEN:
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"{ACCESS_TOKEN}-{self.tokens}", "expires_in": 300})
        self.admin_calls += 1
        if (self.expire_after is not None and self.admin_calls > self.expire_after
                and request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}-1"):
            return httpx.Response(401, json={"error": "HTTP 401 Unauthorized"})
        q = request.url.params
        rows = self.events if request.url.path.endswith("/events") else self.admin_events
        first, size = int(q.get("first", 0)), int(q.get("max", 100))
        return httpx.Response(200, json=rows[first:first + size])

    def pull(self, cursors: dict[str, str] | None = None, since: str | None = None,
             page_size: int = 2) -> list[Page]:
        async def go() -> list[Page]:
            return [p async for p in kc.pull(settings(f"http://kc.test/realms/{REALM}"), CLIENT_SECRET, since=since,
                                             until=None, cursors=cursors or {}, page_size=page_size,
                                             transport=httpx.MockTransport(self.handler), max_retries=0)]

        return run(go())

    def listing(self, stream: str) -> list[httpx.URL]:
        return [r.url for r in self.requests if r.url.path.endswith(f"/{stream}")]


def test_oldest_first_pages_carry_the_newest_time_so_far() -> None:
    fake = Fake([event(n) for n in range(1, 6)], [admin_event(1)])
    pages = fake.pull(since="2025-11-24T16:00:00Z")
    assert [(p.stream, len(p.records), p.cursor) for p in pages] == [
        ("events", 2, str(T0 + 2000)), ("events", 2, str(T0 + 4000)), ("events", 1, str(T0 + 5000)),
        ("admin-events", 1, str(T0 + 1000))]
    urls = fake.listing("events")
    assert [(u.params["first"], u.params["max"]) for u in urls] == [("0", "2"), ("2", "2"), ("4", "2")]
    assert {u.params["dateFrom"] for u in urls} == {"1764000000000"} and urls[0].params["direction"] == "asc"
    assert fake.tokens == 1


def test_newest_first_pages_keep_the_old_cursor_until_the_last() -> None:
    fake = Fake([event(n) for n in range(5, 0, -1)])  # a server that ignores direction=asc
    pages = fake.pull(cursors={"events": str(T0)})
    assert [(len(p.records), p.cursor) for p in pages] == [(2, str(T0)), (2, str(T0)), (1, str(T0 + 5000))]
    assert fake.listing("events")[0].params["dateFrom"] == str(T0)


def test_a_full_last_page_ends_on_the_empty_page_and_resume_uses_the_cursor() -> None:
    fake = Fake([event(1), event(2)])
    [page] = fake.pull(page_size=2)
    assert page.cursor == str(T0 + 2000)
    assert "dateFrom" not in fake.listing("events")[0].params  # no since, no cursor: everything stored
    assert [u.params["first"] for u in fake.listing("events")] == ["0", "2"]
    again = Fake([event(2), event(3)])
    pages = again.pull(cursors={"events": page.cursor or ""}, page_size=2)
    assert again.listing("events")[0].params["dateFrom"] == str(T0 + 2000)  # inclusive: event 2 comes again
    assert pages[-1].cursor == str(T0 + 3000)


def test_a_401_mid_listing_refreshes_once_and_skips_what_was_yielded() -> None:
    fake = Fake([event(n) for n in range(1, 6)], expire_after=1)
    pages = [p for p in fake.pull() if p.stream == "events"]
    ids = [orjson.loads(r)["id"] for p in pages for r in p.records]
    assert ids == [f"ev-{n:04d}" for n in range(1, 6)]  # nothing twice, nothing lost
    assert fake.tokens == 2


def test_a_single_call_refreshes_once_on_401_then_gives_up() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == TOKEN:
            return httpx.Response(200, json={"access_token": ACCESS_TOKEN, "expires_in": 300})
        return httpx.Response(401)

    async def go() -> None:
        async with kc.open_admin(settings(f"http://kc.test/realms/{REALM}"), CLIENT_SECRET,
                                 transport=httpx.MockTransport(handler), max_retries=0) as admin:
            with pytest.raises(InvalidCredentialError):
                await kc.user_sessions(admin, "u-1")

    run(go())
    assert calls == [TOKEN, f"{ADMIN}/users/u-1/sessions", TOKEN, f"{ADMIN}/users/u-1/sessions"]


def test_a_refused_client_secret_says_so_without_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client", "error_description": "Invalid client credentials"})

    async def go() -> None:
        async with kc.open_admin(settings(f"http://kc.test/realms/{REALM}"), CLIENT_SECRET,
                                 transport=httpx.MockTransport(handler), max_retries=0) as admin:
            with pytest.raises(InvalidCredentialError, match="invalid_client") as e:
                await admin.refresh()
            assert CLIENT_SECRET not in str(e.value)

    run(go())


@pytest.mark.parametrize(("status", "body", "verdict"), [
    (401, {"error": "invalid_client"}, REVOKED_VERIFIED),
    (400, {"error": "invalid_client"}, REVOKED_VERIFIED),
    (200, {"access_token": "stanch-FAKE-still-works", "expires_in": 300}, STILL_LIVE),
    (400, {"error": "unauthorized_client"}, REVOKED_UNVERIFIED),
    (503, {}, REVOKED_UNVERIFIED),
])
def test_probe_old_secret_request_shape(status: int, body: dict[str, Any], verdict: str) -> None:
    """Request shape only: what Keycloak answers an old secret needs a real server (module docstring)."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, json=body)

    async def go() -> Any:
        async with kc.open_admin(settings(f"http://kc.test/realms/{REALM}"), CLIENT_SECRET,
                                 transport=httpx.MockTransport(handler), max_retries=0) as admin:
            return await kc.probe_old_secret(admin, "billing-api", "stanch-FAKE-old-secret"), admin.client.journal

    v, journal = run(go())
    assert v.status == verdict
    [req] = sent
    assert req.method == "POST" and req.url.path == TOKEN and req.content == b"grant_type=client_credentials"
    assert req.headers["authorization"].startswith("Basic ")
    assert "stanch-FAKE" not in v.evidence + repr(journal)


@pytest.mark.parametrize(("config", "missing", "warnings"), [
    ({"eventsEnabled": True, "adminEventsEnabled": True, "enabledEventTypes": []}, ["REFRESH_TOKEN"], 1),
    ({"eventsEnabled": True, "adminEventsEnabled": True, "enabledEventTypes": list(kc.NEEDED_EVENT_TYPES)}, [], 0),
    ({"eventsEnabled": False, "adminEventsEnabled": False}, list(kc.NEEDED_EVENT_TYPES), 2),
    ({"eventsEnabled": True, "adminEventsEnabled": False, "enabledEventTypes": ["LOGIN", "CODE_TO_TOKEN"]},
     ["REFRESH_TOKEN", "CLIENT_LOGIN", "TOKEN_EXCHANGE", "REVOKE_GRANT"], 2),
])
def test_event_config_names_what_is_not_stored(config: dict[str, Any], missing: list[str], warnings: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN:
            return httpx.Response(200, json={"access_token": ACCESS_TOKEN, "expires_in": 300})
        return httpx.Response(200, json=config)

    async def go() -> dict[str, Any]:
        async with kc.open_admin(settings(f"http://kc.test/realms/{REALM}"), CLIENT_SECRET,
                                 transport=httpx.MockTransport(handler), max_retries=0) as admin:
            return await kc.event_config(admin)

    out = run(go())
    assert out["missing_event_types"] == missing and len(out["warnings"]) == warnings


# ------------------------------------------------------------------------------------------- into a case


def test_pulled_pages_ingest_and_dedupe_with_the_exported_file(tmp_path: Path) -> None:
    events = [event(1, "CODE_TO_TOKEN"), event(2), event(3, "REFRESH_TOKEN_ERROR")]
    admins = [admin_event(4)]
    pages = Fake(events, admins).pull(page_size=2)
    for p in pages:
        for line in p.data().splitlines():  # one REST representation per line, as received
            assert orjson.loads(line) in events + admins
    export = tmp_path / "keycloak-events.json"
    export.write_bytes(orjson.dumps(events + admins))  # the REST arrays, as saved from the API

    with create_case(tmp_path / "case.stanch") as case:
        stored = [store_page(case, "kc-test", p.stream, p.format, p.data(), p.cursor, p.endpoint) for p in pages]
        assert sum(s.events_added for s in stored) == 4 and sum(s.malformed for s in stored) == 0
        before = case.conn.execute("SELECT id, vendor_id, action FROM events ORDER BY vendor_id").fetchall()
        [again] = ingest(case, [str(export)], format_name="keycloak-events")
        assert again.events_seen == 4 and again.events_added == 0 and again.duplicates == 4
        assert case.conn.execute("SELECT id, vendor_id, action FROM events ORDER BY vendor_id").fetchall() == before
        assert [(v, a) for _, v, a in before] == [("ad-0004", "token.revoke"), ("ev-0001", "token.issue"),
                                                  ("ev-0002", "token.refresh"), ("ev-0003", "auth.fail")]
        cursors = dict(case.conn.execute("SELECT stream, cursor FROM pull_cursors WHERE connector = 'kc-test'"))
        assert cursors == {"events": str(T0 + 3000), "admin-events": str(T0 + 4000)}


def test_a_429_from_keycloak_is_waited_out_and_the_listing_completes() -> None:
    # Keycloak (or the proxy in front of it) throttling with 429 + Retry-After; bodies shaped as the spec's
    # ClientRepresentation list. The token endpoint answers as in the client-credentials grant.
    calls: list[str] = []
    throttled = [True]
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == TOKEN:
            return httpx.Response(200, json={"access_token": ACCESS_TOKEN, "expires_in": 300, "token_type": "Bearer"})
        if throttled[0]:
            throttled[0] = False
            return httpx.Response(429, headers={"Retry-After": "3"})
        return httpx.Response(200, json=[{"id": "u1", "clientId": "drift", "secret": "stanch-FAKE-should-drop"}])

    async def sleep(s: float) -> None:
        waits.append(s)

    async def go() -> list[dict[str, Any]]:
        admin = kc.open_admin(settings(f"http://kc.test/realms/{REALM}"), CLIENT_SECRET, sleep=sleep,
                              transport=httpx.MockTransport(handler))
        async with admin.client:
            return await kc.list_clients(admin, "drift")

    found = asyncio.run(go())
    assert [c["clientId"] for c in found] == ["drift"] and "secret" not in found[0]
    assert waits and waits[0] >= 3 and calls.count(f"/admin/realms/{REALM}/clients") == 2
