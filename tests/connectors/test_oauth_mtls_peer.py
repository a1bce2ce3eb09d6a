"""connectors/oauth.py against a REAL authorization server issuing certificate-bound tokens (RFC 8705).

oidc-provider 9.13.3 (tests/peers/oidc/server.mjs, test-peers.md §1 "mTLS certificate-bound token") started with
a self-signed P-256 server certificate for 127.0.0.1 and the client `ir-mtls` registered from a self-signed P-256
client certificate (a JWK carrying `x5c`), all generated here with `cryptography`. The token is minted over
HTTPS through the shared `ConnectorClient` (verify = the server certificate, cert = the client pair); the
responder's connector then introspects, probes and revokes it over plain HTTP as `gateway` / `ir-admin`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ipaddress
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors import oauth
from connectors.http import ConnectorClient
from tests.connectors.oidc_peer import OidcPeer, start_peer, stop_peer

pytestmark = pytest.mark.peer

SECRETS = {"ir-admin": "ir-admin-secret", "gateway": "gateway-secret"}
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _no_sleep(_: float) -> None:
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _self_signed(common_name: str, ip: str | None = None) -> tuple[bytes, bytes, bytes]:
    """A self-signed P-256 certificate: (certificate PEM, key PEM, certificate DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if ip is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.public_bytes(serialization.Encoding.DER)


def _client_jwk(cert_der: bytes) -> dict[str, Any]:
    """What the node one-liner in test-peers §1 writes: the certificate's public JWK plus `x5c` (base64 DER)."""
    public = x509.load_der_x509_certificate(cert_der).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    nums = public.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64url(nums.x.to_bytes(32, "big")),
            "y": _b64url(nums.y.to_bytes(32, "big")), "x5c": [base64.b64encode(cert_der).decode()]}


@dataclass(frozen=True)
class MtlsPeer:
    peer: OidcPeer
    server_crt: str  # path: the CA bundle the connector verifies the HTTPS listener with
    client_crt: str
    client_key: str
    x5t: str  # base64url(SHA-256(DER of the client certificate)), computed here


@pytest.fixture(scope="module")
def mtls_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsPeer]:
    workdir = tmp_path_factory.mktemp("oidc-mtls-peer")
    server_pem, server_key, _ = _self_signed("127.0.0.1", ip="127.0.0.1")
    client_pem, client_key, client_der = _self_signed("ir-mtls")
    files = {"tls/server.crt": server_pem, "tls/server.key": server_key, "tls/client.crt": client_pem,
             "tls/client.key": client_key, "mtls-client.jwk.json": json.dumps(_client_jwk(client_der)).encode()}
    proc, peer = start_peer(workdir, files)
    try:
        assert peer.tls_url, "start_peer should report the HTTPS listener when tls/server.* exist"
        tls = workdir / "tls"
        yield MtlsPeer(peer, str(tls / "server.crt"), str(tls / "client.crt"), str(tls / "client.key"),
                       _b64url(hashlib.sha256(client_der).digest()))
    finally:
        stop_peer(proc)


def over_tls(m: MtlsPeer, *, with_cert: bool = True) -> ConnectorClient:
    cert = (m.client_crt, m.client_key) if with_cert else None
    return ConnectorClient("idp-mtls", m.peer.tls_url, timeout=(3, 5), verify=m.server_crt, cert=cert,
                           max_retries=0, sleep=_no_sleep)


def connector(peer: OidcPeer, client_id: str) -> ConnectorClient:
    return ConnectorClient("idp", peer.url, auth_header=oauth.client_auth(client_id, SECRETS[client_id]),
                           timeout=(3, 5), sleep=_no_sleep)


CLIENT_CREDENTIALS = {"grant_type": "client_credentials", "client_id": "ir-mtls"}


def assert_leak_free(clients: list[ConnectorClient], token: str, texts: tuple[object, ...]) -> None:
    shown = [repr(e) for c in clients for e in c.journal] + [str(t) for t in texts]
    assert all(c.journal for c in clients), "the journal should record the calls"
    assert token and all(token not in text for text in shown)


def test_mtls_bound_token_is_probed_and_revoked(mtls_peer: MtlsPeer) -> None:
    async def go() -> tuple[dict[str, Any], dict[str, Any], list[oauth.Verdict], int, list[ConnectorClient]]:
        async with over_tls(mtls_peer) as tls, connector(mtls_peer.peer, "gateway") as gw, \
                connector(mtls_peer.peer, "ir-admin") as admin:
            r = await tls.request("POST", "/token", data=CLIENT_CREDENTIALS, idempotent=False)
            issued: dict[str, Any] = r.json()
            token = issued["access_token"]
            answer = await oauth.introspect(gw, token, "access_token")
            live = [await oauth.probe(gw, token), await oauth.probe(admin, token)]
            status = await oauth.revoke(admin, token, "access_token")
            after = await oauth.probe(gw, token)
            return issued, answer, [*live, after], status, [tls, gw, admin]

    issued, answer, verdicts, status, clients = run(go())
    assert issued["token_type"] == "Bearer"  # RFC 8705: still a Bearer token, bound through cnf
    token = issued["access_token"]
    assert clients[0].journal[0].url.startswith(mtls_peer.peer.tls_url) and clients[0].journal[0].status == 200

    assert answer["active"] is True and answer["client_id"] == "ir-mtls"
    assert answer["binding"] == "mtls"
    assert answer["cnf"] == {"x5t#S256": mtls_peer.x5t}  # the thumbprint of the certificate presented

    *live, after = verdicts
    for verdict in live:
        assert verdict.status == oauth.STILL_LIVE and verdict.binding == "mtls"
        assert "client_id ir-mtls" in verdict.evidence and verdict.expires_at is not None
    assert status == 200
    assert after.status == oauth.REVOKED_VERIFIED
    assert after.binding == "none"  # an inactive answer is only {"active": false}: no cnf left to read
    assert '{"active": false}' in after.evidence
    assert_leak_free(clients, token, texts=(answer, *verdicts))

    events = [json.loads(line) for line in mtls_peer.peer.events.read_text().splitlines()]
    saved = [e for e in events if e["event"] == "client_credentials.saved" and e["client_id"] == "ir-mtls"]
    assert [e.get("x5t") for e in saved] == [mtls_peer.x5t]  # the server bound what the test computed
    assert any(e["event"] == "client_credentials.destroyed" and e["client_id"] == "ir-mtls" for e in events)


def test_token_request_without_the_client_certificate_is_invalid_client(mtls_peer: MtlsPeer) -> None:
    async def go() -> tuple[httpx.Response, ConnectorClient]:
        async with over_tls(mtls_peer, with_cert=False) as tls:
            r = await tls.request("POST", "/token", data=CLIENT_CREDENTIALS, idempotent=False,
                                  accept_status=(400, 401))
            return r, tls

    r, tls = run(go())
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    assert "access_token" not in r.json()
    assert tls.journal[-1].status == r.status_code
    events = [json.loads(line) for line in mtls_peer.peer.events.read_text().splitlines()]
    assert any(e["event"] == "grant.error" and e["client_id"] == "ir-mtls" and e["error"] == "invalid_client"
               and "not provided" in e["detail"] for e in events)
