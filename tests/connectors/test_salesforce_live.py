"""The live Salesforce connector (connectors/salesforce.py, section "live"): whoami, OauthToken inventory past the
2,500-row cap, revoke by DeleteToken, probes, OAuth usage, and the pull (EventLogFile, LoginHistory,
SetupAuditTrail).

Checked against an OpenAPI fragment written from Salesforce's REST and OAuth reference
(tests/fixtures/salesforce/spec) served by Prism 5.14.2 — no real Salesforce runs here; the pages are named in
the fragment. Prism validates every request against the operation (path, query, form body, bearer auth) and each
Prism test asserts no violation (`RecordingTransport.assert_contract_kept`). Prism answers every query with one
static example, chosen here per request from the SOQL's object (`Prefer: example=…`).

Paging to the end via `nextRecordsUrl`, the OauthToken cap (a fake org of more than 2,500 tokens that, like the
Object Reference says, stops returning rows after 2,500 per query), throttling and the error shapes are tested
through an `httpx.MockTransport` whose bodies follow the documented shapes: the query answer `{totalSize, done,
nextRecordsUrl, records}` (REST API Developer Guide, Query / Query More Results), the error array
`[{message, errorCode}]` with 401 `INVALID_SESSION_ID` and 403 `REQUEST_LIMIT_EXCEEDED` (Status Codes and Error
Responses), and the revoke endpoint's 400 `invalid_token` (Revoking OAuth Tokens). Tokens are fake, built at run
time (tests/conftest.py `fake_token`), and must never reach the journal, an error, a snapshot or the case.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from casefile import live
from casefile.case import create_case
from casefile.ingest import ingest
from connectors import salesforce as sf
from connectors.config import ConfigError, ConnectorSettings, whoami_hook
from connectors.http import ConnectorClient, InvalidCredentialError, RateLimitedError, RequestRejectedError
from connectors.pull import Page, pull_hook
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE
from tests.conftest import fake_token
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory, request_violations

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]
__all__ = ["prism_factory"]  # the fixture, imported for pytest

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce" / "spec" / "salesforce-fragment.yaml"
ACCESS = fake_token("00D5j000000AcMe!", 40, salt="access")  # the responder's session id (fake)
TOKEN_ID = "0CJ5j000000DrFtGAK"
USER_ID = "0055j000003DrFtAAK"
PLACEHOLDER = b"DELETE-TOKEN-PLACEHOLDER"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(url: str) -> ConnectorSettings:
    return ConnectorSettings(name="sf-test", kind="salesforce", url=url)


@pytest.fixture(scope="module")
def prism(prism_factory: Any) -> PrismPeer:  # noqa: F811  (the imported fixture)
    return prism_factory(SPEC)


def _example_for(q: str) -> str:
    if "COUNT()" in q:
        return "count"
    if "DeleteToken" in q:
        return "oneToken"
    for name, example in (("OauthToken", "oauthTokens"), ("EventLogFile", "eventLogFiles"),
                          ("LoginHistory", "loginHistory"), ("SetupAuditTrail", "setupAuditTrail")):
        if f"FROM {name}" in q:
            return example
    return "none"


class SFTransport(RecordingTransport):
    """Prism, with the example chosen from the SOQL (`Prefer: example=…`), `override` (path fragment → Prefer)
    taking precedence, and the spec's DeleteToken placeholder replaced by a fake token built at run time."""

    def __init__(self, delete_token: str, override: dict[str, str] | None = None) -> None:
        super().__init__()
        self.delete_token = delete_token
        self.override = dict(override or {})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        q = request.url.params.get("q")
        chosen = next((v for frag, v in self.override.items() if frag in str(request.url)), None)
        if chosen:
            request.headers["Prefer"] = chosen
        elif q is not None:
            request.headers["Prefer"] = f"example={_example_for(q)}"
        response = await super().handle_async_request(request)
        if PLACEHOLDER in response.content:
            headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
            response = httpx.Response(response.status_code, headers=headers, request=request,
                                      content=response.content.replace(PLACEHOLDER, self.delete_token.encode()))
            self.exchanges[-1] = response
        return response


