"""connectors/gateway.py against a REAL gateway: nginx + njs with introspection-backed `auth_request`
(tests/fixtures/nginx/peer-auth, test-peers.md §4) in front of a tiny upstream, asking the REAL oidc-provider
(tests/peers/oidc/server.mjs) as its `gateway` client whether each token is active.

Tokens are opaque access tokens minted by the test as ir-app (client_credentials, resource urn:ir:api:opaque);
revocation goes through connectors.oauth as the responder's admin client ir-admin. The last tests read
answers the live peers do not give (403, DPoP challenges, redirects) from an httpx.MockTransport.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import connectors.nginx  # noqa: F401  (registers the nginx-json format)
from casefile.formats import get
from casefile.records import Parsed
from casefile.secrets import fingerprint
from casefile.sources import FileSource
from connectors import gateway, oauth
from connectors.http import USER_AGENT, ConnectorClient
from tests.connectors.oidc_peer import OidcPeer, oidc_peer, start_peer, stop_peer
from tests.peers import free_port, need, need_binary

__all__ = ["oidc_peer"]  # the fixture, imported for pytest

PEER_CONF = Path(__file__).resolve().parent.parent / "fixtures" / "nginx" / "peer-auth"
NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
API_PATH = "/api/report.json"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _no_sleep(_: float) -> None:
    return None


# ------------------------------------------------------------------------------------------ the peers


@dataclass(frozen=True)
class Gateway:
    url: str
    port: int
    access_log: Path
    proc: subprocess.Popen[bytes]


def start_gateway(work: Path, op_port: int, upstream_port: int) -> Gateway:
    """nginx with the peer-auth config on a free port; skips (fails under CI=true) without nginx + njs."""
    nginx = need_binary("nginx", "apt-get install nginx libnginx-mod-http-js")
    need(os.path.exists(NJS_MODULE), f"the njs module ({NJS_MODULE})", "apt-get install libnginx-mod-http-js")
    (work / "logs").mkdir(parents=True)
    (work / "tmp").mkdir()
    shutil.copy(PEER_CONF / "gw.js", work / "gw.js")
    port = free_port()
    conf = (PEER_CONF / "nginx.conf.template").read_text(encoding="utf-8")
    for name, value in (("@DIR@", str(work)), ("@PORT@", str(port)), ("@UPSTREAM_PORT@", str(upstream_port)),
                        ("@OP_PORT@", str(op_port))):
        conf = conf.replace(name, value)
    assert "@" not in conf  # every placeholder filled
    (work / "nginx.conf").write_text(conf, encoding="utf-8")
    proc = subprocess.Popen([nginx, "-c", str(work / "nginx.conf"), "-e", str(work / "logs" / "error.log")])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(url + "/", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_gateway(proc)
                pytest.fail(f"nginx did not answer within 10 s: {(work / 'logs' / 'error.log').read_text()}")
            time.sleep(0.05)
    return Gateway(url, port, work / "logs" / "access.jsonl", proc)


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The API behind the gateway: python's http.server serving /api/report.json, in a thread."""
    root = tmp_path_factory.mktemp("upstream")
    (root / "api").mkdir()
    (root / "api" / "report.json").write_text('{"service":"demo-api","data":"secret report"}\n', encoding="utf-8")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the stdlib's name)
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def gw(oidc_peer: OidcPeer, upstream: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(tmp_path_factory.mktemp("gw"), httpx.URL(oidc_peer.url).port or 80, upstream)
    try:
        yield g
    finally:
        stop_gateway(g.proc)


def mint(peer: OidcPeer) -> str:
    r = httpx.post(f"{peer.url}/token", auth=("ir-app", "ir-app-secret"),
                   data={"grant_type": "client_credentials", "scope": "api:read", "resource": "urn:ir:api:opaque"})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    assert token.count(".") == 0  # opaque: the gateway must introspect it
    return token


def gateway_client(url: str) -> ConnectorClient:
    return ConnectorClient("gw", url, timeout=(2, 5), sleep=_no_sleep)  # no auth_header: the token is the credential


def admin_client(peer: OidcPeer) -> ConnectorClient:
    return ConnectorClient("idp", peer.url, auth_header=oauth.client_auth("ir-admin", "ir-admin-secret"),
                           timeout=(3, 5), sleep=_no_sleep)


def access_lines(g: Gateway, uri: str = API_PATH) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in g.access_log.read_text(encoding="utf-8").splitlines()]
    return [rec for rec in lines if rec["uri"] == uri]


