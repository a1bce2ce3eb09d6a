"""stanch's RFC 7662 introspection and RFC 7009 revocation (`connectors.oauth`) against Okta's OAuth contract.

Checked against Okta's official OAuth OpenAPI document (okta-management-openapi-spec, `oauth-minimal.yaml`,
copied unchanged into tests/fixtures/okta/spec) served by Prism 5.14.2 — no real Okta runs here. Prism
validates each request (form encoding, the `token_type_hint` enum, client authentication); its answers are
Okta's own examples, picked with `Prefer: example=…`.

Discovery is not exercised here: Prism answers Okta's example metadata document, whose endpoints name
`{yourOktaDomain}`, so the test gives the client the org authorization server's endpoints on the Prism origin
(the metadata a real Okta org publishes at `/.well-known/openid-configuration`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connectors import oauth
from connectors.http import ConnectorClient
from tests.conftest import fake_token
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory

__all__ = ["prism_factory"]

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "okta" / "spec" / "okta-oauth-minimal.yaml"
CLIENT_ID = "0oa-stanch-test-client"
CLIENT_SECRET = fake_token("stanch-FAKE-okta-client-secret-", 24)
TOKEN = fake_token("stanch-FAKE-okta-access-token-", 24)


@pytest.fixture(scope="module")
def prism(prism_factory: Any) -> PrismPeer:  # noqa: F811  (the imported fixture)
    return prism_factory(SPEC)


def client_for(prism: PrismPeer, transport: RecordingTransport) -> ConnectorClient:
    c = ConnectorClient("okta-as", prism.url, auth_header=oauth.client_auth(CLIENT_ID, CLIENT_SECRET),
                        transport=transport, max_retries=0)
    oauth._discovered[c] = {"issuer": prism.url, "introspection_endpoint": f"{prism.url}/oauth2/v1/introspect",
                            "revocation_endpoint": f"{prism.url}/oauth2/v1/revoke"}
    return c


def test_introspect_revoke_and_probe_keep_okta_s_contract(prism: PrismPeer) -> None:
    live = RecordingTransport()
    dead = RecordingTransport(prefer={"/oauth2/v1/introspect": "example=Inactive token"})
    snaps: list[tuple[str, str, Any]] = []

    async def go() -> tuple[dict[str, Any], oauth.Verdict, int, oauth.Verdict]:
        async with client_for(prism, live) as c:
            answer = await oauth.introspect(c, TOKEN, "access_token")
            before = await oauth.probe(c, TOKEN)
            status = await oauth.revoke(c, TOKEN, "access_token", snapshot=lambda *a: snaps.append(a))
        async with client_for(prism, dead) as c:
            after = await oauth.probe(c, TOKEN, "access_token")
        return answer, before, status, after

    answer, before, status, after = asyncio.run(go())
    live.assert_contract_kept()
    dead.assert_contract_kept()
    assert [(m, p) for m, p, _ in live.calls()] == [("POST", "/oauth2/v1/introspect")] * 3 + [
        ("POST", "/oauth2/v1/revoke")]
    assert answer["active"] is True and answer["binding"] == "none"  # Okta's "Access token" example
    assert before.status == "still-live"
    assert status == 200  # Okta: "revoking an invalid, expired, or revoked token is still considered a success"
    assert snaps and snaps[0][0] == "oauth.token" and snaps[0][1].startswith("sha256:")
    assert after.status == "revoked-verified" and '{"active": false}' in after.evidence
    for r in live.exchanges + dead.exchanges:
        assert r.request.headers["authorization"].startswith("Basic ")
        assert b"token=" in r.request.content and b"client_secret" not in r.request.content
    for text in (repr(answer), before.evidence, after.evidence):
        assert TOKEN not in text and CLIENT_SECRET not in text


def test_okta_refuses_a_revoke_without_client_authentication(prism: PrismPeer) -> None:
    rec = RecordingTransport()

    async def go() -> None:
        async with ConnectorClient("okta-as", prism.url, transport=rec, max_retries=0) as c:
            oauth._discovered[c] = {"issuer": prism.url, "revocation_endpoint": f"{prism.url}/oauth2/v1/revoke"}
            with pytest.raises(Exception) as e:
                await oauth.revoke(c, TOKEN)
            assert e.value.status == 401 and TOKEN not in str(e.value)

    asyncio.run(go())
    assert rec.exchanges[0].status_code == 401
