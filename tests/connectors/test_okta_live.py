"""The live Okta connector (connectors/okta.py, section "live"): pull, verbs, probes, whoami.

Checked against Okta's official OpenAPI (okta-management-openapi-spec, subset) served by Prism 5.14.2 — no real
Okta runs here. The subset is tests/fixtures/okta/spec/okta-management-subset.yaml (release 2026.06.3, cut by
tests/peers/prism/subset.py; provenance in that folder's SOURCES.md). Prism validates every request against
the operation (path, query, security): a request Okta's contract rejects comes back 400/422 and is listed in
Prism's `sl-violations` header, and each test asserts there is none (`RecordingTransport.assert_contract_kept`).

Prism answers with the spec's static examples, so paging, cursors and rate limits are tested separately,
through an `httpx.MockTransport`, with response bodies recorded from Okta's documentation: the spec's own
examples `ListLogs`, `ListLogsWithAdditionalSecurityContext` (a single LogEvent in the spec; served here as
the one-item array the operation returns) and `ErrorTooManyRequests`, read from the same subset file, with
the `Link` (`rel="self"`, `rel="next"` carrying `after`) and `X-Rate-Limit-*` headers Okta documents for
`GET /api/v1/logs` (connectors.md §1.1-1.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from casefile.case import create_case
from casefile.ingest import ingest
from casefile.live import store_page
from connectors import okta
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import ConnectorClient, InvalidCredentialError, RequestRejectedError
from connectors.pull import Page, pull_hook
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory, request_violations

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]
__all__ = ["prism_factory"]  # the fixture, imported for pytest

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "okta" / "spec" / "okta-management-subset.yaml"
TOKEN = "00FAKE-okta-api-token-for-tests-only"
# Ids from the spec's examples (Prism answers with them whatever the path says).
API_TOKEN_ID = "00Tabcdefg1234567890"  # ApiTokenMetadataResponse
APP_ID = "0oabskvc6442nkvQO0h7"  # OAuth2RefreshTokenResponseEx.clientId
APP_TOKEN_ID = "oar579Mcp7OUsNTlo0g3"  # OAuth2RefreshTokenResponseEx
USER_ID = "00ub0oNGTSWTBKOLGLNR"  # user-example
GRANT_ID = "oag3ih1zrm1cBFOiq0h6"
EVENT_UUID = "dc9fd3c0-598c-11ef-8478-2b7584bf8d5a"  # ListLogs


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(url: str) -> ConnectorSettings:
    return ConnectorSettings(name="okta-test", kind="okta", url=url)


@pytest.fixture(scope="module")
def examples() -> dict[str, Any]:
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return {name: ex["value"] for name, ex in spec["components"]["examples"].items()}


@pytest.fixture(scope="module")
def prism(prism_factory: Any) -> PrismPeer:  # noqa: F811  (the imported fixture)
    return prism_factory(SPEC)


class Snapshots:
    def __init__(self) -> None:
        self.taken: list[tuple[str, str, Any]] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body))


def live(prism: PrismPeer, **kw: Any) -> tuple[ConnectorClient, RecordingTransport]:
    transport = RecordingTransport(**kw)
    return okta.client_for(settings(prism.url), TOKEN, transport=transport, max_retries=0), transport


# ------------------------------------------------------------------------------------------- Prism: contract


def test_the_harness_sees_a_request_the_contract_rejects(prism: PrismPeer) -> None:
    # limit is 1..200 on listOAuth2TokensForApplication: Prism must refuse 500 (422, no 400 in the spec).
    client, rec = live(prism)

    async def go() -> None:
        async with client:
            with pytest.raises(RequestRejectedError):
                await client.request("GET", f"/api/v1/apps/{APP_ID}/tokens", params={"limit": 500})
            # oauthTokens is a boolean
            with pytest.raises(RequestRejectedError):
                await client.request("DELETE", f"/api/v1/users/{USER_ID}/sessions", params={"oauthTokens": "maybe"})
            # /api/v1/logs declares its own 400, which Prism uses for a bad sortOrder
            with pytest.raises(RequestRejectedError) as e:
                await client.request("GET", "/api/v1/logs", params={"sortOrder": "SIDEWAYS"})
            assert e.value.status == 400

    run(go())
    statuses = [r.status_code for r in rec.exchanges]
    assert statuses == [422, 422, 400]
    assert all(request_violations(r) for r in rec.exchanges), [(dict(r.headers), r.text) for r in rec.exchanges]
    with pytest.raises(AssertionError, match="contract rejects"):
        rec.assert_contract_kept()


def test_missing_credential_is_refused(prism: PrismPeer) -> None:
    async def go() -> None:
        async with ConnectorClient("okta-test", prism.url, max_retries=0) as client:
            with pytest.raises(InvalidCredentialError):
                await client.request("GET", "/api/v1/api-tokens")

    run(go())


def test_whoami(prism: PrismPeer) -> None:
    hook = whoami_hook("okta")
    assert hook is okta.whoami
    facts = hook(settings(prism.url), TOKEN)
    assert facts == {"id": USER_ID, "login": "isaac.brock@example.com", "status": "ACTIVE"}
    assert TOKEN not in repr(facts)
    client, rec = live(prism)

    async def go() -> dict[str, Any]:
        async with client:
            return await okta.me(client)

    assert run(go()) == facts
    rec.assert_contract_kept()
    [r] = rec.exchanges
    assert r.request.url.path == "/api/v1/users/me"
    assert r.request.headers["Authorization"] == f"SSWS {TOKEN}"
    assert all(TOKEN not in repr(entry) for entry in client.journal)


def test_pull_hook_against_the_spec(prism: PrismPeer) -> None:
    assert pull_hook("okta") is okta.pull
    journal: list[Any] = []

    async def go() -> list[Page]:
        return [p async for p in okta.pull(settings(prism.url), TOKEN, since="2024-08-13T00:00:00Z", until=None,
                                           cursors={}, on_journal=journal.append)]

    [page] = run(go())
    assert page.stream == "system-log" and page.format == "okta-system-log"
    [line] = page.records
    assert orjson.loads(line)["uuid"] == EVENT_UUID
    # Prism sends no Link header, so the page's cursor is its last event's time (bounded-style resume).
    assert page.cursor == "since:2024-08-13T15:58:20.353Z"
    assert page.endpoint.startswith("GET /api/v1/logs?") and "limit=1000" in page.endpoint
    assert "sortOrder=ASCENDING" in page.endpoint and TOKEN not in page.endpoint
    assert len(journal) == 1 and TOKEN not in repr(journal)


@pytest.mark.parametrize("since, until, cursor", [
    ("2024-08-13T00:00:00Z", None, None),
    ("2024-08-13T00:00:00Z", "2024-08-14T00:00:00Z", None),
    (None, None, "after:1723564700353_1"),
    ("2024-08-13T00:00:00Z", "2024-08-14T00:00:00Z", "since:2024-08-13T15:58:20.353Z"),
])
def test_pull_requests_keep_the_contract(prism: PrismPeer, since: str | None, until: str | None,
                                         cursor: str | None) -> None:
    client, rec = live(prism)

    async def go() -> list[Page]:
        async with client:
            return [p async for p in okta.pull_logs(client, since=since, until=until, cursor=cursor)]

    assert len(run(go())) == 1
    rec.assert_contract_kept()
    [r] = rec.exchanges
    q = r.request.url.params
    assert q["limit"] == "1000" and q["sortOrder"] == "ASCENDING"
    if cursor and cursor.startswith("after:"):
        assert q["after"] == cursor[6:] and "since" not in q  # Okta: after cannot be combined with since
    assert q.get("until") == until


def test_inventory_lists(prism: PrismPeer, examples: dict[str, Any]) -> None:
    client, rec = live(prism)

    async def go() -> tuple[Any, ...]:
        async with client:
            return (await okta.list_api_tokens(client), await okta.list_app_tokens(client, APP_ID, expand_scope=True),
                    await okta.list_user_grants(client, USER_ID, scope_id="okta.users.read", expand_scope=True))

    tokens, app_tokens, grants = run(go())
    rec.assert_contract_kept()
    assert tokens == examples["ApiTokenListMetadataResponse"]
    assert app_tokens == examples["OAuth2RefreshTokenResponseListEx"]
    assert grants and grants[0]["id"] == GRANT_ID
    assert rec.calls() == [("GET", "/api/v1/api-tokens", 200), ("GET", f"/api/v1/apps/{APP_ID}/tokens", 200),
                           ("GET", f"/api/v1/users/{USER_ID}/grants", 200)]
    assert rec.exchanges[1].request.url.params["limit"] == "200"


VERBS = [
    ("revoke_api_token", (API_TOKEN_ID,), "okta.api_token", API_TOKEN_ID,
     [("GET", f"/api/v1/api-tokens/{API_TOKEN_ID}", 200), ("DELETE", f"/api/v1/api-tokens/{API_TOKEN_ID}", 204)]),
    ("revoke_app_token", (APP_ID, APP_TOKEN_ID), "okta.app_token", APP_TOKEN_ID,
     [("GET", f"/api/v1/apps/{APP_ID}/tokens/{APP_TOKEN_ID}", 200),
      ("DELETE", f"/api/v1/apps/{APP_ID}/tokens/{APP_TOKEN_ID}", 204)]),
    ("revoke_app_tokens", (APP_ID,), "okta.app_tokens", APP_ID,
     [("GET", f"/api/v1/apps/{APP_ID}/tokens", 200), ("DELETE", f"/api/v1/apps/{APP_ID}/tokens", 204)]),
    ("revoke_user_grant", (USER_ID, GRANT_ID), "okta.user_grant", GRANT_ID,
     [("GET", f"/api/v1/users/{USER_ID}/grants/{GRANT_ID}", 200),
      ("DELETE", f"/api/v1/users/{USER_ID}/grants/{GRANT_ID}", 204)]),
    ("revoke_user_grants", (USER_ID,), "okta.user_grants", USER_ID,
     [("GET", f"/api/v1/users/{USER_ID}/grants", 200), ("DELETE", f"/api/v1/users/{USER_ID}/grants", 204)]),
    ("clear_user_sessions", (USER_ID,), "okta.user_sessions", USER_ID,
     [("GET", f"/api/v1/users/{USER_ID}", 200), ("GET", f"/api/v1/users/{USER_ID}/clients", 200),
      ("DELETE", f"/api/v1/users/{USER_ID}/sessions", 204)]),
    ("deactivate_app", (APP_ID,), "okta.app", APP_ID,
     [("GET", f"/api/v1/apps/{APP_ID}", 200), ("POST", f"/api/v1/apps/{APP_ID}/lifecycle/deactivate", 200)]),
    ("activate_app", (APP_ID,), "okta.app", APP_ID,
     [("GET", f"/api/v1/apps/{APP_ID}", 200), ("POST", f"/api/v1/apps/{APP_ID}/lifecycle/activate", 200)]),
]


@pytest.mark.parametrize("verb, args, what, target, calls", VERBS, ids=[v[0] for v in VERBS])
def test_verb_snapshots_then_acts_within_the_contract(prism: PrismPeer, verb: str, args: tuple[str, ...], what: str,
                                                      target: str, calls: list[tuple[str, str, int]]) -> None:
    client, rec = live(prism)
    snap = Snapshots()
    seen_before_act: list[int] = []

    def snapshot(w: str, t: str, body: Any) -> None:
        seen_before_act.append(len(rec.exchanges))  # the act has not been sent yet
        snap(w, t, body)

    async def go() -> dict[str, Any]:
        async with client:
            result: dict[str, Any] = await getattr(okta, verb)(client, *args, snapshot=snapshot)
            return result

    result = run(go())
    rec.assert_contract_kept()
    assert rec.calls() == calls
    assert seen_before_act == [len(calls) - 1]
    [(w, t, body)] = snap.taken
    assert (w, t) == (what, target)
    assert body and result["snapshot"] == body
    assert result["status_code"] == calls[-1][2]
    if verb == "clear_user_sessions":
        q = rec.exchanges[-1].request.url.params
        assert (q["oauthTokens"], q["forgetDevices"]) == ("true", "false")
        assert body["user"]["id"] == USER_ID and isinstance(body["clients"], list)


def test_a_failing_snapshot_stops_the_act(prism: PrismPeer) -> None:
    client, rec = live(prism)

    def refuse(*_: Any) -> None:
        raise RuntimeError("case not writable")

    async def go() -> None:
        async with client:
            await okta.revoke_api_token(client, API_TOKEN_ID, snapshot=refuse)

    with pytest.raises(RuntimeError, match="case not writable"):
        run(go())
    assert [m for m, _, _ in rec.calls()] == ["GET"]


def test_verbs_refuse_bad_ids_and_the_current_token(prism: PrismPeer) -> None:
    client, rec = live(prism)

    async def go() -> None:
        async with client:
            with pytest.raises(ValueError, match="own token"):
                await okta.revoke_api_token(client, "current")
            with pytest.raises(ValueError, match="not an Okta id"):
                await okta.revoke_app_token(client, APP_ID, "../../users/me")
            with pytest.raises(ValueError, match="not an Okta id"):
                await okta.probe_api_token(client, "a/b")

    run(go())
    assert rec.exchanges == []


# ------------------------------------------------------------------------------------------- Prism: probes


def test_probe_api_token(prism: PrismPeer) -> None:
    async def go(**kw: Any) -> Any:
        client, rec = live(prism, **kw)
        async with client:
            verdict = await okta.probe_api_token(client, API_TOKEN_ID)
        rec.assert_contract_kept()
        return verdict

    live_v = run(go())
    assert live_v.status == STILL_LIVE and live_v.http_status == 200
    gone = run(go(prefer={"/api/v1/api-tokens/": "code=404"}))
    assert gone.status == REVOKED_VERIFIED and gone.http_status == 404 and "E0000007" in gone.evidence
    denied = run(go(prefer={"/api/v1/api-tokens/": "code=403"}))
    assert denied.status == REVOKED_UNVERIFIED and denied.http_status == 403
    throttled = run(go(prefer={"/api/v1/api-tokens/": "code=429"}))
    assert throttled.status == REVOKED_UNVERIFIED and throttled.http_status == 429


def test_probe_app_token(prism: PrismPeer) -> None:
    async def go(**kw: Any) -> Any:
        client, rec = live(prism, **kw)
        async with client:
            verdict = await okta.probe_app_token(client, APP_ID, APP_TOKEN_ID)
        rec.assert_contract_kept()
        return verdict, rec.calls()

    verdict, calls = run(go())
    assert verdict.status == STILL_LIVE and verdict.expires_at == "2023-03-16T03:18:06.000Z"
    verdict, calls = run(go(prefer={"/tokens/": "code=404"}))
    assert verdict.status == REVOKED_VERIFIED, verdict
    assert calls == [("GET", f"/api/v1/apps/{APP_ID}/tokens/{APP_TOKEN_ID}", 404), ("GET", f"/api/v1/apps/{APP_ID}", 200)]
    # a 404 for the token *and* the app proves nothing about the token (wrong app id?)
    verdict, _ = run(go(prefer={"/api/v1/apps/": "code=404"}))
    assert verdict.status == REVOKED_UNVERIFIED and "app id" in verdict.evidence


# ------------------------------------------------------------------------------------------- recorded: paging


def _link(path_query: str, rel: str) -> str:
    return f'<https://acme.okta.example{path_query}>; rel="{rel}"'


class Recorded:
    """Serves recorded pages in order and keeps each request; `sleep`/`clock` are the client's fakes."""

    def __init__(self, responses: list[httpx.Response], now: float = 1_700_000_000.0) -> None:
        self.responses = list(responses)
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

    def client(self) -> ConnectorClient:
        return okta.client_for(settings("https://acme.okta.example"), TOKEN, transport=httpx.MockTransport(self.handler),
                               sleep=self.sleep, clock=self.clock)