def assert_leak_free(token: str, clients: list[ConnectorClient], *texts: object) -> None:
    shown = [repr(e) for c in clients for e in c.journal] + [str(t) for t in texts]
    assert all(c.journal for c in clients), "the journal should record the calls"
    for text in shown:
        assert token not in text


# ------------------------------------------------------------------------------------------ live peers


@pytest.mark.peer
def test_live_token_is_still_live_then_revoked_verified_and_introspection_agrees(
        oidc_peer: OidcPeer, gw: Gateway) -> None:
    token = mint(oidc_peer)

    async def go() -> tuple[oauth.Verdict, int, oauth.Verdict, oauth.Verdict, list[ConnectorClient]]:
        async with gateway_client(gw.url) as g, admin_client(oidc_peer) as idp:
            before = await gateway.probe(g, token, API_PATH)
            status = await oauth.revoke(idp, token, "access_token")
            after = await gateway.probe(g, token, API_PATH)
            by_as = await oauth.probe(idp, token, "access_token")
            return before, status, after, by_as, [g, idp]

    before, status, after, by_as, clients = run(go())
    assert before.status == oauth.STILL_LIVE, before
    assert "200" in before.evidence and "lets the token through" in before.evidence
    assert status == 200
    assert after.status == oauth.REVOKED_VERIFIED, after
    assert "401" in after.evidence and "refused" in after.evidence
    assert by_as.status == oauth.REVOKED_VERIFIED  # the authorization server agrees with the gateway
    assert (before.expires_at, after.binding) == (None, "none")
    assert_leak_free(token, clients, before, after, by_as, before.as_dict(), after.as_dict())
    g_journal = [(e.method, e.url, e.status) for e in clients[0].journal]
    assert g_journal == [("GET", f"{gw.url}{API_PATH}", 200), ("GET", f"{gw.url}{API_PATH}", 401)]

    # The gateway's JSON access log: stanch's user agent and the same fingerprint stanch computes, never the token.
    fp = fingerprint(token).keys[1]
    mine = [rec for rec in access_lines(gw) if rec["token_fp"] == fp.removeprefix("sha256/16:")]
    assert [(r["status"], r["token_active"], r["upstream_status"]) for r in mine] == [(200, "1", "200"), (401, "0", "")]
    assert {r["user_agent"] for r in mine} == {USER_AGENT}
    assert token not in gw.access_log.read_text(encoding="utf-8")
    # ... and stanch's own parser reads those lines back with that credential key.
    fmt = get("nginx-json")
    assert fmt is not None
    parsed = [p.event for p in fmt.parse(FileSource(str(gw.access_log))) if isinstance(p, Parsed)]
    keyed = [e for e in parsed if e.credential is not None and e.credential.keys == (fp,)]
    assert [(e.action, e.user_agent) for e in keyed] == [("api.call", USER_AGENT), ("auth.fail", USER_AGENT)]


