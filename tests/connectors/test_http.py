"""`connectors.http.ConnectorClient` against a local fault server.

The fault server (threaded `http.server` on an ephemeral 127.0.0.1 port) plays a script per path: each
request to a path takes the next scripted reply (the last one repeats), which may be a 429 with
`Retry-After`, a 500, a stall past the client's read timeout, a page of a paginated listing or an Okta-style
rate-limit header sequence. It records every request it got (method, path, headers) and counts requests in
flight. Waits go through an injected fake `sleep`/`clock`, so the retry and rate-limit tests are fast and do
not depend on timing; only the read-timeout tests wait for real (a fraction of a second).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ipaddress
import json
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.http import (
    REQUEST_ID_HEADER,
    USER_AGENT,
    ConnectionFailedError,
    ConnectorClient,
    ConnectorError,
    ConnectorTimeoutError,
    InvalidCredentialError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    TLSHandshakeError,
    TLSVerificationError,
    UnexpectedResponseError,
)
from tests.conftest import fake_token

pytestmark = pytest.mark.timeout(30)

T0 = 1_800_000_000.0  # the fake clock's start (2027-01-15), far from the real one so a mix-up shows


# ------------------------------------------------------------------------------------------ fault server


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] | Callable[[], dict[str, str]] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before answering


@dataclass
class Seen:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names


class FaultServer:
    """Scripted replies per path, a record of every request, a high-water mark of requests in flight."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.script: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                if tls is not None:
                    # Handshake in the handler thread, so a failing client never blocks the accept loop.
                    self.request.settimeout(5)
                    self.request.do_handshake()
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                with owner.lock:
                    owner.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    route = self.path.split("?")[0]
                    replies = owner.script.get(route) or [Reply(404, {"errors": ["no script for " + route]})]
                    reply = replies.pop(0) if len(replies) > 1 else replies[0]
                try:
                    if reply.delay:
                        owner.stop.wait(reply.delay)
                    body = reply.body if isinstance(reply.body, bytes) else (
                        b"" if reply.body is None else json.dumps(reply.body).encode())
                    headers = reply.headers() if callable(reply.headers) else reply.headers
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if not isinstance(reply.body, bytes) and reply.body is not None:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (read timeout)
                finally:
                    with owner.lock:
                        owner.in_flight -= 1

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_LIST = _serve

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, addr = self.socket.accept()
                if tls is not None:
                    sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return sock, addr

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # failed handshakes are part of the TLS tests

        self.httpd = Server(("127.0.0.1", 0), Handler)
        host, port = self.httpd.server_address[:2]
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def on(self, path: str, *replies: Reply) -> None:
        self.script[path] = list(replies)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path.split("?")[0] == path]

    def close(self) -> None:
        self.stop.set()  # cut any stall short
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    s = FaultServer()
    try:
        yield s
    finally:
        s.close()