def live_client(prism: PrismPeer, delete_token: str = "", **override: str) -> tuple[ConnectorClient, SFTransport]:
    transport = SFTransport(delete_token or fake_token("5Aep861", 40, salt="delete"), override)
    return sf.client_for(settings(prism.url), ACCESS, transport=transport, max_retries=0), transport


def journal_text(client: ConnectorClient) -> str:
    return repr(client.journal)


# ------------------------------------------------------------------------------------------- Prism: contract


def test_the_harness_sees_a_request_the_fragment_rejects(prism: PrismPeer) -> None:
    client, rec = live_client(prism)

    async def go() -> None:
        async with client:
            with pytest.raises(RequestRejectedError):
                await client.request("GET", sf.QUERY_PATH)  # q is required
            with pytest.raises(RequestRejectedError):
                await client.request("GET", sf.QUERY_PATH, params={"q": "DELETE FROM OauthToken"})
            with pytest.raises(RequestRejectedError):
                await client.request("POST", sf.REVOKE_PATH, data={"nottoken": "x"})

    run(go())
    assert all(request_violations(r) for r in rec.exchanges), [(r.status_code, r.text) for r in rec.exchanges]
    with pytest.raises(AssertionError, match="contract rejects"):
        rec.assert_contract_kept()


def test_missing_credential_is_refused(prism: PrismPeer) -> None:
    async def go() -> None:
        async with ConnectorClient("sf-test", prism.url, max_retries=0) as client:
            with pytest.raises(InvalidCredentialError):
                await client.request("GET", sf.LIMITS_PATH)

    run(go())


def test_whoami(prism: PrismPeer) -> None:
    hook = whoami_hook("salesforce")
    assert hook is sf.whoami
    facts = hook(settings(prism.url), f"Bearer {ACCESS}")
    assert facts == {"user_id": "0055j000003RspDAAS", "organization_id": "00D5j000000AcMeEAK",
                     "preferred_username": "responder@acme-demo.example"}
    client, rec = live_client(prism)

    async def go() -> dict[str, Any]:
        async with client:
            return await sf.me(client)

    assert run(go()) == facts
    rec.assert_contract_kept()
    [r] = rec.exchanges
    assert r.request.url.path == "/services/oauth2/userinfo"
    assert r.request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert ACCESS not in journal_text(client)


def test_inventory_and_oauth_usage(prism: PrismPeer) -> None:
    client, rec = live_client(prism)

    async def go() -> tuple[Any, ...]:
        async with client:
            return (await sf.count_tokens(client, app_name="Drift"), await sf.list_tokens(client, app_name="Drift"),
                    await sf.oauth_usage(client))

    n, tokens, usage = run(go())
    rec.assert_contract_kept()
    assert n == 2 and [t["AppName"] for t in tokens] == ["Drift", "Salesforce CLI"]  # Prism's static example
    assert all(not sf.SECRET_FIELDS & t.keys() for t in tokens)
    qs = [r.request.url.params["q"] for r in rec.exchanges]
    assert qs[0] == "SELECT COUNT() FROM OauthToken WHERE AppName = 'Drift'"
    assert qs[2].startswith("SELECT Id, AppName, UserId, CreatedDate, LastUsedDate, UseCount, AppMenuItemId FROM "
                            "OauthToken WHERE AppName = 'Drift'")
    assert all("DeleteToken" not in q and "AccessToken" not in q for q in qs)
    assert usage[0]["app_name"] == "Drift" and usage[0]["use_count"] == 48211 and usage[0]["users"] == 1


class Snapshots:
    def __init__(self, rec: RecordingTransport) -> None:
        self.rec = rec
        self.taken: list[tuple[str, str, Any, int]] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body, len(self.rec.exchanges)))