@pytest.mark.peer
def test_never_issued_token_is_refused_exactly_like_a_revoked_one(oidc_peer: OidcPeer, gw: Gateway) -> None:
    """Decision: a gateway's 401 means "refused now", for a revoked, expired or never-issued token alike. The
    verdict is `revoked-verified` (the token does not get through, which is what containment needs) and the
    evidence says "refused", with nothing that could tell the cases apart, because the gateway does not."""
    revoked = mint(oidc_peer)
    never = "stanch-test-FAKE-never-issued-" + os.urandom(12).hex()

    async def go() -> tuple[oauth.Verdict, oauth.Verdict, oauth.Verdict, list[ConnectorClient]]:
        async with gateway_client(gw.url) as g, admin_client(oidc_peer) as idp:
            await oauth.revoke(idp, revoked, "access_token")
            v_revoked = await gateway.probe(g, revoked, API_PATH)
            v_never = await gateway.probe(g, never, API_PATH)
            by_as = await oauth.probe(idp, never)
            return v_revoked, v_never, by_as, [g, idp]

    v_revoked, v_never, by_as, clients = run(go())
    assert v_never.status == v_revoked.status == oauth.REVOKED_VERIFIED
    assert v_never.evidence == v_revoked.evidence  # the gateway's answer is the same: no way to tell them apart
    assert "refused" in v_never.evidence and "never valid" in v_never.evidence
    assert "revoked-verified" not in v_never.evidence and "was revoked" not in v_never.evidence
    assert by_as.status == oauth.REVOKED_VERIFIED  # introspection: active false for an unknown token, too
    never_fp = fingerprint(never).keys[1].removeprefix("sha256/16:")
    assert [(r["status"], r["token_active"]) for r in access_lines(gw) if r["token_fp"] == never_fp] == [(401, "0")]
    assert_leak_free(never, clients, v_never, by_as)
    assert_leak_free(revoked, clients, v_revoked)


@pytest.mark.peer
def test_gateway_down_is_revoked_unverified(oidc_peer: OidcPeer, upstream: int, tmp_path: Path) -> None:
    token = mint(oidc_peer)
    g = start_gateway(tmp_path / "gw", httpx.URL(oidc_peer.url).port or 80, upstream)
    stop_gateway(g.proc)

    async def go() -> tuple[oauth.Verdict, ConnectorClient]:
        async with gateway_client(g.url) as c:
            return await gateway.probe(c, token, API_PATH), c

    verdict, client = run(go())
    assert verdict.status == oauth.REVOKED_UNVERIFIED, verdict
    assert "cannot reach gw" in verdict.evidence and "not evidence either way" in verdict.evidence
    assert [e.status for e in client.journal] == [None] * 4  # the first try and three retries, no answer
    assert_leak_free(token, [client], verdict)


@pytest.mark.peer
def test_authorization_server_down_the_gateway_fails_closed_and_the_two_probes_disagree(
        upstream: int, tmp_path: Path) -> None:
    """The §4 gateway refuses every token when introspection fails (fail closed), so its probe says
    `revoked-verified` (true at that gateway: nothing gets through) while the authorization server's probe says
    `revoked-unverified`. A gateway verdict speaks for that gateway only; the evidence still says "refused"."""
    (tmp_path / "op").mkdir()
    op_proc, op = start_peer(tmp_path / "op")
    try:
        token = mint(op)
        g = start_gateway(tmp_path / "gw", httpx.URL(op.url).port or 80, upstream)
    except BaseException:
        stop_peer(op_proc)
        raise
    try:
        async def go() -> tuple[oauth.Verdict, oauth.Verdict, oauth.Verdict, list[ConnectorClient]]:
            async with gateway_client(g.url) as c, admin_client(op) as idp:
                live = await gateway.probe(c, token, API_PATH)
                await oauth.discover(idp)  # cached, so the AS probe below reaches introspection
                stop_peer(op_proc)
                return live, await gateway.probe(c, token, API_PATH), await oauth.probe(idp, token), [c, idp]

        live, at_gw, at_as, clients = run(go())
    finally:
        stop_gateway(g.proc)
        stop_peer(op_proc)
    assert live.status == oauth.STILL_LIVE
    assert at_gw.status == oauth.REVOKED_VERIFIED and "refused" in at_gw.evidence
    assert at_as.status == oauth.REVOKED_UNVERIFIED
    assert_leak_free(token, clients, live, at_gw, at_as)


