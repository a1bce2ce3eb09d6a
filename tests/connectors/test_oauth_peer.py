"""connectors/oauth.py against a REAL authorization server: oidc-provider 9.13.3 (tests/peers/oidc/server.mjs).

Tokens are minted by the test as the peer's clients would (POST /token as ir-app / ir-dpop); the connector
authenticates as the responder's admin client `ir-admin` (may introspect and revoke anything) or as the
`gateway` client (may introspect; its revocations of other clients' tokens are silently ignored: 200).
Every test also checks that no raw token reaches the client journal, a verdict or an exception text.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from casefile.secrets import fingerprint
from connectors import oauth
from connectors.config import ConnectorSettings
from connectors.http import ConnectorClient, ConnectorError, InvalidCredentialError
from tests.connectors.oidc_peer import OidcPeer, oidc_peer, start_peer, stop_peer

pytestmark = pytest.mark.peer
__all__ = ["oidc_peer"]  # the fixture, imported for pytest

SECRETS = {"ir-app": "ir-app-secret", "ir-admin": "ir-admin-secret", "gateway": "gateway-secret",
           "ir-dpop": "ir-dpop-secret"}


async def _no_sleep(_: float) -> None:
    return None


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def connector(peer: OidcPeer, client_id: str = "ir-admin", secret: str | None = None,
              **kw: Any) -> ConnectorClient:
    return ConnectorClient("idp", peer.url, auth_header=oauth.client_auth(client_id, secret or SECRETS[client_id]),
                           timeout=(3, 5), sleep=_no_sleep, **kw)


def mint(peer: OidcPeer, resource: str = "urn:ir:api:opaque", client_id: str = "ir-app",
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = httpx.post(f"{peer.url}/token", auth=(client_id, SECRETS[client_id]), headers=headers,
                   data={"grant_type": "client_credentials", "scope": "api:read", "resource": resource})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def claims_of(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    out: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return out


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_leak_free(client: ConnectorClient, *tokens: str, texts: tuple[object, ...] = ()) -> None:
    shown = [repr(e) for e in client.journal] + [str(t) for t in texts]
    assert client.journal, "the journal should record the calls"
    for token in tokens:
        for text in shown:
            assert token not in text


# --------------------------------------------------------------------------------------------- tests


def test_discovery_reads_the_advertised_endpoints(oidc_peer: OidcPeer) -> None:
    async def go() -> dict[str, Any]:
        async with connector(oidc_peer) as c:
            meta = await oauth.discover(c)
            assert await oauth.discover(c) is meta  # cached per client: one GET
            assert len(c.journal) == 1
            assert c.journal[0].url.endswith("/.well-known/openid-configuration")
            return meta

    meta = run(go())
    assert meta["issuer"] == oidc_peer.url
    assert meta["introspection_endpoint"] == f"{oidc_peer.url}/token/introspection"
    assert meta["revocation_endpoint"] == f"{oidc_peer.url}/token/revocation"


def test_opaque_token_revoked_by_admin_is_revoked_verified(oidc_peer: OidcPeer) -> None:
    token = mint(oidc_peer)["access_token"]

    snaps: list[tuple[str, str, Any]] = []

    async def go() -> tuple[dict[str, Any], int, oauth.Verdict, oauth.Verdict, ConnectorClient]:
        async with connector(oidc_peer) as c:
            before = await oauth.introspect(c, token)
            live = await oauth.probe(c, token)
            status = await oauth.revoke(c, token, "access_token", snapshot=lambda *a: snaps.append(a))
            return before, status, live, await oauth.probe(c, token), c

    before, status, live, after, c = run(go())
    assert before["active"] is True and before["client_id"] == "ir-app" and before["binding"] == "none"
    # The snapshot taken before the revoke: the live introspection, filed under the token's sha256 key.
    ((what, target, body),) = snaps
    assert what == "oauth.token" and target == fingerprint(token).keys[0] and body["active"] is True
    assert token not in repr(body)
    assert live.status == oauth.STILL_LIVE and live.expires_at == iso(before["exp"])
    assert status == 200
    assert after.status == oauth.REVOKED_VERIFIED and '{"active": false}' in after.evidence
    assert after.expires_at is None and after.binding == "none"
    assert_leak_free(c, token, texts=(before, live, after))


def test_silent_revocation_policy_leaves_the_token_still_live(oidc_peer: OidcPeer) -> None:
    token = mint(oidc_peer)["access_token"]

    async def go() -> tuple[int, oauth.Verdict, list[ConnectorClient]]:
        async with connector(oidc_peer, "gateway") as other, connector(oidc_peer) as admin:
            status = await oauth.revoke(other, token)  # the policy refuses, the endpoint answers 200 anyway
            return status, await oauth.probe(admin, token), [other, admin]

    status, verdict, clients = run(go())
    assert status == 200
    assert verdict.status == oauth.STILL_LIVE
    assert "client_id ir-app" in verdict.evidence
    assert verdict.expires_at is not None and verdict.expires_at > iso(int(time.time()))
    for c in clients:
        assert_leak_free(c, token, texts=(verdict,))


def test_jwt_access_token_is_unrevocable_until_its_exp(oidc_peer: OidcPeer) -> None:
    token = mint(oidc_peer, resource="urn:ir:api:jwt")["access_token"]
    exp = claims_of(token)["exp"]

    async def go() -> tuple[oauth.Verdict, str, oauth.Verdict, ConnectorClient]:
        async with connector(oidc_peer) as c:
            first = await oauth.probe(c, token)
            with pytest.raises(oauth.UnsupportedTokenTypeError) as err:
                await oauth.revoke(c, token, "access_token")
            return first, str(err.value), await oauth.probe(c, token), c

    first, revoke_error, after, c = run(go())
    for verdict in (first, after):
        assert verdict.status == oauth.UNREVOCABLE  # never revoked-verified
        assert verdict.expires_at == iso(exp)
        assert "unsupported_token_type" in verdict.evidence
    assert "unsupported_token_type" in revoke_error
    assert_leak_free(c, token, texts=(first, after, revoke_error))


def test_revoking_the_refresh_token_kills_the_grant_and_its_access_token(oidc_peer: OidcPeer) -> None:
    rt = oidc_peer.seeded_refresh_token
    assert rt, "server.mjs prints a pre-seeded refresh token at start-up"
    r = httpx.post(f"{oidc_peer.url}/token", auth=("ir-app", SECRETS["ir-app"]),
                   data={"grant_type": "refresh_token", "refresh_token": rt})
    assert r.status_code == 200, r.text
    at = r.json()["access_token"]

    async def go() -> tuple[list[oauth.Verdict], int, list[oauth.Verdict], ConnectorClient]:
        async with connector(oidc_peer) as c:
            before = [await oauth.probe(c, at), await oauth.probe(c, rt, "refresh_token")]
            status = await oauth.revoke(c, rt, "refresh_token")
            after = [await oauth.probe(c, at), await oauth.probe(c, rt, "refresh_token")]
            return before, status, after, c

    before, status, after, c = run(go())
    assert [v.status for v in before] == [oauth.STILL_LIVE, oauth.STILL_LIVE]
    assert status == 200
    assert [v.status for v in after] == [oauth.REVOKED_VERIFIED, oauth.REVOKED_VERIFIED]
    again = httpx.post(f"{oidc_peer.url}/token", auth=("ir-app", SECRETS["ir-app"]),
                       data={"grant_type": "refresh_token", "refresh_token": rt})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert_leak_free(c, rt, at, texts=(*before, *after))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _dpop_proof(key: ec.EllipticCurvePrivateKey, htu: str) -> tuple[str, str]:
    """A DPoP proof (RFC 9449) for POST `htu`, and the key's RFC 7638 thumbprint."""
    nums = key.public_key().public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": _b64(nums.x.to_bytes(32, "big")), "y": _b64(nums.y.to_bytes(32, "big"))}
    jkt = _b64(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())
    header = _b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).encode())
    payload = _b64(json.dumps({"jti": str(uuid.uuid4()), "htm": "POST", "htu": htu, "iat": int(time.time())}).encode())
    r, s = decode_dss_signature(key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{header}.{payload}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}", jkt


