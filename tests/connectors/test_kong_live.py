"""The live Kong connector (connectors/kong.py, section "live API"): whoami, consumers, credentials, find a leaked
key, delete a credential, revoke an oauth2 token, probes.

Checked against Kong's official OpenAPI (kong-oss.yaml, Admin API 3.9.0, plus the credential endpoints of Kong's
Konnect spec: tests/fixtures/kong/spec/kong-admin-3.9-credentials.yaml, derived by derive.py there) served by
Prism 5.14.2 — no real Kong runs here. Prism validates each request against the operation (path, query, body):
a request the contract rejects comes back 400/422 with the violation listed, and each test asserts there is none
(`RecordingTransport.assert_contract_kept`). Neither spec declares authentication, so the `Kong-Admin-Token`
header (Kong Enterprise RBAC) is checked only as sent, not by Prism.

Prism answers with the spec's static examples (its listing's `offset` is the placeholder "string", so Prism
listings are read one page, `max_pages=1`). Paging (`size`/`offset`), the oauth2 plugin's `/oauth2_tokens`
(in neither upstream spec; shapes from connectors.md §6.1, Kong's oauth2 `daos.lua`) and the proxy probe (the
proxy is not the Admin API) are tested through an `httpx.MockTransport` with bodies built from the spec's
examples and schemas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from casefile.secrets import fingerprint
from connectors import kong
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import ConnectorClient, RequestRejectedError
from connectors.pull import pull_hook
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory, request_violations

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]
__all__ = ["prism_factory"]  # the fixture, imported for pytest

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "kong" / "spec" / "kong-admin-3.9-credentials.yaml"
ADMIN_TOKEN = "stanch-FAKE-kong-admin-token"
# From the spec's examples (Prism answers them whatever the path says).
CONSUMER_ID = "8a388226-80e8-4027-a486-25e4f7db5d21"  # Consumer example (bob-the-builder)
KEY_ID = "b2f34145-0343-41a4-9602-4c69dec2f269"  # konnect KeyAuth example
EXAMPLE_KEY = "IL1deIyHyQA40WpeLeA1bIUXuvTwlGjo"  # that example's `key`: the spec's, not a real key
JWT_ID = "75695322-e8a0-4109-aed4-5416b0308d85"  # konnect JWT example
JWT_SECRET = "C50k0bcahDhLNhLKSUBSR1OMiFGzNZ7X"  # noqa: S105  (the spec's example value)
FAKE_KEY = "stanch-FAKE-kong-api-key-0001"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(url: str) -> ConnectorSettings:
    return ConnectorSettings(name="kong-test", kind="kong", url=url)


@pytest.fixture(scope="module")
def prism(prism_factory: Any) -> PrismPeer:  # noqa: F811  (the imported fixture)
    return prism_factory(SPEC)


def live(prism: PrismPeer, **kw: Any) -> tuple[ConnectorClient, RecordingTransport]:
    transport = RecordingTransport(**kw)
    return kong.client_for(settings(prism.url), ADMIN_TOKEN, transport=transport, max_retries=0), transport


class Snapshots:
    def __init__(self) -> None:
        self.taken: list[tuple[str, str, Any]] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body))


def no_raw(text: str, *raws: str) -> None:
    for raw in raws:
        assert raw not in text


# ------------------------------------------------------------------------------------------- Prism: contract


def test_the_harness_sees_a_request_the_contract_rejects(prism: PrismPeer) -> None:
    client, rec = live(prism)

    async def go() -> None:
        async with client:
            with pytest.raises(RequestRejectedError):  # size is 1..1000
                await client.request("GET", "/key-auths", params={"size": 5000})

    run(go())
    assert [r.status_code for r in rec.exchanges] == [422]
    assert request_violations(rec.exchanges[0])
    with pytest.raises(AssertionError, match="contract rejects"):
        rec.assert_contract_kept()


def test_whoami(prism: PrismPeer) -> None:
    assert whoami_hook("kong") is kong.whoami
    assert pull_hook("kong") is None  # no event feed; see the module's live section
    rec = RecordingTransport()
    facts = kong.whoami(settings(prism.url), ADMIN_TOKEN, transport=rec, max_retries=0)
    rec.assert_contract_kept()
    assert facts["edition"] == "community" and facts["node_id"]
    assert "configuration" not in facts
    [sent] = rec.exchanges
    assert sent.request.url.path == "/" and sent.request.headers[kong.ADMIN_TOKEN_HEADER] == ADMIN_TOKEN


def test_lists_fingerprint_every_secret(prism: PrismPeer) -> None:
    client, rec = live(prism)

    async def go() -> dict[str, list[dict[str, Any]]]:
        async with client:
            out = {"consumers": [c async for c in kong.list_consumers(client, tags="incident", max_pages=1)]}
            for kind in ("key-auth", "jwt", "basic-auth", "hmac-auth"):
                out[kind] = [c async for c in kong.list_credentials(client, kind, CONSUMER_ID, max_pages=1)]
            out["key-auths"] = [c async for c in kong.list_credentials(client, "key-auth", max_pages=1)]
            out["jwts"] = [c async for c in kong.list_credentials(client, "jwt", max_pages=1)]
            return out

    got = run(go())
    rec.assert_contract_kept()
    assert [c["username"] for c in got["consumers"]] == ["bob-the-builder"]
    [key] = got["key-auth"]
    assert key["id"] == KEY_ID and "key" not in key
    assert key["key_sha256"] == fingerprint(EXAMPLE_KEY).keys[0] and key["key_preview"] != EXAMPLE_KEY
    [jwt] = got["jwt"]
    assert jwt["id"] == JWT_ID and "secret" not in jwt and jwt["secret_sha256"].startswith("sha256:")
    assert got["key-auths"] == got["key-auth"] and got["jwts"] == got["jwt"]
    no_raw(orjson.dumps(got).decode(), EXAMPLE_KEY, JWT_SECRET)
    paths = [p for _, p, _ in rec.calls()]
    assert paths == ["/consumers", f"/consumers/{CONSUMER_ID}/key-auth", f"/consumers/{CONSUMER_ID}/jwt",
                     f"/consumers/{CONSUMER_ID}/basic-auth", f"/consumers/{CONSUMER_ID}/hmac-auth", "/key-auths",
                     "/jwts"]
    assert all(r.request.url.params["size"] == "1000" for r in rec.exchanges)


def test_find_key_compares_fingerprints_and_never_sends_the_key(prism: PrismPeer) -> None:
    client, rec = live(prism)

    async def go() -> tuple[Any, Any]:
        async with client:
            hit = await kong.find_key(client, EXAMPLE_KEY, max_pages=1)
            miss = await kong.find_key(client, FAKE_KEY, max_pages=1)
            return hit, miss

    hit, miss = run(go())
    rec.assert_contract_kept()
    assert miss is None
    assert hit["id"] == KEY_ID and hit["credential_key"] == f"kong-credential:{KEY_ID}"
    assert hit["consumer"] == {"id": "84a73fb8-50fc-44a7-a4d5-aa17728ee83f"}
    for r in rec.exchanges:
        no_raw(str(r.request.url), EXAMPLE_KEY, FAKE_KEY)
    no_raw(repr(client.journal) + orjson.dumps(hit).decode(), EXAMPLE_KEY, FAKE_KEY)


def test_delete_credential_snapshots_then_deletes(prism: PrismPeer) -> None:
    client, rec = live(prism)
    snap = Snapshots()

    async def go() -> dict[str, Any]:
        async with client:
            return await kong.delete_credential(client, "key-auth", CONSUMER_ID, KEY_ID, snapshot=snap)

    out = run(go())
    rec.assert_contract_kept()
    assert rec.calls() == [("GET", f"/consumers/{CONSUMER_ID}/key-auth/{KEY_ID}", 200),
                           ("DELETE", f"/consumers/{CONSUMER_ID}/key-auth/{KEY_ID}", 204)]
    [(what, target, body)] = snap.taken
    assert (what, target) == ("kong.credential", KEY_ID)
    assert body["plugin"] == "key-auth" and "key" not in body and body["key_sha256"].startswith("sha256:")
    assert out == {"snapshot": body, "status_code": 204}
    no_raw(orjson.dumps(snap.taken).decode(), EXAMPLE_KEY)


def test_a_failing_snapshot_stops_the_delete(prism: PrismPeer) -> None:
    client, rec = live(prism)

    def refuse(*_: Any) -> None:
        raise RuntimeError("case is read-only")

    async def go() -> None:
        async with client:
            with pytest.raises(RuntimeError):
                await kong.delete_credential(client, "jwt", CONSUMER_ID, JWT_ID, snapshot=refuse)

    run(go())
    assert [m for m, _, _ in rec.calls()] == ["GET"]


def test_bad_ids_and_kinds_are_refused_before_any_request() -> None:
    client = kong.client_for(settings("http://127.0.0.1:9"), ADMIN_TOKEN, max_retries=0)

    async def go() -> None:
        async with client:
            with pytest.raises(ValueError, match="not a Kong id"):
                await kong.delete_credential(client, "key-auth", "../plugins", KEY_ID)
            with pytest.raises(ValueError, match="unknown Kong credential kind"):
                await kong.probe_credential(client, "ldap", CONSUMER_ID, KEY_ID)

    run(go())
    assert client.journal == []


def test_probe_credential(prism: PrismPeer) -> None:
    async def go(**kw: Any) -> Any:
        client, rec = live(prism, **kw)
        async with client:
            verdict = await kong.probe_credential(client, "key-auth", CONSUMER_ID, KEY_ID)
        rec.assert_contract_kept()
        return verdict

    live_now = run(go())
    assert live_now.status == STILL_LIVE and live_now.http_status == 200
    gone = run(go(prefer={"/key-auth/": "code=404"}))
    assert gone.status == REVOKED_VERIFIED and gone.http_status == 404


# ------------------------------------------------------------------------------------------- MockTransport


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> ConnectorClient:
    return kong.client_for(settings("http://kong-admin.test:8001"), ADMIN_TOKEN,
                           transport=httpx.MockTransport(handler), max_retries=0)


def key_auth(n: int, key: str) -> dict[str, Any]:
    """A KeyAuth object shaped as the spec's schema/example (consumer, created_at, id, key, tags, ttl)."""
    return {"consumer": {"id": CONSUMER_ID}, "created_at": 1700000000 + n, "id": f"00000000-0000-4000-8000-{n:012d}",
            "key": key, "tags": ["incident"], "ttl": None}


