"""The live GitHub connector (connectors/github.py, section "live API"): whoami, App auth, revoke, probes, pull.

Checked against GitHub's official OpenAPI (github/rest-api-description via @octokit/openapi 23.0.2, ghec, subset)
served by Prism 5.14.2 — no real GitHub runs here. The subset is tests/fixtures/github/spec/github-subset.json
(cut by make_subset.py beside it; provenance in that folder's SOURCES.md). Prism validates every request against
the operation (path, query, body, the bearer scheme the subset adds): a request GitHub's contract rejects comes
back 422/401 with `sl-violations`, and each Prism test asserts there is none (`assert_contract_kept`). Prism
cannot express "403 when authenticated" for `POST /credentials/revoke`, so that test checks the absence of the
Authorization header itself.

Prism answers with the spec's static examples, so paging, the `after` cursor in `Link`, resume and the
`x-ratelimit-*` headers are tested through an `httpx.MockTransport` passed to the client (`transport=`), with
bodies taken from the same subset's examples (`audit-log`, `org-pat-grant-paginated`, `installation-token`).
App auth signs with a throwaway RSA key made here; the JWT is checked with PyJWT against its public key. Every
token is built at runtime (`fake_token`), so no line here looks like a credential.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from casefile.case import create_case
from casefile.ingest import ingest
from casefile.live import store_page
from connectors import github
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import (
    ConnectorClient,
    InvalidCredentialError,
    PermissionDeniedError,
    RequestRejectedError,
)
from connectors.pull import Page, pull_hook
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE
from tests.conftest import fake_token
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory, request_violations

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]
__all__ = ["prism_factory"]  # the fixture, imported for pytest

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "github" / "spec" / "github-subset.json"
PAT = fake_token("ghp_", 36, salt="conn")  # the responder's own token
LEAKED = fake_token("ghp_", 36, salt="leak")  # a token found in the wild
APP_ID = "123456"
ORG = "acme"
# From the spec's examples (Prism answers with them whatever the path says).
GRANT_ID = 25381  # org-pat-grant-paginated
INSTALLATION_ID = 1  # installation
DOC_IDS = ["xJJFlFOhQ6b-5vaAFy9Rjw", "Vqvg6kZ4MYqwWRKFDzlMoQ", "LwW2vpJZCDS-WUmo9Z-ifw"]  # audit-log
# installation-token's expires_at is 2016-07-11T22:14:10Z: a clock an hour before keeps it fresh.
TOKEN_TIME = datetime(2016, 7, 11, 21, 14, 10, tzinfo=UTC).timestamp()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(url: str, *, app: bool = False) -> ConnectorSettings:
    return ConnectorSettings(name="gh-test", kind="github", url=url, client_id=APP_ID if app else None)


@pytest.fixture(scope="module")
def spec_examples() -> dict[str, Any]:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    return {name: ex["value"] for name, ex in spec["components"]["examples"].items()}


@pytest.fixture(scope="module")
def rsa_key() -> tuple[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


@pytest.fixture(scope="module")
def prism(prism_factory: Any) -> PrismPeer:  # noqa: F811  (the imported fixture)
    return prism_factory(SPEC)


def live(prism: PrismPeer, *, app_key: str | None = None, clock: float | None = None, **kw: Any
         ) -> tuple[github.GitHubClient, RecordingTransport]:
    transport = RecordingTransport(**kw)
    opts: dict[str, Any] = {"transport": transport, "max_retries": 0}
    if clock is not None:
        opts["clock"] = lambda: clock
    s = settings(f"{prism.url}/orgs/{ORG}", app=app_key is not None)
    return github.client_for(s, app_key or PAT, **opts), transport


class Snapshots:
    def __init__(self) -> None:
        self.taken: list[tuple[str, str, Any]] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body))


# ------------------------------------------------------------------------------------------- settings


def test_connector_url_names_the_api_root_and_the_org() -> None:
    assert github.split_url("https://api.github.com/orgs/acme") == ("https://api.github.com", "acme")
    assert github.split_url("https://ghe.example.com/api/v3/orgs/acme/") == ("https://ghe.example.com/api/v3", "acme")
    assert github.split_url("https://api.github.com") == ("https://api.github.com", None)
    with pytest.raises(ValueError):
        github.split_url("https://api.github.com/orgs/a%2Fb")
    with pytest.raises(ValueError, match="private key"):
        github.client_for(settings("https://api.github.com/orgs/acme", app=True), PAT)


# ------------------------------------------------------------------------------------------- Prism: contract


def test_the_harness_sees_a_request_the_contract_rejects(prism: PrismPeer) -> None:
    client, rec = live(prism)

    async def go() -> None:
        async with client:
            with pytest.raises(RequestRejectedError):  # include is web|git|all
                await client.request("GET", f"orgs/{ORG}/audit-log", params={"include": "everything"})
            with pytest.raises(RequestRejectedError):  # pat_id is an integer
                await client.request("POST", f"orgs/{ORG}/personal-access-tokens/abc", json={"action": "revoke"})
            with pytest.raises(RequestRejectedError):  # credentials is an array
                await client.request("POST", "credentials/revoke", json={"credentials": "x"}, auth={})

    run(go())
    assert [r.status_code for r in rec.exchanges] == [422, 422, 422]
    assert all(request_violations(r) for r in rec.exchanges)
    with pytest.raises(AssertionError, match="contract rejects"):
        rec.assert_contract_kept()


def test_missing_credential_is_refused(prism: PrismPeer) -> None:
    async def go() -> None:
        async with ConnectorClient("gh-test", prism.url, max_retries=0) as client:
            with pytest.raises(InvalidCredentialError):
                await client.request("GET", "user")

    run(go())


def test_whoami_with_a_token(prism: PrismPeer) -> None:
    hook = whoami_hook("github")
    assert hook is github.whoami
    facts = hook(settings(prism.url), PAT)
    assert facts == {"auth": "token", "login": "octocat", "id": 1, "type": "User", "scopes": None}
    client, rec = live(prism)

    async def go() -> dict[str, Any]:
        async with client:
            return await github.me(client)

    assert run(go()) == facts
    rec.assert_contract_kept()
    [r] = rec.exchanges
    assert r.request.url.path == "/user"
    assert r.request.headers["Authorization"] == f"Bearer {PAT}"
    assert r.request.headers["X-GitHub-Api-Version"] == github.API_VERSION
    assert all(PAT not in repr(e) for e in client.journal)


def test_whoami_as_an_app_signs_a_jwt_and_finds_the_installation(prism: PrismPeer, rsa_key: tuple[str, Any]) -> None:
    pem, public = rsa_key
    client, rec = live(prism, app_key=pem, clock=TOKEN_TIME)

    async def go() -> dict[str, Any]:
        async with client:
            return await github.me(client)

    facts = run(go())
    assert facts["auth"] == "app" and facts["slug"] == "octoapp" and facts["app_id"] == 1
    assert facts["org"] == ORG and facts["installation_id"] == INSTALLATION_ID
    rec.assert_contract_kept()
    assert [(m, p) for m, p, _ in rec.calls()] == [
        ("GET", "/app"), ("GET", f"/orgs/{ORG}/installation"),
        ("POST", f"/app/installations/{INSTALLATION_ID}/access_tokens")]
    for r in rec.exchanges:
        token = r.request.headers["Authorization"].removeprefix("Bearer ")
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "RS256"
        claims = jwt.decode(token, public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
        assert claims == {"iat": int(TOKEN_TIME) - 60, "exp": int(TOKEN_TIME) + 540, "iss": APP_ID}
        assert claims["exp"] - int(TOKEN_TIME) <= 600
    assert pem not in repr(client.journal) and "PRIVATE KEY" not in repr(facts)


# ------------------------------------------------------------------------------------------- Prism: leaked tokens


def test_revoke_credentials_is_unauthenticated_batched_and_snapshotted(prism: PrismPeer) -> None:
    client, rec = live(prism)
    tokens = [LEAKED] + [fake_token("github_pat_", 82, salt=f"b{i}") for i in range(1000)]
    snaps = Snapshots()

    async def go() -> dict[str, Any]:
        async with client:
            return await github.revoke_credentials(client, tokens + [LEAKED], snapshot=snaps)

    out = run(go())
    rec.assert_contract_kept()
    assert out["status_code"] == 202 and out["submitted"] == 1001
    assert [len(orjson.loads(r.request.content)["credentials"]) for r in rec.exchanges] == [1000, 1]
    assert all("authorization" not in r.request.headers for r in rec.exchanges)  # GitHub: authenticated = 403
    [(what, target, body)] = snaps.taken
    assert what == "github.credentials" and target.startswith("sha256:")
    assert len(body["credentials"]) == 1001 and LEAKED not in repr(body) and LEAKED not in target
    assert body["credentials"][0]["preview"].startswith("ghp_")
    assert all(LEAKED not in repr(e) for e in client.journal)


@pytest.mark.parametrize("prefer, status", [(None, STILL_LIVE), ("code=401", REVOKED_VERIFIED),
                                            ("code=403", REVOKED_UNVERIFIED)])
def test_probe_token_sends_the_leaked_token_to_get_user(prism: PrismPeer, prefer: str | None, status: str) -> None:
    client, rec = live(prism, prefer={"/user": prefer} if prefer else None)

    async def go() -> Any:
        async with client:
            return await github.probe_token(client, LEAKED)

    verdict = run(go())
    assert verdict.status == status, verdict
    [r] = rec.exchanges
    assert r.request.headers["Authorization"] == f"Bearer {LEAKED}"
    assert not request_violations(r)
    assert LEAKED not in repr(verdict) and all(LEAKED not in repr(e) for e in client.journal)


# ------------------------------------------------------------------------------------------- Prism: org fine-grained PATs


def test_fine_grained_pat_inventory_and_org_access_revoke(prism: PrismPeer, rsa_key: tuple[str, Any]) -> None:
    client, rec = live(prism, app_key=rsa_key[0], clock=TOKEN_TIME)
    snaps = Snapshots()

    async def go() -> tuple[Any, ...]:
        async with client:
            grants = [g async for g in github.list_fine_grained_pats(client)]
            repos = [r async for r in github.list_pat_repositories(client, GRANT_ID)]
            one = await github.revoke_fine_grained_pat(client, GRANT_ID, snapshot=snaps)
            bulk = await github.revoke_fine_grained_pats(client, [GRANT_ID], snapshot=snaps)
            probe = await github.probe_fine_grained_pat(client, GRANT_ID)
            return grants, repos, one, bulk, probe

    grants, repos, one, bulk, probe = run(go())
    rec.assert_contract_kept()
    assert [g["id"] for g in grants] == [GRANT_ID] and grants[0]["token_id"] == 98716
    assert repos[0]["full_name"] == "octocat/Hello-World"
    assert one["status_code"] == 204 and bulk["status_code"] == 202
    # Prism still lists the grant afterwards: org access revoke requested, not proven
    assert one["verdict"]["status"] == REVOKED_UNVERIFIED and "org access" in one["verdict"]["evidence"]
    assert probe.status == STILL_LIVE
    assert [(w, t) for w, t, _ in snaps.taken] == [("github.fine_grained_pat", f"{ORG}/{GRANT_ID}")] * 2
    assert snaps.taken[0][2]["grant"]["token_name"] == "Some Token"
    calls = [(m, p) for m, p, _ in rec.calls()]
    assert calls.count(("POST", f"/app/installations/{INSTALLATION_ID}/access_tokens")) == 1  # cached
    assert calls.count(("GET", f"/orgs/{ORG}/installation")) == 1
    revoke = next(r for r in rec.exchanges if r.request.url.path == f"/orgs/{ORG}/personal-access-tokens/{GRANT_ID}")
    assert orjson.loads(revoke.request.content) == {"action": "revoke"}
    assert revoke.request.headers["Authorization"] == "Bearer ghs_EXAMPLE-FAKE"  # the installation token
    snap_at = rec.exchanges.index(revoke)
    assert rec.exchanges[snap_at - 1].request.method == "GET"  # listed (snapshotted) right before the act


def test_a_failing_snapshot_stops_the_act(prism: PrismPeer, rsa_key: tuple[str, Any]) -> None:
    client, rec = live(prism, app_key=rsa_key[0], clock=TOKEN_TIME)

    def refuse(*_: Any) -> None:
        raise RuntimeError("case is read-only")

    async def go() -> None:
        async with client:
            with pytest.raises(RuntimeError):
                await github.revoke_fine_grained_pat(client, GRANT_ID, snapshot=refuse)
            with pytest.raises(RuntimeError):
                await github.revoke_credentials(client, [LEAKED], snapshot=refuse)

    run(go())
    assert all(r.request.method == "GET" or "access_tokens" in r.request.url.path for r in rec.exchanges)


def test_unknown_pat_id_is_refused_before_any_act(prism: PrismPeer, rsa_key: tuple[str, Any]) -> None:
    client, rec = live(prism, app_key=rsa_key[0], clock=TOKEN_TIME)

    async def go() -> None:
        async with client:
            with pytest.raises(Exception, match="lists no fine-grained PAT grant 98716"):
                await github.revoke_fine_grained_pat(client, 98716)  # a token_id, not the grant id
            with pytest.raises(ValueError):
                await github.revoke_fine_grained_pat(client, "12; drop")  # type: ignore[arg-type]

    run(go())
    assert not any(r.request.method == "POST" and "personal-access-tokens" in r.request.url.path
                   for r in rec.exchanges)


# ------------------------------------------------------------------------------------------- Prism: pull


def test_pull_hook_against_the_spec(prism: PrismPeer) -> None:
    assert pull_hook("github") is github.pull
    journal: list[Any] = []
    transport = RecordingTransport()

    async def go() -> list[Page]:
        return [p async for p in github.pull(settings(f"{prism.url}/orgs/{ORG}"), PAT, since="2020-11-01T00:00:00Z",
                                             until=None, cursors={}, on_journal=journal.append, transport=transport)]

    [page] = run(go())
    transport.assert_contract_kept()
    assert page.stream == "audit-log" and page.format == "github-audit"
    assert [orjson.loads(line)["_document_id"] for line in page.records] == DOC_IDS
    assert page.cursor == f"1605719148837:{DOC_IDS[2]}"  # the page's last event (Prism ignores order=asc)
    [r] = transport.exchanges
    q = r.request.url.params
    assert q["phrase"] == "created:>=2020-10-31"  # a day of margin and q["include"] == "all" and q["order"] == "asc"
    assert q["per_page"] == "100" and "after" not in q
    assert page.endpoint.startswith(f"GET /orgs/{ORG}/audit-log?phrase=created") and PAT not in page.endpoint
    assert len(journal) == 1 and PAT not in repr(journal)


def test_pull_with_app_auth_and_a_window_keeps_the_contract(prism: PrismPeer, rsa_key: tuple[str, Any]) -> None:
    client, rec = live(prism, app_key=rsa_key[0], clock=TOKEN_TIME)

    async def go() -> list[Page]:
        async with client:
            return [p async for p in github.pull_audit_log(client, since="2020-11-20T00:00:00Z",
                                                           until="2020-12-01T00:00:00Z")]

    [page] = run(go())
    rec.assert_contract_kept()
    # only the event inside the window (2020-11-27), not the ones on 2020-12-02 or 2020-11-18
    assert [orjson.loads(line)["_document_id"] for line in page.records] == [DOC_IDS[1]]
    audit = rec.exchanges[-1]
    assert audit.request.url.params["phrase"] == "created:2020-11-19..2020-12-02"
    assert audit.request.headers["Authorization"] == "Bearer ghs_EXAMPLE-FAKE"


# ------------------------------------------------------------------------------------------- MockTransport: paging, limits


class Recorded:
    """Canned responses (bodies from the spec's examples) through `httpx.MockTransport`, with a fake clock."""

    def __init__(self, responses: list[httpx.Response], now: float = 1_700_000_000.0) -> None:
        self.responses = responses
        self.requests: list[httpx.Request] = []
        self.slept: list[float] = []
        self.now = now

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def client(self, *, app_key: str | None = None) -> github.GitHubClient:
        return github.client_for(settings("https://api.github.example/orgs/acme", app=app_key is not None),
                                 app_key or PAT, transport=httpx.MockTransport(self.handler), sleep=self.sleep,
                                 clock=self.clock)


def _page(events: list[Any], *, next_q: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
    link = {"link": f'<https://api.github.example{next_q}>; rel="next"'} if next_q else {}
    return httpx.Response(200, json=events, headers={**link, **(headers or {})})


@pytest.fixture
def audit(spec_examples: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(spec_examples["audit-log"], key=lambda e: e["@timestamp"])  # as order=asc returns them


def test_paging_follows_the_after_cursor_in_link_verbatim(audit: list[dict[str, Any]]) -> None:
    rec = Recorded([
        _page(audit[:2], next_q="/organizations/1/audit-log?after=MS42MDY1MDcxMTcwMDh8VnF2Zw%3D%3D&per_page=100"),
        _page(audit[2:], next_q=None),
    ])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in github.pull_audit_log(client, since="2020-11-01T00:00:00Z", until=None)]

    pages = run(go())
    assert [len(p.records) for p in pages] == [2, 1]
    assert [p.cursor for p in pages] == [f"1606507117008:{DOC_IDS[1]}", f"1606929874512:{DOC_IDS[0]}"]
    assert str(rec.requests[1].url) == ("https://api.github.example/organizations/1/audit-log"
                                        "?after=MS42MDY1MDcxMTcwMDh8VnF2Zw%3D%3D&per_page=100")
    assert pages[1].endpoint.startswith("GET /organizations/1/audit-log?after=")


def test_pull_resumes_from_the_cursor_by_time(audit: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorded([_page(audit, next_q=None)])
    build = github.client_for
    monkeypatch.setattr(github, "client_for", lambda s, secret, **kw: build(
        s, secret, transport=httpx.MockTransport(rec.handler), sleep=rec.sleep, clock=rec.clock, **kw))

    async def go() -> list[Page]:
        return [p async for p in github.pull(settings("https://api.github.example/orgs/acme"), PAT,
                                             since="2019-01-01T00:00:00Z", until=None,
                                             cursors={"audit-log": f"1606507117008:{DOC_IDS[1]}"})]

    [page] = run(go())
    q = rec.requests[0].url.params
    assert q["phrase"] == "created:>=2020-11-26"  # the cursor's day (less a day of margin) wins over since
    # the event before the cursor is skipped; the one at the cursor comes again (it dedupes by _document_id)
    assert [orjson.loads(line)["_document_id"] for line in page.records] == [DOC_IDS[1], DOC_IDS[0]]


def test_until_stops_paging(audit: list[dict[str, Any]]) -> None:
    rec = Recorded([_page(audit, next_q="/orgs/acme/audit-log?after=X")])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in github.pull_audit_log(client, since=None, until="2020-11-30T00:00:00Z")]

    [page] = run(go())
    assert len(page.records) == 2 and len(rec.requests) == 1  # past `until`: the next page is not fetched


def test_rate_limit_headers_and_a_rate_limit_403_wait(audit: list[dict[str, Any]]) -> None:
    now = 1_700_000_000.0
    limited = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
               "x-ratelimit-reset": str(int(now) + 7), "x-ratelimit-resource": "core"}
    rec = Recorded([
        _page(audit[:1], next_q="/orgs/acme/audit-log?after=P2", headers=limited),
        # GitHub answers an exhausted primary limit with 403 (not 429), x-ratelimit-remaining 0
        httpx.Response(403, json={"message": "API rate limit exceeded for installation ID 1."},
                       headers={**limited, "x-ratelimit-reset": str(int(now) + 20)}),
        _page(audit[1:], next_q=None, headers={"x-ratelimit-remaining": "4999",
                                               "x-ratelimit-reset": str(int(now) + 3600)}),
    ], now=now)

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in github.pull_audit_log(client, since=None, until=None)]

    pages = run(go())
    assert [len(p.records) for p in pages] == [1, 2] and len(rec.requests) == 3
    assert rec.slept == [pytest.approx(7.0), pytest.approx(13.0)]  # each wait ends at x-ratelimit-reset
    assert str(rec.requests[1].url) == str(rec.requests[2].url)