def _page(events: list[Any], *, self_q: str, next_q: str | None, headers: dict[str, str] | None = None
          ) -> httpx.Response:
    links = [_link(self_q, "self")] + ([_link(next_q, "next")] if next_q else [])
    return httpx.Response(200, json=events, headers=[("link", v) for v in links] + list((headers or {}).items()))


@pytest.fixture
def events(examples: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    return examples["ListLogs"], [examples["ListLogsWithAdditionalSecurityContext"]]


def test_polling_follows_next_links_and_stops_on_the_empty_page(events: tuple[list[Any], list[Any]]) -> None:
    first, second = events
    rec = Recorded([
        _page(first, self_q="/api/v1/logs?limit=1000&sortOrder=ASCENDING&since=2024-08-13T00%3A00%3A00Z",
              next_q="/api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700353_1"),
        _page(second, self_q="/api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700353_1",
              next_q="/api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700999_1"),
        # polling mode: the empty page still has a next link (Okta always returns one); it means "caught up"
        _page([], self_q="/api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700999_1",
              next_q="/api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700999_1"),
    ])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in okta.pull_logs(client, since="2024-08-13T00:00:00Z", until=None)]

    pages = run(go())
    assert [p.cursor for p in pages] == ["after:1723564700353_1", "after:1723564700999_1"]
    assert [len(p.records) for p in pages] == [1, 1]
    urls = [str(r.url) for r in rec.requests]
    assert urls[0] == ("https://acme.okta.example/api/v1/logs?limit=1000&sortOrder=ASCENDING"
                       "&since=2024-08-13T00%3A00%3A00Z")
    # next links followed verbatim
    assert urls[1] == "https://acme.okta.example/api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700353_1"
    assert urls[2] == "https://acme.okta.example/api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700999_1"
    assert len(rec.requests) == 3
    assert pages[1].endpoint == "GET /api/v1/logs?limit=1000&sortOrder=ASCENDING&after=1723564700353_1"