def test_dpop_bound_token_binding_is_read_from_introspection(oidc_peer: OidcPeer) -> None:
    proof, jkt = _dpop_proof(ec.generate_private_key(ec.SECP256R1()), f"{oidc_peer.url}/token")
    body = mint(oidc_peer, client_id="ir-dpop", headers={"DPoP": proof})
    assert body["token_type"] == "DPoP"
    token = body["access_token"]

    async def go() -> tuple[dict[str, Any], oauth.Verdict, oauth.Verdict, ConnectorClient]:
        async with connector(oidc_peer) as c:
            answer = await oauth.introspect(c, token)
            live = await oauth.probe(c, token)
            await oauth.revoke(c, token)
            return answer, live, await oauth.probe(c, token), c

    answer, live, dead, c = run(go())
    assert answer["binding"] == "dpop" and answer["cnf"] == {"jkt": jkt}
    assert live.status == oauth.STILL_LIVE and live.binding == "dpop"
    assert dead.status == oauth.REVOKED_VERIFIED
    assert_leak_free(c, token, texts=(answer, live, dead))


def test_wrong_client_secret_is_an_error_without_token_or_secret(oidc_peer: OidcPeer) -> None:
    token = mint(oidc_peer)["access_token"]
    wrong = "wrong-secret-" + uuid.uuid4().hex

    async def go() -> tuple[str, oauth.Verdict, ConnectorClient]:
        async with connector(oidc_peer, "ir-admin", wrong) as c:
            with pytest.raises(InvalidCredentialError) as err:
                await oauth.introspect(c, token)
            return str(err.value), await oauth.probe(c, token), c

    text, verdict, c = run(go())
    assert text.startswith("401 from idp")
    assert verdict.status == oauth.REVOKED_UNVERIFIED  # an error is never evidence of death
    assert_leak_free(c, token, wrong, texts=(text, verdict))