def test_find_key_pages_with_size_and_offset() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        offset = request.url.params.get("offset")
        if offset is None:
            return httpx.Response(200, json={"data": [key_auth(1, "stanch-FAKE-other-1"), key_auth(2, "x" * 32)],
                                             "next": "/key-auths?offset=T2Zmc2V0MQ", "offset": "T2Zmc2V0MQ"})
        assert offset == "T2Zmc2V0MQ"
        return httpx.Response(200, json={"data": [key_auth(3, FAKE_KEY)], "next": None})

    async def go() -> Any:
        async with mock(handler) as client:
            return await kong.find_key(client, f"  {FAKE_KEY}\n")  # the fingerprint trims whitespace

    hit = run(go())
    assert hit["id"].endswith("000000000003") and hit["credential_key"] == f"kong-credential:{hit['id']}"
    assert [u.params.get("offset") for u in seen] == [None, "T2Zmc2V0MQ"]
    assert all(u.params["size"] == "1000" and u.path == "/key-auths" for u in seen)
    no_raw(" ".join(str(u) for u in seen), FAKE_KEY)


def oauth2_token(token_id: str) -> dict[str, Any]:
    # connectors.md §6.1 (oauth2 daos.lua): id, credential{id}, service, token_type, expires_in, access_token,
    # refresh_token, authenticated_userid, scope, created_at. Not in either upstream spec.
    return {"id": token_id, "credential": {"id": "c0ffee00-0000-4000-8000-000000000001"}, "service": None,
            "token_type": "bearer", "expires_in": 7200, "access_token": "stanch-FAKE-kong-oauth2-access",
            "refresh_token": "stanch-FAKE-kong-oauth2-refresh", "authenticated_userid": "alice",
            "scope": "read", "created_at": 1700000000}