def test_revoke_fetches_the_delete_token_snapshots_then_revokes(prism: PrismPeer, tmp_path: Path) -> None:
    delete_token = fake_token("5Aep861", 40, salt="delete")
    client, rec = live_client(prism, delete_token)
    snap = Snapshots(rec)

    async def go() -> dict[str, Any]:
        async with client:
            return await sf.revoke_token(client, sf.TokenKey(id=TOKEN_ID), snapshot=snap)

    result = run(go())
    rec.assert_contract_kept()
    assert rec.calls() == [("GET", sf.QUERY_PATH, 200), ("POST", "/services/oauth2/revoke", 200)]
    assert rec.exchanges[0].request.url.params["q"].endswith(f"FROM OauthToken WHERE Id = '{TOKEN_ID}'")
    post = rec.exchanges[1].request
    assert parse_qs(post.content.decode()) == {"token": [delete_token]}
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    [(what, target, body, sent)] = snap.taken
    assert (what, target, sent) == ("salesforce.oauth_token", TOKEN_ID, 1)  # before the POST
    assert body == {"attributes": body["attributes"], "Id": TOKEN_ID, "AppName": "Drift", "UserId": USER_ID,
                    "CreatedDate": "2024-11-02T14:20:01.000+0000", "LastUsedDate": "2025-08-17T11:15:42.000+0000",
                    "UseCount": 48211, "AppMenuItemId": "0Pp5j000000DrFtCAK"}
    assert result == {"snapshot": body, "status_code": 200}
    assert delete_token not in repr(result) and delete_token not in journal_text(client)
    with create_case(tmp_path / "c.stanch") as case:
        live.store_snapshot(case, "sf-test", what, target, body)
    assert delete_token.encode() not in (tmp_path / "c.stanch").read_bytes()


def test_a_failing_snapshot_stops_the_revoke(prism: PrismPeer) -> None:
    client, rec = live_client(prism)

    def refuse(*_: Any) -> None:
        raise RuntimeError("case not writable")

    async def go() -> None:
        async with client:
            await sf.revoke_token(client, sf.TokenKey(id=TOKEN_ID), snapshot=refuse)

    with pytest.raises(RuntimeError, match="case not writable"):
        run(go())
    assert [m for m, _, _ in rec.calls()] == ["GET"]


def test_token_keys_refuse_injection_and_half_keys(prism: PrismPeer) -> None:
    client, rec = live_client(prism)

    async def go() -> None:
        async with client:
            with pytest.raises(ValueError, match="not a Salesforce id"):
                await sf.revoke_token(client, sf.TokenKey(id="x' OR Id != '"))
            with pytest.raises(ValueError, match="together"):
                await sf.probe_token(client, sf.TokenKey(user_id=USER_ID))

    run(go())
    assert rec.exchanges == []
    key = sf.TokenKey(user_id=USER_ID, app_name="O'Brien \\ App", created="2024-11-02T14:20:01.000+0000")
    assert key.where() == (f"UserId = '{USER_ID}' AND AppName = 'O\\'Brien \\\\ App' AND "
                           "CreatedDate = 2024-11-02T14:20:01Z")
    assert sf.TokenKey.of({"Id": None, "UserId": USER_ID, "AppName": "Drift", "CreatedDate": "2024-11-02T14:20:01Z"}
                          ).target() == f"{USER_ID}/Drift/2024-11-02T14:20:01Z"


def test_probe_token(prism: PrismPeer) -> None:
    leaked = fake_token("00D5j000000AcMe!", 40, salt="leaked")

    async def go(leaked_token: str | None = None, **override: str) -> Any:
        client, rec = live_client(prism, **override)
        async with client:
            verdict = await sf.probe_token(client, sf.TokenKey(id=TOKEN_ID), leaked_token)
        rec.assert_contract_kept()
        assert leaked not in journal_text(client) and leaked not in repr(verdict)
        return verdict, rec

    listed, _ = run(go())
    assert listed.status == STILL_LIVE and "still listed" in listed.evidence
    gone, _ = run(go(**{"/query": "example=none"}))
    assert gone.status == REVOKED_VERIFIED and "0 rows" in gone.evidence
    refused, rec = run(go(leaked, **{"/query": "example=none", "/limits": "code=401"}))
    assert refused.status == REVOKED_VERIFIED and "INVALID_SESSION_ID" in refused.evidence
    assert rec.exchanges[-1].request.headers["Authorization"] == f"Bearer {leaked}"
    works, _ = run(go(leaked, **{"/query": "example=none"}))
    assert works.status == STILL_LIVE and "still works" in works.evidence
    half, _ = run(go(leaked, **{"/limits": "code=401"}))  # access token dead, refresh token still listed
    assert half.status == STILL_LIVE and "refresh token" in half.evidence
    failed, _ = run(go(**{"/query": "code=403"}))
    assert failed.status == REVOKED_UNVERIFIED and "REQUEST_LIMIT_EXCEEDED" in failed.evidence