def test_server_stopped_gives_revoked_unverified(tmp_path: Any) -> None:
    proc, peer = start_peer(tmp_path)
    try:
        opaque = mint(peer)["access_token"]
        jwt = mint(peer, resource="urn:ir:api:jwt")["access_token"]
    finally:
        stop_peer(proc)

    async def go() -> tuple[oauth.Verdict, oauth.Verdict, ConnectorClient]:
        async with connector(peer) as c:
            return await oauth.probe(c, opaque), await oauth.probe(c, jwt), c

    v_opaque, v_jwt, c = run(go())
    for verdict in (v_opaque, v_jwt):
        assert verdict.status == oauth.REVOKED_UNVERIFIED
        assert "cannot reach idp" in verdict.evidence
    assert v_opaque.expires_at is None
    assert v_jwt.expires_at == iso(claims_of(jwt)["exp"])  # still shown: the token may outlive the outage
    assert all(e.status is None for e in c.journal)
    assert_leak_free(c, opaque, jwt, texts=(v_opaque, v_jwt))


def test_whoami_reports_the_issuer_and_checks_the_client_secret(oidc_peer: OidcPeer) -> None:
    settings = ConnectorSettings(name="idp", kind="oauth", url=oidc_peer.url, client_id="ir-admin",
                                 connect_timeout=3, read_timeout=5)
    who = oauth.whoami(settings, SECRETS["ir-admin"])
    assert who["issuer"] == oidc_peer.url and who["client_id"] == "ir-admin"
    assert who["can_introspect"] is True and who["dpop"] is True
    assert SECRETS["ir-admin"] not in json.dumps(who)
    bad = "bad-secret-" + uuid.uuid4().hex
    with pytest.raises(ConnectorError) as err:
        oauth.whoami(settings, bad)
    assert isinstance(err.value, InvalidCredentialError) and bad not in str(err.value)
    with pytest.raises(ValueError, match="client_id"):
        oauth.whoami(ConnectorSettings(name="idp", kind="oauth", url=oidc_peer.url), "x")


def test_probe_never_raises_on_an_unreachable_discovery() -> None:
    port_closed = "http://127.0.0.1:9"  # discard port: nothing listens there

    async def go() -> oauth.Verdict:
        async with ConnectorClient("idp", port_closed, auth_header=oauth.client_auth("a", "b"), timeout=(1, 1),
                                   sleep=_no_sleep) as c:
            return await oauth.probe(c, "opaque-" + uuid.uuid4().hex)

    verdict = run(go())
    assert verdict.status == oauth.REVOKED_UNVERIFIED and verdict.binding == "none"
    assert verdict.evidence.startswith("introspection failed: cannot reach idp")