def test_oauth2_token_revoke_and_probe_by_id() -> None:
    token_id = "7d1bd4a4-0000-4000-8000-000000000009"
    state = {"deleted": False}
    calls: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        assert request.headers[kong.ADMIN_TOKEN_HEADER] == ADMIN_TOKEN
        if request.url.path == "/oauth2_tokens":
            return httpx.Response(200, json={"data": [oauth2_token(token_id)], "next": None})
        if request.method == "DELETE":
            state["deleted"] = True
            return httpx.Response(204)
        if state["deleted"]:
            return httpx.Response(404, json={"message": "Not found"})
        return httpx.Response(200, json=oauth2_token(token_id))

    snap = Snapshots()

    async def go() -> tuple[Any, ...]:
        async with mock(handler) as client:
            listed = [t async for t in kong.list_oauth2_tokens(client)]
            before = await kong.probe_oauth2_token(client, token_id)
            out = await kong.revoke_oauth2_token(client, token_id, snapshot=snap)
            after = await kong.probe_oauth2_token(client, token_id)
            return listed, before, out, after

    listed, before, out, after = run(go())
    assert before.status == STILL_LIVE and after.status == REVOKED_VERIFIED and after.http_status == 404
    assert out["status_code"] == 204 and snap.taken[0][:2] == ("kong.oauth2_token", token_id)
    for body in (listed[0], snap.taken[0][2]):
        assert "access_token" not in body and "refresh_token" not in body
        assert body["access_token_sha256"] == fingerprint("stanch-FAKE-kong-oauth2-access").keys[0]
    assert calls == [("GET", "/oauth2_tokens"), ("GET", f"/oauth2_tokens/{token_id}"),
                     ("GET", f"/oauth2_tokens/{token_id}"), ("DELETE", f"/oauth2_tokens/{token_id}"),
                     ("GET", f"/oauth2_tokens/{token_id}")]