def test_pull_hook_against_the_fragment(prism: PrismPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pull_hook("salesforce") is sf.pull
    transports: list[SFTransport] = []
    build = sf.client_for

    def client_for(s: ConnectorSettings, secret: str, **kw: Any) -> ConnectorClient:
        transports.append(SFTransport(fake_token()))
        return build(s, secret, transport=transports[-1], **kw)

    monkeypatch.setattr(sf, "client_for", client_for)
    journal: list[Any] = []

    async def go() -> list[Page]:
        return [p async for p in sf.pull(settings(prism.url), ACCESS, since="2025-08-08T00:00:00Z", until=None,
                                         cursors={}, on_journal=journal.append)]

    pages = run(go())
    [rec] = transports
    rec.assert_contract_kept()
    assert [(p.stream, p.format) for p in pages] == [
        ("eventlogfile", "salesforce-eventlogfile"), ("loginhistory", "salesforce-eventlog-json"),
        ("setupaudittrail", "salesforce-eventlog-json")]
    elf = pages[0]
    assert elf.records[0].startswith(b'"EVENT_TYPE"') and len(elf.records) == 3
    assert elf.cursor == "created:2025-08-13T03:10:00.000Z"
    assert elf.endpoint.startswith(f"GET {sf.DATA}/sobjects/EventLogFile/0AT5j000000DrFtGAK/LogFile")
    q = rec.exchanges[0].request.url.params["q"]
    assert "LogDate >= 2025-08-08T00:00:00Z" in q and "'UniqueQuery'" in q and q.endswith("ORDER BY CreatedDate, Id")
    assert pages[1].cursor == "since:2025-08-12T09:31:07.000Z" and pages[2].cursor == "since:2025-08-20T16:02:11.000Z"
    assert len(journal) == 4 and ACCESS not in repr(journal)
    with create_case(tmp_path / "c.stanch") as case:
        stored = [live.store_page(case, "sf-test", p.stream, p.format, p.data(), p.cursor, p.endpoint) for p in pages]
        assert [s.events_added for s in stored] == [2, 1, 1] and not any(s.malformed for s in stored)
        rows = case.conn.execute("SELECT vendor_type, action, resource FROM events ORDER BY time").fetchall()
        assert ("UniqueQuery", "api.call", "SELECT COUNT() FROM Account") in rows
        assert live.cursors(case, "sf-test")["eventlogfile"] == "created:2025-08-13T03:10:00.000Z"


def test_pull_resumes_from_cursors_and_takes_filters(prism: PrismPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    transports: list[SFTransport] = []
    build = sf.client_for

    def client_for(s: ConnectorSettings, secret: str, **kw: Any) -> ConnectorClient:
        transports.append(SFTransport(fake_token()))
        return build(s, secret, transport=transports[-1], **kw)

    monkeypatch.setattr(sf, "client_for", client_for)

    async def go(cursors: dict[str, str], filters: dict[str, str] | None = None) -> list[Page]:
        return [p async for p in sf.pull(settings(prism.url), ACCESS, since="2025-08-08T00:00:00Z",
                                         until="2025-08-21T00:00:00Z", cursors=cursors, filters=filters)]

    run(go({"eventlogfile": "created:2025-08-13T03:10:00Z", "loginhistory": "since:2025-08-12T09:31:07.000Z"}))
    qs = [r.request.url.params.get("q", "") for r in transports[-1].exchanges]
    assert "CreatedDate >= 2025-08-13T03:10:00Z" in qs[0] and "LogDate < 2025-08-21T00:00:00Z" in qs[0]
    assert "LoginTime >= 2025-08-12T09:31:07Z AND LoginTime < 2025-08-21T00:00:00Z" in qs[2]
    transports[-1].assert_contract_kept()
    pages = run(go({}, {"EventType": "UniqueQuery", "Interval": "Daily"}))
    assert {p.stream for p in pages} == {"eventlogfile:EventType=UniqueQuery,Interval=Daily"}
    q = transports[-1].exchanges[0].request.url.params["q"]
    assert "EventType IN ('UniqueQuery') AND Interval = 'Daily'" in q
    with pytest.raises(ConfigError, match="EventType or Interval"):
        run(go({}, {"UserId": "x"}))
    with pytest.raises(ConfigError, match="not an EventLogFile event type"):
        run(go({}, {"EventType": "Login') OR (Id != '"}))


# ------------------------------------------------------------------------------------------- recorded: paging, cap


class FakeOrg:
    """A MockTransport answering the SOQL stanch sends like an org with `tokens` OauthToken rows: COUNT() gives
    the true total; a row query returns 500 rows a batch, 2,500 at most (Object Reference, OauthToken), then
    `done` with no more, whatever the true total. Bodies in the Query / Query More Results shapes."""

    BATCH, CAP = 500, 2500

    def __init__(self, tokens: list[dict[str, Any]]) -> None:
        self.tokens = tokens
        self.requests: list[httpx.Request] = []
        self.cursors: dict[str, list[dict[str, Any]]] = {}

    def _match(self, where: str) -> list[dict[str, Any]]:
        rows = self.tokens
        for clause in [c for c in where.split(" AND ") if c]:
            m = re.fullmatch(r"(\w+) (=|>=|<) (.+)", clause)
            assert m, clause
            field, op, raw = m.groups()
            value = raw.strip("'")
            if field == "CreatedDate":
                at = datetime.fromisoformat(value.replace("Z", "+00:00"))
                rows = [r for r in rows if {"=": r["_at"] == at, ">=": r["_at"] >= at, "<": r["_at"] < at}[op]]
            else:
                rows = [r for r in rows if r[field] == value]
        return rows

    def _page(self, key: str, offset: int) -> httpx.Response:
        rows = self.cursors[key]
        batch = rows[offset:offset + self.BATCH]
        end = offset + len(batch)
        done = end >= min(len(rows), self.CAP)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done,
                                "records": [{k: v for k, v in r.items() if k != "_at"} for r in batch]}
        if not done:
            body["nextRecordsUrl"] = f"{sf.QUERY_PATH}/{key}-{end}"
        return httpx.Response(200, json=body)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.startswith(sf.QUERY_PATH + "/"):
            key, _, offset = path.rsplit("/", 1)[1].rpartition("-")
            return self._page(key, int(offset))
        q = request.url.params["q"]
        m = re.fullmatch(r"SELECT (.+?) FROM OauthToken(?: WHERE (.+?))?(?: GROUP BY UserId)?"
                         r"(?: ORDER BY CreatedDate( ASC| DESC)?)?(?: LIMIT 1)?", q)
        assert m, q
        fields, where, order = m.groups()
        rows = self._match(where or "")
        if fields == "COUNT()":
            return httpx.Response(200, json={"totalSize": len(rows), "done": True, "records": []})
        rows = sorted(rows, key=lambda r: r["_at"], reverse=order == " DESC")
        if "LIMIT 1" in q:
            rows = rows[:1]
        if "GROUP BY UserId" in q:
            rows = [{"UserId": u} for u in sorted({r["UserId"] for r in rows})]
        key = f"01g{len(self.cursors):012d}"
        self.cursors[key] = rows
        return self._page(key, 0)


def _tokens(n: int, *, same_second: int = 0) -> list[dict[str, Any]]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        at = start + timedelta(seconds=0 if i < same_second else i * 37)
        out.append({"attributes": {"type": "OauthToken"}, "Id": None, "AppName": "Drift" if i % 3 else "Other",
                    "UserId": f"0055j{i % 7:010d}AAK", "_at": at,
                    "CreatedDate": at.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), "LastUsedDate": None, "UseCount": i})
    return out