def test_pull_resumes_from_the_stored_cursor_with_after_and_no_since(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorded([_page([], self_q="/api/v1/logs?after=X", next_q="/api/v1/logs?after=X")])
    build = okta.client_for
    monkeypatch.setattr(okta, "client_for", lambda s, secret, **kw: build(
        s, secret, transport=httpx.MockTransport(rec.handler), sleep=rec.sleep, clock=rec.clock, **kw))

    async def go() -> list[Page]:
        return [p async for p in okta.pull(settings("https://acme.okta.example"), TOKEN, since="2024-01-01T00:00:00Z",
                                           until=None, cursors={"system-log": "after:1723564700999_1"})]

    assert run(go()) == []  # caught up: nothing new, and no page, so the stored cursor stays where it was
    q = rec.requests[0].url.params
    assert q["after"] == "1723564700999_1" and "since" not in q and q["sortOrder"] == "ASCENDING"


def test_bounded_pull_ends_without_next_and_resumes_from_the_last_published(
        events: tuple[list[Any], list[Any]]) -> None:
    first, _ = events
    rec = Recorded([_page(first, self_q="/api/v1/logs?since=a&until=b", next_q=None)])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in okta.pull_logs(client, since="2024-08-13T00:00:00Z",
                                                    until="2024-08-14T00:00:00Z")]

    [page] = run(go())
    assert page.cursor == "since:2024-08-13T15:58:20.353Z"
    assert len(rec.requests) == 1
    assert okta._log_query(None, "2024-08-14T00:00:00Z", page.cursor)["since"] == "2024-08-13T15:58:20.353Z"