@pytest.mark.parametrize(("status", "verdict"), [(401, REVOKED_VERIFIED), (200, STILL_LIVE),
                                                 (403, REVOKED_UNVERIFIED), (404, REVOKED_UNVERIFIED),
                                                 (503, REVOKED_UNVERIFIED)])
@pytest.mark.parametrize("in_query", [False, True])
def test_probe_proxy_with_a_key(status: int, verdict: str, in_query: bool) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, json={"message": "Invalid authentication credentials"})

    async def go() -> Any:
        async with ConnectorClient("kong-proxy", "http://kong-proxy.test:8000",
                                   transport=httpx.MockTransport(handler), max_retries=0) as proxy:
            v = await kong.probe_proxy(proxy, FAKE_KEY, "/orders?limit=1", in_query=in_query)
            return v, proxy.journal

    v, journal = run(go())
    assert v.status == verdict and v.http_status == status
    [req] = sent
    assert req.method == "GET" and kong.ADMIN_TOKEN_HEADER not in req.headers
    if in_query:
        assert req.url.params["apikey"] == FAKE_KEY and "apikey" not in req.headers
    else:
        assert req.headers["apikey"] == FAKE_KEY and "apikey" not in req.url.params
    no_raw(v.evidence + repr(journal), FAKE_KEY)


def test_probe_proxy_with_a_bearer_credential_is_the_gateway_probe() -> None:
    token = "stanch-FAKE-kong-oauth2-access"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {token}"
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    async def go() -> Any:
        async with ConnectorClient("kong-proxy", "http://kong-proxy.test:8000",
                                   transport=httpx.MockTransport(handler), max_retries=0) as proxy:
            return await kong.probe_proxy(proxy, token, "/orders", kind="oauth2")

    v = run(go())
    assert v.status == REVOKED_VERIFIED and "gateway kong-proxy" in v.evidence


def test_a_429_from_kong_is_waited_out_and_the_listing_completes() -> None:
    # Kong's rate-limiting plugin answers 429 with Retry-After (Kong docs: "Rate Limiting plugin", headers);
    # the listing's body is shaped as the Admin API's paginated collection ({"data": [...], "offset": ...}).
    answers = [httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "API rate limit exceeded"}),
               httpx.Response(200, json={"data": [{"id": "c1", "username": "drift"}], "offset": "p2"}),
               httpx.Response(200, json={"data": [{"id": "c2", "username": "sync"}], "offset": None})]
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    async def go() -> list[dict[str, Any]]:
        async with kong.client_for(settings("http://kong.test:8001"), ADMIN_TOKEN, sleep=sleep,
                                   transport=httpx.MockTransport(lambda r: answers.pop(0))) as c:
            return [x async for x in kong.list_consumers(c)]

    assert [x["id"] for x in asyncio.run(go())] == ["c1", "c2"]
    assert waits and waits[0] >= 2
