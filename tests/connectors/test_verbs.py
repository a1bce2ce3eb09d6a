"""connectors/verbs.py: every verb a revocation set can name is registered and takes that set's target, and the
registry's act + probe work end to end against real peers (OpenBao, oidc-provider, moto, Prism with Okta's spec).

Peers are module-scoped (one server each for the whole module); a missing peer skips locally and fails under
CI=true (tests/peers.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import connectors  # noqa: F401  (registers every module's verbs and revokers)
from casefile.blast import RevokeHow
from casefile.secrets import fingerprint
from connectors import aws, entra, github, keycloak, kong, oauth, okta, salesforce, vault, verbs
from connectors.config import ConnectorSettings
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict
from tests.connectors.moto_peer import Moto, moto_server
from tests.connectors.oidc_peer import OidcPeer, oidc_peer
from tests.connectors.prism_peer import PrismPeer, RecordingTransport, prism_factory
from tests.connectors.test_oauth_peer import SECRETS, mint
from tests.connectors.test_vault import ROOT_TOKEN
from tests.connectors.test_vault_live import bao, create, family

__all__ = ["bao", "oidc_peer", "prism_factory"]  # the fixtures, imported for pytest

GUID_APP = "11111111-2222-3333-4444-555555555555"
GUID_KEY = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
RAW_GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
RAW_OAUTH = "opaque-access-token-for-the-table-test-0123456789"

# One representative credential per revoker answer, as the blast radius hands them to `revoke_how`:
# (module, credential, expected connector kind, verb, target)
CASES: list[tuple[Any, dict[str, Any], str, str, str]] = [
    (okta, {"keys": ["okta-token:00Tabcdefg1234567890"], "kind": "api-token"},
     "okta", "revoke-api-token", "00Tabcdefg1234567890"),
    (okta, {"keys": ["okta-token:hash:xyz", "okta-token:oar579Mcp7OUsNTlo0g3"], "client": "0oabskvc6442nkvQO0h7",
            "kind": "refresh"}, "okta", "revoke-app-token", "0oabskvc6442nkvQO0h7/oar579Mcp7OUsNTlo0g3"),
    (vault, {"keys": ["vault-hmac:default:abc", "vault-accessor:default:hvs.accessorXYZ"], "kind": "vault-token"},
     "vault", "revoke-accessor", "hvs.accessorXYZ"),
    (vault, {"keys": ["vault-hmac:default:abc"], "kind": "vault-token"},
     "vault", "revoke-token", "vault-hmac:default:abc"),
    (aws, {"keys": ["aws-key:AKIAIOSFODNN7EXAMPLE"], "kind": "access-key"},
     "aws", "deactivate-access-key", "AKIAIOSFODNN7EXAMPLE"),
    (aws, {"keys": ["aws-key:ASIAIOSFODNN7EXAMPLE"], "kind": "session"},
     "aws", "revoke-role-sessions", "ASIAIOSFODNN7EXAMPLE"),
    (github, {"keys": [fingerprint(RAW_GITHUB).keys[0]], "preview": fingerprint(RAW_GITHUB).preview, "kind": "pat"},
     "github", "revoke-credentials", fingerprint(RAW_GITHUB).keys[0]),
    (oauth, {"keys": [fingerprint(RAW_OAUTH).keys[0]], "kind": "access"},
     "oauth", "revoke", fingerprint(RAW_OAUTH).keys[0]),
    (oauth, {"keys": [fingerprint(RAW_OAUTH).keys[1]], "kind": "refresh"},
     "oauth", "revoke", fingerprint(RAW_OAUTH).keys[1]),
    (kong, {"keys": ["kong-credential:4e8d95d4-40f2-4818-adcb-30e00c349618"], "kind": "api-key"},
     "kong", "delete-credential", "4e8d95d4-40f2-4818-adcb-30e00c349618"),
    (keycloak, {"keys": ["session:keycloak/acme:5a1d6f3e-3c1c-4c8e-9f5e-2b1f0f7c7d11"], "kind": "session",
                "principal": "0b6f3c1e-7d2a-4a57-b8f0-3f0c2b8e9a41"},
     "keycloak", "delete-session",
     "acme:5a1d6f3e-3c1c-4c8e-9f5e-2b1f0f7c7d11/0b6f3c1e-7d2a-4a57-b8f0-3f0c2b8e9a41"),
    (keycloak, {"keys": ["session:keycloak/acme:5a1d6f3e-3c1c-4c8e-9f5e-2b1f0f7c7d11"], "kind": "session"},
     "keycloak", "delete-session", "acme:5a1d6f3e-3c1c-4c8e-9f5e-2b1f0f7c7d11"),
    (entra, {"keys": [f"entra-key:{GUID_KEY}"], "client": GUID_APP, "kind": "client-secret"},
     "entra", "remove-password", f"{GUID_APP}/{GUID_KEY}"),
    (entra, {"keys": [f"entra-key:{GUID_KEY}"], "kind": "client-secret"},
     "entra", "remove-password", GUID_KEY),
    (salesforce, {"keys": ["sf-token:0CR5g00000AbCdE"], "kind": "refresh"},
     "salesforce", "revoke-oauth-token", "0CR5g00000AbCdE"),
]

# Each target parser a verb uses, fed the revoker's target: it must accept it.
TARGET_PARSERS: dict[tuple[str, str], Callable[[str], Any]] = {
    ("okta", "revoke-app-token"): okta._app_token_target,
    ("aws", "deactivate-access-key"): aws._key_target,
    ("kong", "delete-credential"): kong._credential_target,
    ("keycloak", "delete-session"): keycloak._session_target,
    ("entra", "remove-password"): entra._password_target,
}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Snapshots:
    def __init__(self) -> None:
        self.taken: list[tuple[str, str, Any]] = []

    def __call__(self, what: str, target: str, body: Any) -> None:
        self.taken.append((what, target, body))


# ------------------------------------------------------------------------------------------- the table


@pytest.mark.parametrize(("module", "credential", "kind", "verb", "target"), CASES,
                         ids=[f"{c[2]}-{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_every_revoker_answer_is_a_registered_verb(module: Any, credential: dict[str, Any], kind: str, verb: str,
                                                   target: str) -> None:
    how = module.revoker(credential)
    assert isinstance(how, RevokeHow)
    assert (how.connector, how.verb, how.target) == (kind, verb, target)
    registered = verbs.get(how.connector, how.verb)
    assert registered is not None, f"{how.connector} {how.verb} is not registered"
    assert registered.needs_raw == how.needs_raw_secret
    assert registered.reversible == how.reversible
    if registered.reversible:
        assert registered.undo and verbs.get(kind, registered.undo) is not None
    parser = TARGET_PARSERS.get((kind, verb))
    if parser is not None:
        parser(how.target)  # raises on a target the verb cannot read


def test_every_registered_verb_is_well_formed() -> None:
    from connectors.config import KINDS

    assert len(verbs.VERBS) >= 30
    for (kind, name), v in verbs.VERBS.items():
        assert kind in KINDS and (v.kind, v.name) == (kind, name)
        assert v.description, f"{kind} {name} has no description"
        assert not v.reversible or (v.undo and (kind, v.undo) in verbs.VERBS), f"{kind} {name}: undo not registered"
    assert verbs.VERBS[("keycloak", "regenerate-client-secret")].rotation


def test_raw_credentials_are_checked_against_the_target() -> None:
    key = fingerprint(RAW_OAUTH).keys[0]
    assert verbs.check_raw("oauth", "revoke", key, RAW_OAUTH) == RAW_OAUTH
    with pytest.raises(ValueError, match="not the one"):
        verbs.check_raw("oauth", "revoke", key, RAW_OAUTH + "x")
    with pytest.raises(ValueError, match="needs the raw"):
        verbs.check_raw("oauth", "revoke", key, None)
    # a needs_raw verb is refused by the registry before it opens any client
    settings = ConnectorSettings(name="idp", kind="oauth", url="http://127.0.0.1:9", client_id="x")
    with pytest.raises(ValueError, match="needs the raw"):
        run(verbs.act(verbs.VERBS[("oauth", "revoke")], settings, "s", key, raw=None, snapshot=Snapshots()))
    # a probe never raises: a wrong raw value is an unverified verdict, and the raw value is not in it
    verdict = run(verbs.probe(verbs.VERBS[("oauth", "revoke")], settings, "s", key, raw="wrong-raw-value"))
    assert verdict.status == REVOKED_UNVERIFIED and "wrong-raw-value" not in verdict.evidence
    # github: the preview stands for the key when the case had none
    preview = fingerprint(RAW_GITHUB).preview
    assert github._raw_token("revoke-credentials", preview, RAW_GITHUB) == RAW_GITHUB
    with pytest.raises(ValueError):
        github._raw_token("revoke-credentials", preview, "ghp_" + "Z" * 36)


def test_temporary_aws_credentials_are_a_manual_step() -> None:
    settings = ConnectorSettings(name="aws", kind="aws", url="http://127.0.0.1:9")
    verb = verbs.VERBS[("aws", "revoke-role-sessions")]
    with pytest.raises(verbs.NotAutomatableError, match="put-role-policy") as e:
        run(verbs.act(verb, settings, "AKIAIOSFODNN7EXAMPLE:x", "ASIAIOSFODNN7EXAMPLE", raw=None, snapshot=Snapshots()))
    assert "aws:TokenIssueTime" in str(e.value)
    verdict = run(verbs.probe(verb, settings, "AKIAIOSFODNN7EXAMPLE:x", "ASIAIOSFODNN7EXAMPLE", raw=None))
    assert verdict.status == REVOKED_UNVERIFIED


def test_a_verb_without_probe_is_unverified() -> None:
    settings = ConnectorSettings(name="okta", kind="okta", url="http://127.0.0.1:9")
    verdict = run(verbs.probe(verbs.VERBS[("okta", "clear-user-sessions")], settings, "t", "00u1", raw=None))
    assert verdict.status == REVOKED_UNVERIFIED


def test_a_probe_that_cannot_connect_is_unverified() -> None:
    settings = ConnectorSettings(name="bao", kind="vault", url="http://127.0.0.1:9", connect_timeout=1,
                                 read_timeout=1)
    verdict = run(verbs.probe(verbs.VERBS[("vault", "revoke-accessor")], settings, "root", "acc", raw=None))
    assert isinstance(verdict, Verdict) and verdict.status == REVOKED_UNVERIFIED


# ------------------------------------------------------------------------------------------- OpenBao


def test_vault_revoke_accessor_through_the_registry(bao: tuple[str, Path]) -> None:  # noqa: F811
    base, _ = bao
    settings = ConnectorSettings(name="bao-test", kind="vault", url=base)
    parent, child = family(base, "verbs")
    verb = verbs.VERBS[("vault", "revoke-accessor")]
    snaps = Snapshots()

    async def main() -> tuple[Verdict, dict[str, Any], Verdict, Verdict]:
        before = await verbs.probe(verb, settings, ROOT_TOKEN, parent["accessor"], raw=None)
        result = await verbs.act(verb, settings, ROOT_TOKEN, parent["accessor"], raw=None, snapshot=snaps)
        after = await verbs.probe(verb, settings, ROOT_TOKEN, parent["accessor"], raw=None)
        child_after = await verbs.probe(verb, settings, ROOT_TOKEN, child["accessor"], raw=None)
        return before, result, after, child_after

    before, result, after, child_after = run(main())
    assert before.status == STILL_LIVE
    assert result["status_code"] == 204 and result["snapshot"]["accessor"] == parent["accessor"]
    assert [(w, t) for w, t, _ in snaps.taken] == [("vault.token", parent["accessor"])]
    assert "id" not in snaps.taken[0][2] and parent["token"] not in repr(result)
    assert after.status == REVOKED_VERIFIED and "invalid accessor" in after.evidence
    assert child_after.status == REVOKED_VERIFIED  # the children go with it


def test_vault_revoke_token_takes_the_children_too(bao: tuple[str, Path]) -> None:  # noqa: F811
    base, _ = bao
    settings = ConnectorSettings(name="bao-test", kind="vault", url=base)
    parent, child = family(base, "verbs-raw")
    other = create(base, ROOT_TOKEN, "verbs-bystander")
    verb = verbs.VERBS[("vault", "revoke-token")]
    target = fingerprint(parent["token"]).keys[0]
    snaps = Snapshots()

    async def main() -> tuple[dict[str, Any], Verdict, Verdict, Verdict]:
        result = await verbs.act(verb, settings, ROOT_TOKEN, target, raw=parent["token"], snapshot=snaps)
        after = await verbs.probe(verb, settings, ROOT_TOKEN, target, raw=parent["token"])
        kid = await verbs.probe(verb, settings, ROOT_TOKEN, "child", raw=child["token"])
        bystander = await verbs.probe(verb, settings, ROOT_TOKEN, "other", raw=other["token"])
        return result, after, kid, bystander

    result, after, kid, bystander = run(main())
    assert result["status_code"] == 204 and result["accessor"] == parent["accessor"]
    assert [(w, t) for w, t, _ in snaps.taken] == [("vault.token", parent["accessor"])]
    assert parent["token"] not in repr(result) and parent["token"] not in repr(snaps.taken)
    assert after.status == REVOKED_VERIFIED and kid.status == REVOKED_VERIFIED
    assert bystander.status == STILL_LIVE
    # a raw token that is not the target's is refused before anything is sent
    with pytest.raises(ValueError, match="not the one"):
        run(verbs.act(verb, settings, ROOT_TOKEN, target, raw=other["token"], snapshot=snaps))


# ------------------------------------------------------------------------------------------- oidc-provider


def test_oauth_revoke_through_the_registry(oidc_peer: OidcPeer) -> None:  # noqa: F811
    settings = ConnectorSettings(name="idp", kind="oauth", url=oidc_peer.url, client_id="ir-admin")
    secret = SECRETS["ir-admin"]
    token = mint(oidc_peer)["access_token"]
    target = fingerprint(token).keys[0]
    verb = verbs.VERBS[("oauth", "revoke")]
    snaps = Snapshots()

    async def main() -> tuple[Verdict, dict[str, Any], Verdict]:
        before = await verbs.probe(verb, settings, secret, target, raw=token)
        result = await verbs.act(verb, settings, secret, target, raw=token, snapshot=snaps)
        return before, result, await verbs.probe(verb, settings, secret, target, raw=token)

    before, result, after = run(main())
    assert before.status == STILL_LIVE
    assert result == {"status_code": 200}
    ((what, snap_target, body),) = snaps.taken
    assert (what, snap_target) == ("oauth.token", target) and body["active"] is True and token not in repr(body)
    assert after.status == REVOKED_VERIFIED and token not in after.evidence


# ------------------------------------------------------------------------------------------- moto


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with moto_server(tmp_path_factory.mktemp("moto")) as m:
        yield m


def test_aws_deactivate_undo_delete_through_the_registry(moto: Moto) -> None:
    moto.create_user("verbs-bot")
    key = moto.create_key("verbs-bot").access_key_id
    settings, secret = moto.settings(), moto.secret()
    deactivate = verbs.VERBS[("aws", "deactivate-access-key")]
    assert deactivate.undo is not None
    undo = verbs.VERBS[("aws", deactivate.undo)]
    delete = verbs.VERBS[("aws", "delete-access-key")]
    snaps = Snapshots()

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"before": await verbs.probe(deactivate, settings, secret, key, raw=None)}
        out["deactivate"] = await verbs.act(deactivate, settings, secret, key, raw=None, snapshot=snaps)
        out["inactive"] = await verbs.probe(deactivate, settings, secret, key, raw=None)
        out["undo"] = await verbs.act(undo, settings, secret, f"verbs-bot/{key}", raw=None, snapshot=snaps)
        out["active"] = await verbs.probe(undo, settings, secret, key, raw=None)
        out["delete"] = await verbs.act(delete, settings, secret, key, raw=None, snapshot=snaps)
        out["gone"] = await verbs.probe(delete, settings, secret, key, raw=None)
        return out

    out = run(main())
    assert out["before"].status == STILL_LIVE
    assert out["deactivate"]["status_code"] == 200
    assert out["deactivate"]["snapshot"]["AccessKeyMetadata"]["Status"] == "Active"
    assert out["inactive"].status == REVOKED_VERIFIED and "Inactive" in out["inactive"].evidence
    assert out["undo"]["snapshot"]["AccessKeyMetadata"]["Status"] == "Inactive"
    assert out["active"].status == STILL_LIVE
    assert out["gone"].status == REVOKED_VERIFIED
    assert [(w, t) for w, t, _ in snaps.taken] == [("aws.access_key", key)] * 3
    assert moto.admin.secret_access_key not in repr(out)


# ------------------------------------------------------------------------------------------- Prism (Okta's spec)

OKTA_SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "okta" / "spec" / "okta-management-subset.yaml"
OKTA_TOKEN = "00FAKE-okta-api-token-for-tests-only"
API_TOKEN_ID = "00Tabcdefg1234567890"
APP_ID = "0oabskvc6442nkvQO0h7"
APP_TOKEN_ID = "oar579Mcp7OUsNTlo0g3"


@pytest.fixture(scope="module")
def okta_prism(prism_factory: Any) -> PrismPeer:  # noqa: F811
    return prism_factory(OKTA_SPEC)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[RecordingTransport]]:
    """Route the verbs' own Okta clients through a RecordingTransport (with Prism `Prefer` headers)."""
    real = okta.client_for

    def install(prefer: dict[str, str] | None = None) -> list[RecordingTransport]:
        made: list[RecordingTransport] = []

        def client_for(settings: ConnectorSettings, secret: str, **kw: Any) -> Any:
            transport = RecordingTransport(prefer=prefer)
            made.append(transport)
            return real(settings, secret, transport=transport, max_retries=0, **kw)

        monkeypatch.setattr(okta, "client_for", client_for)
        return made

    return install