def recorded(handler: Callable[[httpx.Request], httpx.Response], slept: list[float] | None = None,
             **kw: Any) -> ConnectorClient:
    async def sleep(s: float) -> None:
        (slept if slept is not None else []).append(s)

    return sf.client_for(settings("https://acme.my.salesforce.example"), ACCESS,
                         transport=httpx.MockTransport(handler), sleep=sleep, **kw)


def test_query_follows_next_records_url_to_the_end() -> None:
    org = FakeOrg(_tokens(1200))

    async def go() -> list[dict[str, Any]]:
        async with recorded(org.handler) as client:
            return await sf.query(client, "SELECT Id, AppName FROM OauthToken")

    rows = run(go())
    assert len(rows) == 1200
    assert [r.url.path for r in org.requests] == [sf.QUERY_PATH, f"{sf.QUERY_PATH}/01g000000000000-500",
                                                  f"{sf.QUERY_PATH}/01g000000000000-1000"]
    assert "q" not in org.requests[1].url.params  # nextRecordsUrl followed verbatim, no parameters


def test_the_2500_cap_is_partitioned_by_created_date_and_nothing_is_missed() -> None:
    tokens = _tokens(6000)
    org = FakeOrg(tokens)

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with recorded(org.handler) as client:
            naive = await sf.query(client, "SELECT Id, AppName FROM OauthToken")
            return naive, await sf.list_tokens(client), await sf.list_tokens(client, app_name="Drift")

    naive, every, drift = run(go())
    assert len(naive) == 2500  # what a plain query gets: the cap
    assert sorted(r["UseCount"] for r in every) == list(range(6000))
    assert sorted(r["UseCount"] for r in drift) == [i for i in range(6000) if i % 3]
    qs = [r.url.params["q"] for r in org.requests if "q" in r.url.params]
    assert qs[1] == "SELECT COUNT() FROM OauthToken"
    assert any("CreatedDate >= " in q and "CreatedDate < " in q for q in qs)