def test_rate_limit_remaining_zero_waits_for_the_reset(events: tuple[list[Any], list[Any]],
                                                       examples: dict[str, Any]) -> None:
    first, second = events
    now = 1_700_000_000.0
    rec = Recorded([
        _page(first, self_q="/api/v1/logs?since=a", next_q="/api/v1/logs?after=P2",
              headers={"X-Rate-Limit-Limit": "60", "X-Rate-Limit-Remaining": "0",
                       "X-Rate-Limit-Reset": str(int(now) + 7)}),
        # over the limit anyway (concurrency): 429 E0000047 with a reset 3 s on
        httpx.Response(429, json=examples["ErrorTooManyRequests"],
                       headers={"X-Rate-Limit-Limit": "60", "X-Rate-Limit-Remaining": "0",
                                "X-Rate-Limit-Reset": str(int(now) + 10)}),
        _page(second, self_q="/api/v1/logs?after=P2", next_q=None,
              headers={"X-Rate-Limit-Limit": "60", "X-Rate-Limit-Remaining": "59",
                       "X-Rate-Limit-Reset": str(int(now) + 60)}),
    ], now=now)

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in okta.pull_logs(client, since="2024-08-13T00:00:00Z", until="2024-08-14T00:00:00Z")]

    pages = run(go())
    assert len(pages) == 2 and len(rec.requests) == 3
    assert rec.slept[0] == pytest.approx(7.0)  # nothing remained: wait for X-Rate-Limit-Reset before page 2
    assert sum(rec.slept) == pytest.approx(10.0)  # then the 429's reset
    assert str(rec.requests[1].url) == str(rec.requests[2].url)  # the same page, retried