def test_okta_revoke_api_token_through_prism(okta_prism: PrismPeer,
                                             recorded: Callable[..., list[RecordingTransport]]) -> None:
    settings = ConnectorSettings(name="okta-test", kind="okta", url=okta_prism.url)
    verb = verbs.VERBS[("okta", "revoke-api-token")]
    snaps = Snapshots()
    made = recorded()
    result = run(verbs.act(verb, settings, OKTA_TOKEN, API_TOKEN_ID, raw=None, snapshot=snaps))
    live = run(verbs.probe(verb, settings, OKTA_TOKEN, API_TOKEN_ID, raw=None))
    assert result["status_code"] == 204 and result["snapshot"]["id"] == API_TOKEN_ID
    assert [(w, t) for w, t, _ in snaps.taken] == [("okta.api_token", API_TOKEN_ID)]
    assert made[0].calls() == [("GET", f"/api/v1/api-tokens/{API_TOKEN_ID}", 200),
                               ("DELETE", f"/api/v1/api-tokens/{API_TOKEN_ID}", 204)]
    assert live.status == STILL_LIVE  # Prism answers the spec's example whatever happened before
    made = recorded({"/api/v1/api-tokens/": "code=404"})
    gone = run(verbs.probe(verb, settings, OKTA_TOKEN, API_TOKEN_ID, raw=None))
    assert gone.status == REVOKED_VERIFIED and gone.http_status == 404
    for transport in made:
        transport.assert_contract_kept()