def test_secondary_limit_403_honours_retry_after_and_a_real_403_is_a_refusal(audit: list[dict[str, Any]]) -> None:
    rec = Recorded([
        httpx.Response(403, json={"message": "You have exceeded a secondary rate limit."},
                       headers={"retry-after": "30"}),
        _page(audit, next_q=None),
        httpx.Response(403, json={"message": "Resource not accessible by integration"}),
    ])

    async def go() -> None:
        async with rec.client() as client:
            assert len([p async for p in github.pull_audit_log(client, since=None, until=None)]) == 1
            with pytest.raises(PermissionDeniedError):
                await client.request("GET", "orgs/acme/audit-log")

    run(go())
    assert rec.slept == [30.0]


def test_off_origin_next_link_is_refused(audit: list[dict[str, Any]]) -> None:
    rec = Recorded([httpx.Response(200, json=audit, headers={"link": '<https://evil.example/x?after=Z>; rel="next"'})])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in github.pull_audit_log(client, since=None, until=None)]

    with pytest.raises(Exception, match="refused to send"):
        run(go())
    assert len(rec.requests) == 1


def test_installation_token_is_cached_until_shortly_before_expiry(spec_examples: dict[str, Any],
                                                                  rsa_key: tuple[str, Any]) -> None:
    pem, public = rsa_key
    now = 1_700_000_000.0
    token1, token2 = fake_token("ghs_", 36, salt="one"), fake_token("ghs_", 36, salt="two")
    expires = datetime.fromtimestamp(now + 3600, UTC).isoformat().replace("+00:00", "Z")
    minted = {**spec_examples["installation-token"], "token": token1, "expires_at": expires}
    rec = Recorded([
        httpx.Response(200, json=spec_examples["installation"]),
        httpx.Response(201, json=minted),
        httpx.Response(200, json=[]), httpx.Response(200, json=[]),
        httpx.Response(201, json={**minted, "token": token2,
                                  "expires_at": datetime.fromtimestamp(now + 7200, UTC).isoformat()}),
        httpx.Response(200, json=[]),
    ], now=now)

    async def go() -> None:
        async with rec.client(app_key=pem) as client:
            await client.get_json("orgs/acme/personal-access-tokens")
            rec.now += 3000  # 10 minutes before expiry: still fresh
            await client.get_json("orgs/acme/personal-access-tokens")
            rec.now += 400  # within 5 minutes of expiry: a new token
            await client.get_json("orgs/acme/personal-access-tokens")
            assert token1 not in repr(client.journal) and token2 not in repr(client.journal)

    run(go())
    paths = [(r.method, r.url.path) for r in rec.requests]
    assert paths == [("GET", "/orgs/acme/installation"), ("POST", "/app/installations/1/access_tokens"),
                     ("GET", "/orgs/acme/personal-access-tokens"), ("GET", "/orgs/acme/personal-access-tokens"),
                     ("POST", "/app/installations/1/access_tokens"), ("GET", "/orgs/acme/personal-access-tokens")]
    auths = [r.headers["Authorization"].removeprefix("Bearer ") for r in rec.requests]
    assert auths[2] == auths[3] == token1 and auths[5] == token2
    claims = jwt.decode(auths[4], public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == APP_ID and claims["iat"] == int(now + 3400) - 60 and claims["exp"] == int(now + 3400) + 540


def test_org_access_revoke_is_verified_when_the_grant_is_gone(spec_examples: dict[str, Any],
                                                              rsa_key: tuple[str, Any]) -> None:
    grants = spec_examples["org-pat-grant-paginated"]
    rec = Recorded([
        httpx.Response(200, json=spec_examples["installation"]),
        httpx.Response(201, json={**spec_examples["installation-token"], "expires_at": "2100-01-01T00:00:00Z"}),
        httpx.Response(200, json=grants),
        httpx.Response(204),
        httpx.Response(200, json=[]),
    ])

    async def go() -> dict[str, Any]:
        async with rec.client(app_key=rsa_key[0]) as client:
            return await github.revoke_fine_grained_pat(client, GRANT_ID)

    out = run(go())
    assert out["status_code"] == 204 and out["snapshot"]["grant"]["id"] == GRANT_ID
    assert out["verdict"]["status"] == REVOKED_VERIFIED
    assert out["verdict"]["evidence"].startswith("org access only") and "token itself still exists" in (
        out["verdict"]["evidence"])


# ------------------------------------------------------------------------------------------- same id, pulled or exported


@pytest.fixture
def pulled_pages(audit: list[dict[str, Any]]) -> Iterator[list[Page]]:
    rec = Recorded([_page(audit[:2], next_q="/orgs/acme/audit-log?after=P2"), _page(audit[1:], next_q=None)])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in github.pull_audit_log(client, since=None, until=None)]

    yield run(go())