def test_off_origin_next_link_is_refused(events: tuple[list[Any], list[Any]]) -> None:
    first, _ = events
    bad = httpx.Response(200, json=first, headers={"link": '<https://evil.example/api/v1/logs?after=Z>; rel="next"'})
    rec = Recorded([bad])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in okta.pull_logs(client, since=None, until=None)]

    with pytest.raises(Exception, match="refused to send"):
        run(go())
    assert len(rec.requests) == 1


# ------------------------------------------------------------------------------------------- same id, pulled or exported


@pytest.fixture
def pulled_pages(events: tuple[list[Any], list[Any]]) -> Iterator[list[Page]]:
    first, second = events
    rec = Recorded([
        _page(first, self_q="/api/v1/logs?since=a", next_q="/api/v1/logs?after=P2"),
        _page(second, self_q="/api/v1/logs?after=P2", next_q="/api/v1/logs?after=P3"),
        _page([], self_q="/api/v1/logs?after=P3", next_q="/api/v1/logs?after=P3"),
    ])

    async def go() -> list[Page]:
        async with rec.client() as client:
            return [p async for p in okta.pull_logs(client, since="2024-08-13T00:00:00Z", until=None)]

    yield run(go())


def test_pulled_and_exported_event_get_the_same_id(tmp_path: Path, pulled_pages: list[Page],
                                                   events: tuple[list[Any], list[Any]]) -> None:
    first, _ = events
    # One LogEvent JSON object per line, as the parser reads an export.
    for page in pulled_pages:
        for line in page.data().splitlines():
            assert orjson.loads(line)["uuid"] == EVENT_UUID
    export = tmp_path / "okta-export.json"
    export.write_bytes(orjson.dumps(first))  # the /api/v1/logs JSON array, as saved from the API or a SIEM

    with create_case(tmp_path / "case.stanch") as case:
        summaries = [store_page(case, "okta-test", p.stream, p.format, p.data(), p.cursor, p.endpoint)
                     for p in pulled_pages]
        assert sum(s.events_added for s in summaries) == 1  # the same uuid on both pages: one event
        pulled_ids = case.conn.execute("SELECT id, vendor_id FROM events").fetchall()
        [again] = ingest(case, [str(export)], format_name="okta-system-log")
        assert again.events_seen == 1 and again.events_added == 0 and again.duplicates == 1
        assert case.conn.execute("SELECT id, vendor_id FROM events").fetchall() == pulled_ids
        [(event_id, vendor_id)] = pulled_ids
        assert vendor_id == EVENT_UUID
        cursor = case.conn.execute("SELECT cursor FROM pull_cursors WHERE connector = 'okta-test'").fetchone()[0]
        assert cursor == "after:P3"
        assert event_id