class FakeTime:
    """An injected clock and sleep: sleeping advances the clock at once and is recorded."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def client(server: FaultServer, fake: FakeTime | None = None, **kw: Any) -> ConnectorClient:
    fake = fake or FakeTime()
    kw.setdefault("timeout", (2.0, 2.0))
    return ConnectorClient("okta-test", server.url, sleep=fake.sleep, clock=fake.clock, **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "\r" not in text and text == text.strip()
    return text


# -------------------------------------------------------------------------------------------- identity


def test_every_request_and_retry_carries_the_user_agent_and_a_fresh_request_id(server):
    server.on("/r", Reply(500), Reply(503), Reply(200, {"ok": True}))
    server.on("/other", Reply(200, []))

    async def go() -> None:
        async with client(server) as c:
            assert await c.get_json("/r") == {"ok": True}
            await c.request("GET", "/other", headers={"User-Agent": "curl/8"})
            await c.request("POST", "/other", json={"a": 1})

    run(go())
    assert len(server.seen) == 5
    ids = [s.headers[REQUEST_ID_HEADER.lower()] for s in server.seen]
    assert all(s.headers["user-agent"] == USER_AGENT for s in server.seen)
    assert USER_AGENT.startswith("stanch/") and USER_AGENT.endswith(" (+incident-response)")
    assert len(set(ids)) == 5
    assert all(uuid.UUID(i).version == 4 for i in ids)


# ------------------------------------------------------------------------------------- retries and waits


def test_429_retry_after_then_500s_then_success_loses_nothing_and_honours_retry_after(server):
    server.on("/api/v1/logs", Reply(429, {"errorCode": "E0000047"}, {"Retry-After": "7"}), Reply(500), Reply(502),
              Reply(200, [{"uuid": "e1"}]))
    fake = FakeTime()

    async def go() -> Any:
        async with client(server, fake, max_retries=3, backoff_base_s=1.0, backoff_cap_s=4.0) as c:
            body = await c.get_json("/api/v1/logs")
            return body, c.journal

    body, journal = run(go())
    assert body == [{"uuid": "e1"}]
    assert [s.method for s in server.requests_to("/api/v1/logs")] == ["GET"] * 4
    assert fake.sleeps[0] == 7  # Retry-After, not backoff
    assert len(fake.sleeps) == 3
    assert 0 <= fake.sleeps[1] <= 2.0 and 0 <= fake.sleeps[2] <= 4.0  # full jitter under min(cap, base*2^n)
    assert [e.status for e in journal] == [429, 500, 502, 200]
    assert [e.attempt for e in journal] == [1, 2, 3, 4]


def test_retries_are_bounded_and_the_error_is_one_line(server):
    server.on("/down", Reply(500))

    async def go() -> None:
        async with client(server, max_retries=2) as c:
            await c.request("GET", "/down")

    with pytest.raises(ServerError) as info:
        run(go())
    assert len(server.requests_to("/down")) == 3
    assert one_line(info.value) == (
        "500 from okta-test: the server failed GET /down after 2 retries; "
        "check the vendor's status page and try again later")


def test_retry_after_as_http_date_on_503(server):
    fake = FakeTime()
    when = email.utils.formatdate(fake.now + 20, usegmt=True)
    server.on("/sealed", Reply(503, None, {"Retry-After": when}), Reply(200, {}))

    async def go() -> None:
        async with client(server, fake) as c:
            await c.get_json("/sealed")

    run(go())
    assert len(server.requests_to("/sealed")) == 2
    assert 19 <= fake.sleeps[0] <= 20


def test_429_every_time_gives_up_after_the_retries_and_says_when_to_come_back(server):
    server.on("/busy", Reply(429, None, {"Retry-After": "5"}))
    fake = FakeTime()

    async def go() -> None:
        async with client(server, fake, max_retries=2) as c:
            await c.get_json("/busy")

    with pytest.raises(RateLimitedError) as info:
        run(go())
    assert len(server.requests_to("/busy")) == 3
    assert fake.sleeps == [5, 5]
    come_back = dt.datetime.fromtimestamp(fake.now + 5, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert one_line(info.value) == f"429 from okta-test: rate limited after 2 retries; try again after {come_back}"
    assert info.value.retry_at == fake.now + 5


def test_a_retry_after_longer_than_max_wait_raises_at_once_instead_of_sleeping(server):
    server.on("/slow", Reply(429, None, {"Retry-After": "3600"}))
    fake = FakeTime()

    async def go() -> None:
        async with client(server, fake, max_wait_s=60) as c:
            await c.get_json("/slow")

    with pytest.raises(RateLimitedError, match=r"rate limited after 0 retries; try again after "):
        run(go())
    assert fake.sleeps == []
    assert len(server.requests_to("/slow")) == 1


def test_okta_rate_limit_headers_wait_until_reset_before_the_next_request(server):
    fake = FakeTime()
    reset = int(fake.now) + 30
    server.on("/api/v1/users", Reply(200, [], {"X-Rate-Limit-Limit": "2", "X-Rate-Limit-Remaining": "1",
                                              "X-Rate-Limit-Reset": str(reset)}),
              Reply(200, [], {"X-Rate-Limit-Limit": "2", "X-Rate-Limit-Remaining": "0",
                              "X-Rate-Limit-Reset": str(reset)}),
              Reply(200, [], {"X-Rate-Limit-Limit": "2", "X-Rate-Limit-Remaining": "1",
                              "X-Rate-Limit-Reset": str(reset + 60)}))
    times: list[float] = []

    async def go() -> None:
        async with client(server, fake) as c:
            for _ in range(3):
                times.append(fake.now)
                await c.get_json("/api/v1/users")
            times.append(fake.now)

    run(go())
    assert len(server.requests_to("/api/v1/users")) == 3
    assert fake.sleeps == [reset - T0]  # only before the third request, exactly until the reset epoch
    assert times[2] == T0 and times[3] == reset


def test_a_reset_further_away_than_max_wait_raises_without_sending(server):
    fake = FakeTime()
    reset = int(fake.now) + 900
    server.on("/api/v1/users", Reply(200, [], {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(reset)}))

    async def go() -> None:
        async with client(server, fake, max_wait_s=60) as c:
            await c.get_json("/api/v1/users")
            await c.get_json("/api/v1/users", params={"after": "x"})

    with pytest.raises(RateLimitedError) as info:
        run(go())
    come_back = dt.datetime.fromtimestamp(reset, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert one_line(info.value) == ("429 from okta-test: the rate limit is used up (X-Rate-Limit-Remaining 0), so GET "
                                    f"/api/v1/users was not sent; try again after {come_back}")
    assert len(server.requests_to("/api/v1/users")) == 1 and fake.sleeps == []


def test_okta_429_without_retry_after_waits_for_x_rate_limit_reset(server):
    fake = FakeTime()
    reset = int(fake.now) + 12
    server.on("/api/v1/logs", Reply(429, {"errorCode": "E0000047"}, {"X-Rate-Limit-Remaining": "0",
                                                                    "X-Rate-Limit-Reset": str(reset)}),
              Reply(200, []))

    async def go() -> None:
        async with client(server, fake) as c:
            await c.get_json("/api/v1/logs")

    run(go())
    assert len(server.requests_to("/api/v1/logs")) == 2
    assert sum(fake.sleeps) == pytest.approx(reset - T0)


def test_requests_per_second_limit_spaces_request_starts(server):
    server.on("/p", Reply(200, {}))
    fake = FakeTime()

    async def go() -> None:
        async with client(server, fake, rate_limit_per_s=4) as c:
            await asyncio.gather(*(c.get_json("/p") for _ in range(5)))

    run(go())
    assert len(server.requests_to("/p")) == 5
    assert sum(fake.sleeps) == pytest.approx(1.0)  # starts at 0, .25, .5, .75, 1.0


# ------------------------------------------------------------------------------------------- timeouts


def test_a_stall_past_the_read_timeout_is_retried_then_answered(server):
    server.on("/stall", Reply(200, {"late": True}, delay=3), Reply(200, {"late": False}))

    async def go() -> Any:
        async with client(server, timeout=(2.0, 0.3)) as c:
            return await c.get_json("/stall"), c.journal

    body, journal = run(go())
    assert body == {"late": False}
    assert len(server.requests_to("/stall")) == 2
    assert journal[0].status is None and journal[0].error == "ReadTimeout"


def test_a_server_that_always_stalls_gives_a_one_line_timeout_error(server):
    server.on("/stall", Reply(200, {}, delay=3))

    async def go() -> None:
        async with client(server, timeout=(2.0, 0.3), max_retries=1) as c:
            await c.get_json("/stall")

    with pytest.raises(ConnectorTimeoutError) as info:
        run(go())
    assert len(server.requests_to("/stall")) == 2
    assert one_line(info.value) == ("timeout after 0.3 s from okta-test (2 attempts): the server did not answer; "
                                    "check the URL or network")


def test_nothing_listening_is_a_connection_error_after_bounded_retries():
    fake = FakeTime()
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()  # the port is now (almost certainly) closed

    async def go() -> None:
        async with ConnectorClient("vault-prod", f"http://127.0.0.1:{port}", sleep=fake.sleep, clock=fake.clock,
                                   max_retries=2) as c:
            await c.get_json("/v1/sys/health")

    with pytest.raises(ConnectionFailedError) as info:
        run(go())
    assert len(fake.sleeps) == 2
    assert one_line(info.value).startswith("cannot reach vault-prod at 127.0.0.1 (3 attempts)")
    assert one_line(info.value).endswith("check the URL, proxy or network")


# --------------------------------------------------------------------------------- what is not retried


def test_post_is_not_retried_unless_the_caller_says_it_is_idempotent(server):
    server.on("/revoke", Reply(500), Reply(200, {}))
    server.on("/revoke2", Reply(500), Reply(200, {}))
    server.on("/revoke3", Reply(200, {}, delay=3), Reply(200, {}))

    async def go() -> None:
        async with client(server, timeout=(2.0, 0.3)) as c:
            with pytest.raises(ServerError, match="after 0 retries"):
                await c.request("POST", "/revoke", json={"token": "x"})
            response = await c.request("POST", "/revoke2", json={"token": "x"}, idempotent=True)
            assert response.status_code == 200
            with pytest.raises(ConnectorTimeoutError):
                await c.request("POST", "/revoke3")

    run(go())
    assert len(server.requests_to("/revoke")) == 1
    assert len(server.requests_to("/revoke2")) == 2
    assert len(server.requests_to("/revoke3")) == 1


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (401, InvalidCredentialError,
         "401 from okta-test: the API token is invalid or expired; run `stanch connector add okta-test`"),
        (403, PermissionDeniedError, "403 from okta-test: the credential lacks the permission for GET /api/v1/logs"),
        (404, NotFoundError, "404 from okta-test: GET /api/v1/logs does not exist, or the credential may not see it; "
                             "check the base URL and the id"),
        (400, RequestRejectedError, "400 from okta-test: the server rejected GET /api/v1/logs (Invalid filter); "
                                    "check the request's parameters and the API version"),
    ],
)
def test_4xx_other_than_429_is_never_retried_and_says_what_to_do(server, status, kind, message):
    server.on("/api/v1/logs", Reply(status, {"errorCode": "E0000001", "errorSummary": "Invalid\nfilter"}),
              Reply(200, []))
    fake = FakeTime()

    async def go() -> None:
        async with client(server, fake) as c:
            await c.get_json("/api/v1/logs", params={"filter": "x"})

    with pytest.raises(kind) as info:
        run(go())
    assert one_line(info.value) == message
    assert info.value.status == status and info.value.connector == "okta-test"
    assert len(server.requests_to("/api/v1/logs")) == 1
    assert fake.sleeps == []


def test_accept_status_returns_a_refusal_instead_of_raising(server):
    server.on("/v1/auth/token/lookup-self", Reply(403, {"errors": ["permission denied"]}))

    async def go() -> int:
        async with client(server) as c:
            return (await c.request("GET", "/v1/auth/token/lookup-self", accept_status={401, 403})).status_code

    assert run(go()) == 403


# ----------------------------------------------------------------------------------------- concurrency


def test_concurrency_limit_is_never_exceeded_and_no_request_is_lost(server):
    server.on("/slow", Reply(200, {}, delay=0.1))

    async def go() -> None:
        async with client(server, concurrency=3) as c:
            await asyncio.gather(*(c.get_json("/slow", params={"i": i}) for i in range(12)))

    run(go())
    seen = server.requests_to("/slow")
    assert sorted(int(s.path.split("i=")[1]) for s in seen) == list(range(12))
    assert server.max_in_flight == 3  # parallel up to the limit, never past it


# ------------------------------------------------------------------------------------------ pagination


def test_link_header_pagination_follows_rel_next_verbatim(server):
    nxt = f'<{server.url}/api/v1/logs?after=abc&limit=2>; rel="next"'
    server.on("/api/v1/logs",
              Reply(200, [{"n": 1}, {"n": 2}], {"Link": f'<{server.url}/api/v1/logs?limit=2>; rel="self", {nxt}'}),
              Reply(200, [{"n": 3}, {"n": 4}], {"Link": f'<{server.url}/api/v1/logs?after=def&limit=2>; rel="next"'}),
              Reply(200, [{"n": 5}], {"Link": f'<{server.url}/api/v1/logs?after=def&limit=2>; rel="self"'}))

    async def go() -> list[Any]:
        async with client(server) as c:
            return [r async for r in c.paginate_link("/api/v1/logs", params={"limit": 2})]

    assert [r["n"] for r in run(go())] == [1, 2, 3, 4, 5]
    assert [s.path for s in server.requests_to("/api/v1/logs")] == [
        "/api/v1/logs?limit=2", "/api/v1/logs?after=abc&limit=2", "/api/v1/logs?after=def&limit=2"]


def test_odata_next_link_pagination(server):
    server.on("/v1.0/auditLogs/signIns",
              Reply(200, {"value": [{"id": "a"}],
                          "@odata.nextLink": f"{server.url}/v1.0/auditLogs/signIns?$skiptoken=X1"}),
              Reply(200, {"value": [{"id": "b"}, {"id": "c"}]}))

    async def go() -> list[Any]:
        async with ConnectorClient("entra", server.url + "/v1.0") as c:
            return [r async for r in c.paginate_odata("/auditLogs/signIns", params={"$top": 1})]

    assert [r["id"] for r in run(go())] == ["a", "b", "c"]
    paths = [s.path for s in server.requests_to("/v1.0/auditLogs/signIns")]
    assert paths == ["/v1.0/auditLogs/signIns?%24top=1", "/v1.0/auditLogs/signIns?$skiptoken=X1"]


def test_cursor_pagination_sends_the_cursor_back_as_the_named_parameter(server):
    server.on("/consumers",
              Reply(200, {"data": [{"id": 1}], "offset": "c1"}),
              Reply(200, {"data": [{"id": 2}], "offset": "c2"}),
              Reply(200, {"data": [{"id": 3}], "offset": None}))

    async def go() -> list[Any]:
        async with client(server) as c:
            return [r async for r in c.paginate_cursor("/consumers", cursor_path="offset", cursor_param="offset",
                                                       params={"size": 1})]

    assert [r["id"] for r in run(go())] == [1, 2, 3]
    assert [s.path for s in server.requests_to("/consumers")] == [
        "/consumers?size=1", "/consumers?size=1&offset=c1", "/consumers?size=1&offset=c2"]


def test_offset_pagination_asks_first_and_max_until_a_short_page(server):
    server.on("/admin/realms/r/events",
              Reply(200, [{"id": 1}, {"id": 2}]),
              Reply(200, [{"id": 3}, {"id": 4}]),
              Reply(200, [{"id": 5}]))

    async def go() -> list[Any]:
        async with client(server) as c:
            return [r async for r in c.paginate_offset("/admin/realms/r/events", page_size=2,
                                                       params={"type": "LOGIN"})]

    assert [r["id"] for r in run(go())] == [1, 2, 3, 4, 5]
    assert [s.path for s in server.requests_to("/admin/realms/r/events")] == [
        "/admin/realms/r/events?type=LOGIN&first=0&max=2", "/admin/realms/r/events?type=LOGIN&first=2&max=2",
        "/admin/realms/r/events?type=LOGIN&first=4&max=2"]


def test_nested_cursor_path_and_a_repeated_cursor_is_a_loop_error(server):
    server.on("/events", Reply(200, {"data": [1], "meta": {"next": "same"}}))

    async def go() -> list[Any]:
        async with client(server) as c:
            return [r async for r in c.paginate_cursor("/events", cursor_path="meta.next")]

    with pytest.raises(UnexpectedResponseError, match="pagination loop from okta-test"):
        run(go())
    assert len(server.requests_to("/events")) == 2


def test_vault_list_uses_the_list_verb_and_reads_an_empty_404_as_no_keys(server):
    server.on("/v1/auth/token/accessors", Reply(200, {"data": {"keys": ["acc1", "acc2"]}}))
    server.on("/v1/secret/metadata/empty", Reply(404, {"errors": []}))
    server.on("/v1/secret/metadata/denied", Reply(404, {"errors": ["1 error occurred: permission denied"]}))

    async def go() -> tuple[list[str], list[str]]:
        async with client(server) as c:
            keys = [k async for k in c.list_keys("/v1/auth/token/accessors")]
            empty = [k async for k in c.list_keys("/v1/secret/metadata/empty")]
            with pytest.raises(NotFoundError):
                _ = [k async for k in c.list_keys("/v1/secret/metadata/denied")]
            return keys, empty

    assert run(go()) == (["acc1", "acc2"], [])
    assert {s.method for s in server.seen} == {"LIST"}


def test_salesforce_next_records_url_is_taken_from_the_origin(server):
    base = "/services/data/v62.0"
    server.on(f"{base}/query", Reply(200, {"done": False, "records": [{"Id": "1"}],
                                           "nextRecordsUrl": f"{base}/query/01gXX-2000"}))
    server.on(f"{base}/query/01gXX-2000", Reply(200, {"done": True, "records": [{"Id": "2"}]}))

    async def go() -> list[Any]:
        async with ConnectorClient("sf", server.url + base + "/") as c:
            return [r async for r in c.paginate_next_records("query", params={"q": "SELECT Id FROM OauthToken"})]

    assert [r["Id"] for r in run(go())] == ["1", "2"]
    assert server.seen[1].path == f"{base}/query/01gXX-2000"


def test_a_next_link_to_another_host_is_refused_before_the_credential_is_sent(server):
    tok = fake_token()
    server.on("/api/v1/users", Reply(200, [{"n": 1}], {"Link": '<https://evil.example/steal>; rel="next"'}))

    async def go() -> list[Any]:
        async with client(server, auth_header=lambda: {"Authorization": f"SSWS {tok}"}) as c:
            return [r async for r in c.paginate_link("/api/v1/users")]

    with pytest.raises(UnexpectedResponseError, match=r"refused to send okta-test's credential to https://evil"):
        run(go())
    assert len(server.seen) == 1


def test_html_instead_of_json_says_check_the_base_url(server):
    server.on("/api/v1/logs", Reply(200, b"<html>Sign in</html>", {"Content-Type": "text/html"}))

    async def go() -> None:
        async with client(server) as c:
            await c.get_json("/api/v1/logs")

    with pytest.raises(UnexpectedResponseError) as info:
        run(go())
    assert one_line(info.value) == ("200 from okta-test: GET /api/v1/logs answered text/html, not JSON; check the "
                                    "base URL (a login page or proxy may be answering)")


# ------------------------------------------------------------------------------------------- redaction


def test_a_token_never_reaches_the_journal_or_an_error_message(server):
    header_token = fake_token(salt="h")
    query_token = fake_token(salt="q")
    # The server echoes the credential back in its error body, as some do.
    server.on("/api/v1/logs", Reply(400, {"errorSummary": f"bad token SSWS {header_token} / {query_token}"}))
    server.on("/stall", Reply(200, {}, delay=3))
    events: list[Any] = []

    async def go() -> tuple[list[str], list[Any]]:
        errors: list[str] = []
        async with client(server, auth_header=lambda: {"Authorization": f"SSWS {header_token}"},
                          timeout=(2.0, 0.3), max_retries=0, on_journal=events.append) as c:
            for path in ("/api/v1/logs", "/stall"):
                try:
                    await c.get_json(path, params={"access_token": query_token, "key": query_token, "q": "x"})
                except ConnectorError as exc:
                    chain: BaseException | None = exc
                    while chain is not None:
                        errors.append(str(chain))
                        chain = chain.__cause__ or chain.__context__
            return errors, c.journal

    errors, journal = run(go())
    # The test can fail: the credential did travel to the server.
    assert server.seen[0].headers["authorization"] == f"SSWS {header_token}"
    assert query_token in server.seen[0].path
    text = repr(journal) + repr(events) + "\n".join(errors)
    assert header_token not in text and query_token not in text
    assert "[redacted sha256:" in journal[0].url and "q=x" in journal[0].url
    assert len(journal) == 2 and events == journal
    assert any("bad token" in e for e in errors)  # the vendor's words survive, minus the secret


# ------------------------------------------------------------------------------------------ TLS, mTLS


def _pki(tmp: Path) -> dict[str, str]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files in `tmp`."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        (tmp / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("stanch test CA")).issuer_name(name("stanch test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca_key, ca)

    def leaf(stem: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(stem)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        write(stem, key, builder.sign(ca_key, hashes.SHA256()))

    leaf("server", ExtendedKeyUsageOID.SERVER_AUTH,
         [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return {k: str(tmp / k) for k in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_tls_private_ca_and_mutual_tls(tmp_path):
    pki = _pki(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki["server.pem"], pki["server.key"])
    tls.load_verify_locations(pki["ca.pem"])
    tls.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no answer
    srv = FaultServer(tls)
    srv.on("/v1/sys/health", Reply(200, {"sealed": False}))
    fake = FakeTime()

    async def call(**kw: Any) -> Any:
        async with ConnectorClient("vault-prod", srv.url, sleep=fake.sleep, clock=fake.clock, timeout=(3, 3),
                                   max_retries=1, **kw) as c:
            return await c.get_json("/v1/sys/health")

    try:
        # System trust store: the private CA is unknown.
        with pytest.raises(TLSVerificationError) as info:
            run(call())
        assert one_line(info.value).startswith("TLS verification failed for vault-prod (")
        assert one_line(info.value).endswith("): pass --ca-bundle FILE if the server uses a private CA")
        # The CA bundle, but no client certificate: the server refuses the handshake.
        with pytest.raises(ConnectorError) as info2:
            run(call(verify=pki["ca.pem"]))
        # Usually the server's TLS alert arrives; rarely the client first sees the connection drop (and retries).
        assert isinstance(info2.value, TLSHandshakeError | ConnectionFailedError), repr(info2.value)
        if isinstance(info2.value, TLSHandshakeError):
            assert one_line(info2.value) == (
                "TLS handshake with vault-prod failed (tlsv13 alert certificate required): the server may "
                "require a client certificate; pass --client-cert FILE --client-key FILE")
        # Both: answered, and the request carried stanch's identity over TLS too.
        assert run(call(verify=pki["ca.pem"], cert=(pki["client.pem"], pki["client.key"]))) == {"sealed": False}
        assert srv.seen[-1].headers["user-agent"] == USER_AGENT
    finally:
        srv.close()


def test_an_unreadable_ca_bundle_is_a_configuration_error(tmp_path):
    with pytest.raises(ConnectorError, match=r"cannot load the CA bundle .*missing.pem for vault-prod"):
        ConnectorClient("vault-prod", "https://127.0.0.1:1", verify=str(tmp_path / "missing.pem"))


def test_every_secret_of_a_large_batch_is_scrubbed_and_old_ones_are_bounded():
    c = ConnectorClient("gh-test", "https://api.example.invalid")
    batch = [fake_token("ghp_", 36, salt=str(i)) for i in range(1000)]
    c._remember_secrets(batch)
    echoed = " ".join(batch[::97])
    assert not any(t in c._scrub(f"422: bad credentials {echoed}") for t in batch)
    for i in range(400):  # a token that refreshes on every call does not grow the set forever
        c._remember_secrets([f"Bearer stanch-FAKE-rotating-{i:06d}"])
    assert len(c._known_secrets) == 256
    assert "stanch-FAKE-rotating-000399" in c._known_secrets
    run(c.aclose())


def test_stream_retries_like_request_and_yields_the_body_in_chunks(server):
    big = "x" * 300_000
    server.on("/download", Reply(503, {"error": "busy"}, headers={"Retry-After": "0"}), Reply(200, big))

    async def go() -> int:
        async with client(server) as c, c.stream("GET", "/download") as r:
            n = 0
            async for chunk in r.aiter_bytes():
                n += len(chunk)
            return n

    assert run(go()) >= 300_000
    assert len(server.requests_to("/download")) == 2
    server.on("/gone", Reply(404, {"errors": ["no such file"]}))

    async def missing() -> None:
        async with client(server) as c, c.stream("GET", "/gone"):
            pass

    with pytest.raises(NotFoundError, match="404 from okta-test"):
        run(missing())