def test_pulled_and_exported_event_get_the_same_id(tmp_path: Path, pulled_pages: list[Page],
                                                   audit: list[dict[str, Any]]) -> None:
    export = tmp_path / "github-audit.jsonl"  # one audit event JSON object per line, as streaming writes it
    export.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in audit))

    with create_case(tmp_path / "case.stanch") as case:
        summaries = [store_page(case, "gh-test", p.stream, p.format, p.data(), p.cursor, p.endpoint)
                     for p in pulled_pages]
        assert sum(s.events_added for s in summaries) == 3  # the event on both pages is stored once
        assert sum(s.duplicates for s in summaries) == 1
        pulled = case.conn.execute("SELECT id, vendor_id FROM events ORDER BY id").fetchall()
        [again] = ingest(case, [str(export)], format_name="github-audit")
        assert again.events_seen == 3 and again.events_added == 0 and again.duplicates == 3
        assert case.conn.execute("SELECT id, vendor_id FROM events ORDER BY id").fetchall() == pulled
        assert sorted(v for _, v in pulled) == sorted(DOC_IDS)
        assert all(i == f"github:{v}" for i, v in pulled)
        cursor = case.conn.execute("SELECT cursor FROM pull_cursors WHERE connector = 'gh-test'").fetchone()[0]
        assert cursor == f"1606929874512:{DOC_IDS[0]}"