def test_okta_revoke_app_token_through_prism(okta_prism: PrismPeer,
                                             recorded: Callable[..., list[RecordingTransport]]) -> None:
    settings = ConnectorSettings(name="okta-test", kind="okta", url=okta_prism.url)
    how = okta.revoker({"keys": [f"okta-token:{APP_TOKEN_ID}"], "client": APP_ID, "kind": "refresh"})
    assert how is not None
    verb = verbs.get(how.connector, how.verb)
    assert verb is not None
    snaps = Snapshots()
    made = recorded()
    result = run(verbs.act(verb, settings, OKTA_TOKEN, how.target, raw=None, snapshot=snaps))
    assert result["status_code"] == 204
    assert [(w, t) for w, t, _ in snaps.taken] == [("okta.app_token", APP_TOKEN_ID)]
    made += recorded({"/tokens/": "code=404"})
    gone = run(verbs.probe(verb, settings, OKTA_TOKEN, how.target, raw=None))
    assert gone.status == REVOKED_VERIFIED
    for transport in made:
        transport.assert_contract_kept()


def test_okta_deactivate_app_and_undo_through_prism(okta_prism: PrismPeer,
                                                    recorded: Callable[..., list[RecordingTransport]]) -> None:
    settings = ConnectorSettings(name="okta-test", kind="okta", url=okta_prism.url)
    verb = verbs.VERBS[("okta", "deactivate-app")]
    assert verb.undo is not None
    undo = verbs.VERBS[("okta", verb.undo)]
    snaps = Snapshots()
    made = recorded()
    done = run(verbs.act(verb, settings, OKTA_TOKEN, APP_ID, raw=None, snapshot=snaps))
    undone = run(verbs.act(undo, settings, OKTA_TOKEN, APP_ID, raw=None, snapshot=snaps))
    probed = run(verbs.probe(verb, settings, OKTA_TOKEN, APP_ID, raw=None))
    assert done["status_code"] == 200 and undone["status_code"] == 200
    assert [(w, t) for w, t, _ in snaps.taken] == [("okta.app", APP_ID)] * 2
    assert probed.status in (STILL_LIVE, REVOKED_VERIFIED)  # the spec's example app is ACTIVE or INACTIVE
    for transport in made:
        transport.assert_contract_kept()