def test_more_than_the_cap_in_one_second_is_split_by_user() -> None:
    org = FakeOrg(_tokens(3000, same_second=2600))

    async def go() -> list[dict[str, Any]]:
        async with recorded(org.handler) as client:
            return await sf.list_tokens(client)

    assert sorted(r["UseCount"] for r in run(go())) == list(range(3000))
    assert any("GROUP BY UserId" in r.url.params.get("q", "") for r in org.requests)


def test_request_limit_exceeded_is_a_rate_limit_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json=[{"message": "TotalRequests Limit exceeded.",
                                          "errorCode": "REQUEST_LIMIT_EXCEEDED"}])

    async def go() -> None:
        async with recorded(handler) as client:
            await sf.count_tokens(client)

    with pytest.raises(RateLimitedError, match="REQUEST_LIMIT_EXCEEDED") as e:
        run(go())
    assert e.value.status == 403 and "DailyApiRequests" in str(e.value) and ACCESS not in str(e.value)


def test_503_and_429_are_retried_with_the_server_wait() -> None:
    answers = [httpx.Response(503, json=[{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}]),
               httpx.Response(429, headers={"Retry-After": "2"}, json=[]),
               httpx.Response(200, json={"totalSize": 7, "done": True, "records": []})]
    slept: list[float] = []

    async def go() -> int:
        async with recorded(lambda r: answers.pop(0), slept) as client:
            return await sf.count_tokens(client)

    assert run(go()) == 7 and len(slept) == 2 and slept[1] == 2.0