# ------------------------------------------------------------------------------------------ other answers


def mocked(status: int, headers: dict[str, str] | None = None, **kw: Any) -> tuple[oauth.Verdict, list[str]]:
    """The probe's verdict for a gateway answering `status` with `headers`, and the Authorization values sent."""
    token = "stanch-test-FAKE-gw-" + "q" * 24
    scheme = kw.pop("scheme", "Bearer")
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(status, headers=headers, text=f"echo {token}")

    async def go() -> tuple[oauth.Verdict, ConnectorClient]:
        async with ConnectorClient("gw", "https://gw.example", transport=httpx.MockTransport(answer),
                                   sleep=_no_sleep, **kw) as c:
            return await gateway.probe(c, token, "/api/me?page=2", scheme), c

    verdict, client = run(go())
    assert token not in verdict.evidence and all(token not in repr(e) for e in client.journal)
    assert "page=2" not in verdict.evidence  # the query is not shown
    return verdict, seen


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (200, {}, oauth.STILL_LIVE),
    (204, {}, oauth.STILL_LIVE),
    (302, {"Location": "/elsewhere"}, oauth.STILL_LIVE),
    (401, {}, oauth.REVOKED_VERIFIED),
    (401, {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'}, oauth.REVOKED_VERIFIED),
    (403, {"WWW-Authenticate": "Bearer error=invalid_token"}, oauth.REVOKED_VERIFIED),
    (401, {"WWW-Authenticate": 'DPoP algs="ES256", error="invalid_dpop_proof"'}, oauth.REVOKED_UNVERIFIED),
    (401, {"WWW-Authenticate": 'Bearer error="invalid_request"'}, oauth.REVOKED_UNVERIFIED),
    (403, {}, oauth.REVOKED_UNVERIFIED),
    (403, {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}, oauth.REVOKED_UNVERIFIED),
    (404, {}, oauth.REVOKED_UNVERIFIED),
    (400, {}, oauth.REVOKED_UNVERIFIED),
    (500, {}, oauth.REVOKED_UNVERIFIED),
    (429, {}, oauth.REVOKED_UNVERIFIED),
])
def test_status_mapping(status: int, headers: dict[str, str], expected: str) -> None:
    verdict, seen = mocked(status, headers)
    assert verdict.status == expected, verdict.evidence
    assert seen[0].startswith("Bearer stanch-test-FAKE-gw-")
    assert str(status) in verdict.evidence


def test_dpop_scheme_is_sent_and_reported_as_the_binding() -> None:
    verdict, seen = mocked(200, scheme="DPoP")
    assert seen == ["DPoP stanch-test-FAKE-gw-" + "q" * 24]
    assert (verdict.status, verdict.binding) == (oauth.STILL_LIVE, "dpop")


def test_a_client_with_its_own_auth_header_still_sends_only_the_token_under_test() -> None:
    verdict, seen = mocked(200, auth_header=lambda: {"Authorization": "Bearer some-other-credential"})
    assert seen == ["Bearer stanch-test-FAKE-gw-" + "q" * 24]
    assert verdict.status == oauth.STILL_LIVE


def test_unsendable_token_or_scheme_is_refused_before_any_request() -> None:
    async def go(token: str, scheme: str = "Bearer") -> tuple[oauth.Verdict, ConnectorClient]:
        async with ConnectorClient("gw", "https://gw.example", sleep=_no_sleep,
                                   transport=httpx.MockTransport(lambda r: httpx.Response(200))) as c:
            return await gateway.probe(c, token, "/api/", scheme), c

    for bad in ("", "two words", "line\nbreak", "non-ascii-é-token"):
        verdict, client = run(go(bad))
        assert verdict.status == oauth.REVOKED_UNVERIFIED and "was not asked" in verdict.evidence
        assert client.journal == []
    with pytest.raises(ValueError, match="authorization scheme"):
        run(go("stanch-test-FAKE-ok", "Bearer x"))