# ------------------------------------------------------------------------------------------- recorded answers


def _mock_kong(handler: Callable[[httpx.Request], httpx.Response], monkeypatch: pytest.MonkeyPatch) -> None:
    real = kong.client_for
    monkeypatch.setattr(kong, "client_for", lambda s, secret, **kw: real(
        s, secret, transport=httpx.MockTransport(handler), max_retries=0, **kw))


def test_kong_delete_credential_by_id_finds_its_plugin_and_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Kong Admin API answers (docs.konghq.com, Admin API: key-auth / jwt credential objects carry `consumer.id`).
    cred, consumer = "4e8d95d4-40f2-4818-adcb-30e00c349618", "c439c348-9b8a-4dbd-b6d6-f6b8a3a5e1f1"
    deleted: list[str] = []
    calls: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.method == "DELETE":
            deleted.append(request.url.path)
            return httpx.Response(204)
        if request.url.path in (f"/jwts/{cred}", f"/consumers/{consumer}/jwt/{cred}") and not deleted:
            return httpx.Response(200, json={"id": cred, "consumer": {"id": consumer}, "key": "iss",
                                             "secret": "jwt-secret-value", "algorithm": "HS256"})
        return httpx.Response(404, json={"message": "Not found"})

    _mock_kong(handler, monkeypatch)
    settings = ConnectorSettings(name="kong", kind="kong", url="http://kong.test:8001")
    verb = verbs.VERBS[("kong", "delete-credential")]
    snaps = Snapshots()
    result = run(verbs.act(verb, settings, "", cred, raw=None, snapshot=snaps))
    assert result["plugin"] == "jwt" and result["consumer"] == consumer and result["status_code"] == 204
    assert deleted == [f"/consumers/{consumer}/jwt/{cred}"]
    ((what, target, body),) = snaps.taken
    assert (what, target) == ("kong.credential", cred) and "jwt-secret-value" not in repr(body)
    assert calls.index(("DELETE", deleted[0])) > calls.index(("GET", f"/consumers/{consumer}/jwt/{cred}"))
    gone = run(verbs.probe(verb, settings, "", cred, raw=None))
    assert gone.status == REVOKED_VERIFIED and "every credential collection" in gone.evidence
    gone = run(verbs.probe(verb, settings, "", f"jwt/{consumer}/{cred}", raw=None))
    assert gone.status == REVOKED_VERIFIED