def test_secrets_never_reach_the_journal_errors_or_the_case(tmp_path: Path) -> None:
    delete_token = fake_token("5Aep861", 40, salt="del2")
    refresh = fake_token("5Aep861", 40, salt="refresh")
    row: dict[str, Any] = {"attributes": {"type": "OauthToken"}, "Id": TOKEN_ID, "AppName": "Drift", "UserId": USER_ID,
           "CreatedDate": "2024-11-02T14:20:01.000+0000", "LastUsedDate": None, "UseCount": 3, "AppMenuItemId": None,
           "DeleteToken": delete_token, "AccessToken": refresh}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == sf.REVOKE_PATH:  # a server echoing the token in its error
            return httpx.Response(400, json={"error": "invalid_token", "error_description": f"bad {delete_token}"})
        return httpx.Response(200, json={"totalSize": 1, "done": True, "records": [row]})

    taken: list[Any] = []
    client = recorded(handler)

    async def go() -> None:
        async with client:
            rows = await sf.list_tokens(client)
            assert not sf.SECRET_FIELDS & rows[0].keys()
            await sf.revoke_token(client, sf.TokenKey(id=TOKEN_ID), snapshot=lambda *a: taken.append(a))

    with pytest.raises(RequestRejectedError) as e:
        run(go())
    assert e.value.status == 400 and "redacted" in str(e.value) and delete_token not in str(e.value)
    assert delete_token not in journal_text(client) and refresh not in journal_text(client)
    [(what, target, body)] = taken
    assert "DeleteToken" not in body and "AccessToken" not in body
    with create_case(tmp_path / "c.stanch") as case:
        live.store_snapshot(case, "sf-test", what, target, body)
    data = (tmp_path / "c.stanch").read_bytes()
    assert delete_token.encode() not in data and refresh.encode() not in data


# ------------------------------------------------------------------------------------------- EventLogFile pages

HEADER = '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","ORGANIZATION_ID","USER_ID","URI","QUERY","TIMESTAMP_DERIVED",' \
         '"USER_ID_DERIVED","CLIENT_IP"\r\n'


def _row(i: int, *, request_id: bool = True, query: str = "SELECT Id FROM Account") -> str:
    rid = f"4ZrQq1xYbN0aK7cD{i:05d}-" if request_id else ""
    return (f'"UniqueQuery","20250812093510.{i % 1000:03d}","{rid}","00D5j000000AcMe","0055j000003DrFt",'
            f'"/services/data/v58.0/query","{query}","2025-08-12T09:35:10.{i % 1000:03d}Z","0055j000003DrFtAAK",'
            '"203.0.113.45"\r\n')


def _elf_file() -> str:
    rows = [HEADER]
    for i in range(60):
        rows.append(_row(i))
        if i % 10 == 0:  # an identical row without REQUEST_ID, repeated all through the file
            rows.append(_row(999, request_id=False))
    rows.append(_row(61, query='SELECT Id,\nName FROM "Account"'.replace('"', '""')))  # a quoted newline
    return "".join(rows)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_a_large_file_is_cut_into_pages_that_dedupe_with_the_whole_file(tmp_path: Path) -> None:
    text = _elf_file()
    exported = tmp_path / "UniqueQuery.csv"
    exported.write_bytes(text.encode())

    async def go() -> list[Page]:
        rows = sf._csv_rows(_chunks(text.encode(), 37))  # bytes arrive in pieces that split rows and quotes
        return [p async for p in sf.elf_pages(rows, stream="eventlogfile", cursor="created:X", endpoint="GET f",
                                              page_bytes=1500)]

    pages = run(go())
    assert len(pages) > 4
    assert all(p.records[0].decode() == HEADER for p in pages)
    assert [p.cursor for p in pages] == [None] * (len(pages) - 1) + ["created:X"]

    def ids(case_name: str, load: Callable[[Any], None]) -> set[str]:
        with create_case(tmp_path / case_name) as case:
            load(case)
            return {r[0] for r in case.conn.execute("SELECT id FROM events")}

    def from_pages(case: Any) -> None:
        for p in pages:
            s = live.store_page(case, "sf", p.stream, p.format, p.data(), p.cursor, p.endpoint)
            assert not s.malformed, s.problems

    def from_disk(case: Any) -> None:
        (s,) = ingest(case, [str(exported)], "salesforce-eventlogfile")
        assert s.events_added == 67 and not s.malformed

    pulled, disk = ids("pulled.stanch", from_pages), ids("disk.stanch", from_disk)
    assert pulled == disk and len(disk) == 67  # 60 + 6 repeats of the REQUEST_ID-less row + 1 multi-line row
    assert sum(1 for i in disk if ":h" in i) == 6
    with create_case(tmp_path / "both.stanch") as case:
        from_pages(case)
        (s,) = ingest(case, [str(exported)], "salesforce-eventlogfile")
        assert s.events_added == 0 and s.duplicates == 67