def test_keycloak_delete_session_reads_the_user_then_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    sid, uid = "5a1d6f3e-3c1c-4c8e-9f5e-2b1f0f7c7d11", "0b6f3c1e-7d2a-4a57-b8f0-3f0c2b8e9a41"
    sessions = [{"id": sid, "userId": uid, "username": "alice", "ipAddress": "203.0.113.9"}]
    calls: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls.append((request.method, path))
        if path.endswith("/protocol/openid-connect/token"):
            return httpx.Response(200, json={"access_token": "kc-admin-token", "expires_in": 300})
        if path == f"/admin/realms/acme/users/{uid}":
            return httpx.Response(200, json={"id": uid, "username": "alice"})
        if path == f"/admin/realms/acme/users/{uid}/sessions":
            return httpx.Response(200, json=sessions)
        if request.method == "DELETE" and path == f"/admin/realms/acme/sessions/{sid}":
            sessions.clear()
            return httpx.Response(204)
        return httpx.Response(404, json={"error": "not found"})

    real = keycloak.open_admin
    monkeypatch.setattr(keycloak, "open_admin", lambda s, secret, **kw: real(
        s, secret, transport=httpx.MockTransport(handler), max_retries=0, **kw))
    settings = ConnectorSettings(name="kc", kind="keycloak", url="http://kc.test/realms/acme", client_id="stanch")
    how = keycloak.revoker({"keys": [f"session:keycloak/acme:{sid}"], "principal": uid})
    assert how is not None
    verb = verbs.VERBS[("keycloak", "delete-session")]
    snaps = Snapshots()
    before = run(verbs.probe(verb, settings, "client-secret", how.target, raw=None))
    result = run(verbs.act(verb, settings, "client-secret", how.target, raw=None, snapshot=snaps))
    after = run(verbs.probe(verb, settings, "client-secret", how.target, raw=None))
    assert before.status == STILL_LIVE and after.status == REVOKED_VERIFIED
    assert result["status_code"] == 204 and result["user_id"] == uid
    ((what, target, body),) = snaps.taken
    assert (what, target, body["id"], body["ipAddress"]) == ("keycloak.session", sid, sid, "203.0.113.9")
    assert calls.index(("DELETE", f"/admin/realms/acme/sessions/{sid}")) > calls.index(
        ("GET", f"/admin/realms/acme/users/{uid}/sessions"))
    unnamed = run(verbs.probe(verb, settings, "client-secret", f"acme:{sid}", raw=None))
    assert unnamed.status == REVOKED_UNVERIFIED


def test_entra_remove_password_resolves_the_object_by_app_id(monkeypatch: pytest.MonkeyPatch) -> None:
    app_obj = "9c3f3b56-0000-4000-8000-000000000001"
    sp_obj = "9c3f3b56-0000-4000-8000-000000000002"
    creds = [{"keyId": GUID_KEY, "displayName": "ci", "hint": "abc", "endDateTime": "2027-01-01T00:00:00Z"}]
    removed: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "oauth2/v2.0/token" in path:
            return httpx.Response(200, json={"access_token": "graph-token", "expires_in": 3600,
                                             "token_type": "Bearer"})
        if path == "/v1.0/applications" and request.method == "GET":
            return httpx.Response(200, json={"value": [{"id": app_obj, "appId": GUID_APP, "displayName": "app",
                                                        "passwordCredentials": list(creds), "keyCredentials": []}]})
        if path == "/v1.0/servicePrincipals" and request.method == "GET":
            return httpx.Response(200, json={"value": [{"id": sp_obj, "appId": GUID_APP, "displayName": "app",
                                                        "passwordCredentials": [], "keyCredentials": []}]})
        if path == f"/v1.0/applications/{app_obj}/removePassword":
            removed.append(path)
            creds.clear()
            return httpx.Response(204)
        if path in (f"/v1.0/applications/{app_obj}", f"/v1.0/servicePrincipals/{sp_obj}"):
            obj = app_obj if "applications" in path else sp_obj
            return httpx.Response(200, json={"id": obj, "appId": GUID_APP,
                                             "passwordCredentials": list(creds) if obj == app_obj else [],
                                             "keyCredentials": []})
        return httpx.Response(404, json={"error": {"code": "Request_ResourceNotFound", "message": "no"}})

    real = entra.client_for
    transport = httpx.MockTransport(handler)
    monkeypatch.setattr(entra, "client_for", lambda s, secret, **kw: real(
        s, secret, transport=transport, token_transport=transport, max_retries=0, **kw))
    settings = ConnectorSettings(name="entra", kind="entra", url="https://login.microsoftonline.com/contoso.onmicrosoft.com",
                                 client_id=GUID_APP)
    how = entra.revoker({"keys": [f"entra-key:{GUID_KEY}"], "client": GUID_APP})
    assert how is not None
    verb = verbs.VERBS[("entra", "remove-password")]
    snaps = Snapshots()
    live = run(verbs.probe(verb, settings, "graph-secret", how.target, raw=None))
    result = run(verbs.act(verb, settings, "graph-secret", how.target, raw=None, snapshot=snaps))
    gone = run(verbs.probe(verb, settings, "graph-secret", how.target, raw=None))
    assert live.status == STILL_LIVE
    assert result["status_code"] == 204 and result["owner"] == "application" and result["object_id"] == app_obj
    assert removed == [f"/v1.0/applications/{app_obj}/removePassword"]
    assert [(w, t) for w, t, _ in snaps.taken] == [("entra.password_credential", GUID_KEY)]
    assert gone.status == REVOKED_VERIFIED