def test_pull_streams_the_download_into_pages(tmp_path: Path) -> None:
    text = _elf_file().encode()
    listing = {"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "EventLogFile"}, "Id": "0AT5j000000DrFtGAK", "EventType": "UniqueQuery",
         "LogDate": "2025-08-12T00:00:00.000+0000", "Interval": "Daily", "LogFileLength": len(text),
         "CreatedDate": "2025-08-13T03:10:00.000+0000"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/LogFile"):
            assert request.headers["Authorization"] == f"Bearer {ACCESS}"
            return httpx.Response(200, headers={"content-type": "text/csv"}, content=text)
        return httpx.Response(200, json=listing)

    client = recorded(handler)

    async def go() -> list[Page]:
        async with client:
            return [p async for p in sf.pull_event_log_files(client, since="2025-08-12T00:00:00Z", until=None,
                                                             page_bytes=2000)]

    pages = run(go())
    assert len(pages) > 2 and pages[-1].cursor == "created:2025-08-13T03:10:00.000Z"
    assert [e.status for e in client.journal] == [200, 200] and ACCESS not in journal_text(client)
    with create_case(tmp_path / "c.stanch") as case:
        added = sum(live.store_page(case, "sf", p.stream, p.format, p.data(), p.cursor, p.endpoint).events_added
                    for p in pages)
        assert added == 67


def test_a_failed_download_names_the_error_without_the_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/LogFile"):
            return httpx.Response(401, json=[{"message": "Session expired or invalid",
                                              "errorCode": "INVALID_SESSION_ID"}])
        return httpx.Response(200, json={"totalSize": 1, "done": True, "records": [
            {"Id": "0AT5j000000DrFtGAK", "EventType": "Login", "LogDate": "2025-08-12T00:00:00Z",
             "Interval": "Daily", "CreatedDate": "2025-08-13T00:00:00Z"}]})

    async def go() -> None:
        async with recorded(handler) as client:
            async for _ in sf.pull_event_log_files(client, since=None, until=None):
                pass

    with pytest.raises(InvalidCredentialError) as e:
        run(go())
    assert ACCESS not in str(e.value)


def test_json_pages_parse_with_the_existing_parser(tmp_path: Path) -> None:
    records = [{"attributes": {"type": "LoginHistory"}, "Id": f"0Ya5j00000DrFt{i}CAF", "UserId": USER_ID,
                "LoginTime": f"2025-08-12T09:3{i}:07.000+0000", "SourceIp": "203.0.113.45", "Status": "Success",
                "Application": "Drift", "LoginType": "Remote Access 2.0"} for i in range(3)]
    bodies = [{"totalSize": 3, "done": False, "nextRecordsUrl": f"{sf.QUERY_PATH}/01gX-2", "records": records[:2]},
              {"totalSize": 3, "done": True, "records": records[2:]}]

    async def go() -> list[Page]:
        async with recorded(lambda r: httpx.Response(200, json=bodies.pop(0))) as client:
            return [p async for p in sf.pull_login_history(client, since="2025-08-12T00:00:00Z", until=None)]

    pages = run(go())
    assert [len(p.records) for p in pages] == [2, 1]
    assert pages[1].endpoint == f"GET {sf.QUERY_PATH}/01gX-2"
    assert orjson.loads(pages[0].records[0])["Application"] == "Drift"
    with create_case(tmp_path / "c.stanch") as case:
        added = [live.store_page(case, "sf", p.stream, p.format, p.data(), p.cursor, p.endpoint).events_added
                 for p in pages]
        assert added == [2, 1]
        assert {r[0] for r in case.conn.execute("SELECT action FROM events")} == {"login"}
