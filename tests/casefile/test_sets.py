"""SET claims from the case (casefile.sets): one per verified revocation or rotation, the right CAEP/RISC event type
and SSF subject, a deterministic `jti`, no raw secret; deliveries recorded in the audit chain. No key, no HTTP."""

from __future__ import annotations

import base64
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from casefile import plans, sets
from casefile.audit import verify
from casefile.case import Case, CaseError, create_case, open_case
from casefile.data import ingest_data
from casefile.plans import Item
from casefile.secrets import fingerprint
from tests.conftest import fake_token
from tui.demo import build_demo

PAT = fake_token("ghp_", 36, salt="setcanary")


def _fake_jwt(iss: str, jti: str) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(d)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'iss': iss, 'jti': jti, 'sub': 'ci-bot'})}.FAKEsig"


JWT = _fake_jwt("https://idp.fake.example", "FAKE-jti-42")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo incident, plus a leaked PAT (the canary) and a leaked JWT found in a data file."""
    d = tmp_path_factory.mktemp("sets-demo")
    path = build_demo(d / "demo.stanch", events=3000, quiet=True)
    leak = d / "leak.txt"
    leak.write_text(f"deploy:\n  github_token: {PAT}\n  ci_jwt: {JWT}\n", encoding="utf-8")
    with open_case(path) as case:
        ingest_data(case, [str(leak)], "repo")
    return path


@pytest.fixture
def case(demo: Path, tmp_path: Path) -> Any:
    p = tmp_path / "case.stanch"
    shutil.copy(demo, p)
    with open_case(p, analyst="alice") as c:
        yield c


def _cred(case: Case, key: str) -> int:
    row = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (key,)).fetchone()
    assert row is not None, key
    return int(row[0])


def _key_like(case: Case, pattern: str) -> int:
    row = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key LIKE ? ORDER BY key LIMIT 1",
                            (pattern,)).fetchone()
    assert row is not None, pattern
    return int(row[0])


def _keys(case: Case, credential_id: int, prefix: str) -> str:
    return str(case.conn.execute("SELECT key FROM credential_keys WHERE credential_id = ? AND key LIKE ?",
                                 (credential_id, prefix + "%")).fetchone()[0])


def _verified(case: Case, plan_id: int, seq: int, verdict: str = "revoked-verified") -> None:
    plans.record(case, plan_id, seq, "intent", "in-flight")
    plans.record(case, plan_id, seq, "result", "done", {"status_code": 204})
    plans.record(case, plan_id, seq, "probe", "verified", {"verdict": verdict}, verdict=verdict,
                 evidence="the vendor refused the token")


def _plan(case: Case) -> tuple[int, dict[str, int]]:
    """A plan over the demo's credentials, its items moved to the states a real apply/verify leaves."""
    pat = _cred(case, fingerprint(PAT).keys[0])
    jwt_cred = _cred(case, "jti:https://idp.fake.example:FAKE-jti-42")
    vault = _key_like(case, "vault-accessor:%")
    aws = _key_like(case, "aws-key:%")
    okta = _key_like(case, "okta-token:00T%")
    items = [
        Item(1, "revoke", "act", "gh", "github", "revoke-credentials", fingerprint(PAT).keys[0], "ghp_…", pat,
             idempotency_key="k1"),
        Item(2, "rotate", "act", "kc", "keycloak", "regenerate-client-secret", "client-1", None, vault,
             rotation=True, idempotency_key="k2"),
        Item(3, "sessions", "act", "okta", "okta", "clear-user-sessions", "morgan.lee@acme.example", None, okta,
             idempotency_key="k3"),
        Item(4, "jwt", "act", "oidc", "oauth", "revoke", "jwt", None, jwt_cred, idempotency_key="k4"),
        Item(5, "aws", "act", "aws", "aws", "deactivate-access-key", "AKIA-id", "AKIA…", aws,
             idempotency_key="k5"),
        # never SETs: still pending, failed, done but unproven, a probe item, a manual item
        Item(6, "revoke", "act", "okta", "okta", "revoke-api-token", "00T-id", None, okta,
             idempotency_key="k6"),
        Item(7, "revoke", "act", "okta", "okta", "revoke-api-token", "x", None, okta, idempotency_key="k7"),
        Item(8, "revoke", "act", "okta", "okta", "revoke-api-token", "y", None, okta, idempotency_key="k8"),
        Item(9, "prove", "probe", "gh", "github", "revoke-credentials", fingerprint(PAT).keys[0], None, pat,
             idempotency_key="k9"),
        Item(10, "tell", "manual", text="Tell the vendor", idempotency_key="k10"),
    ]
    pid = plans.create(case, "test", "test plan", {}, items, {})
    for seq in (1, 2, 3, 4):
        _verified(case, pid, seq)
    _verified(case, pid, 5, verdict="unrevocable")
    plans.record(case, pid, 7, "result", "failed", {"error": "timeout"})
    plans.record(case, pid, 8, "probe", "pending", {}, verdict="revoked-unverified")
    plans.record(case, pid, 9, "probe", "verified", {}, verdict="revoked-verified")
    plans.record(case, pid, 10, "manual", "done", {"note": "told"}, note="told")
    return pid, {"pat": pat, "jwt": jwt_cred, "vault": vault, "aws": aws, "okta": okta}


def test_a_case_without_plans_has_no_sets(case: Case) -> None:
    assert sets.set_events(case) == []


def test_one_set_per_verified_revocation_or_rotation(case: Case) -> None:
    pid, _ = _plan(case)
    events = sets.set_events(case)
    assert [(e.plan_id, e.seq) for e in events] == [(pid, 1), (pid, 2), (pid, 3), (pid, 4), (pid, 5)]
    by_seq = {e.seq: e for e in events}
    assert by_seq[1].event_type == sets.CREDENTIAL_CHANGE
    assert by_seq[1].claims["events"][sets.CREDENTIAL_CHANGE]["change_type"] == "revoke"
    assert by_seq[2].event_type == sets.CREDENTIAL_CHANGE
    assert by_seq[2].claims["events"][sets.CREDENTIAL_CHANGE]["change_type"] == "update"  # a rotation
    assert by_seq[3].event_type == sets.SESSION_REVOKED
    assert by_seq[5].event_type == sets.CREDENTIAL_COMPROMISE  # unrevocable: the receiver must distrust it
    for e in events:
        assert len(e.claims["events"]) == 1 and set(e.claims) == {"txn", "sub_id", "events"}
        body = e.claims["events"][e.event_type]
        assert isinstance(body.get("event_timestamp"), int)
        if e.event_type != sets.SESSION_REVOKED:
            assert body["credential_type"]
    assert len({e.jti for e in events}) == 5 and all(len(e.jti) == 32 for e in events)
    assert len({e.claims["txn"] for e in events}) == 1
    assert by_seq[1].claims["events"][sets.CREDENTIAL_CHANGE]["credential_type"] == "personal-access-token"
    assert by_seq[5].claims["events"][sets.CREDENTIAL_COMPROMISE] == {
        "credential_type": "aws-access-key", "event_timestamp": by_seq[5].claims["events"][
            sets.CREDENTIAL_COMPROMISE]["event_timestamp"]}


def test_subjects_name_the_credential_and_the_principal(case: Case) -> None:
    _, creds = _plan(case)
    by_seq = {e.seq: e.claims["sub_id"] for e in sets.set_events(case)}
    principal, issuer = case.conn.execute("SELECT principal, issuer FROM credentials WHERE id = ?",
                                          (creds["vault"],)).fetchone()
    # a leaked PAT with no known owner: the sha256 of its raw value, which any holder of the token can compute
    assert by_seq[1] == {"format": "opaque", "id": fingerprint(PAT).keys[0]}
    # a Vault token with a principal: complex, the principal under the credential's issuer; of its keys (the raw
    # value's sha256, its accessor, audit-device HMACs) the sha256 names it
    assert principal and issuer and "@" not in principal
    assert _keys(case, creds["vault"], "vault-accessor:")
    assert by_seq[2] == {"format": "complex", "user": {"format": "iss_sub", "iss": issuer, "sub": principal},
                         "credential": {"format": "opaque", "id": _keys(case, creds["vault"], "sha256:")}}
    # every session of a user: CAEP's complex subject with only the user
    assert by_seq[3] == {"format": "complex", "user": {"format": "email", "email": "morgan.lee@acme.example"}}
    # a JWT known by its jti: SSF's jwt_id
    assert by_seq[4] == {"format": "jwt_id", "iss": "https://idp.fake.example", "jti": "FAKE-jti-42"}
    assert by_seq[5] == {"format": "opaque", "id": _keys(case, creds["aws"], "aws-key:")}


def test_subject_formats() -> None:
    assert sets.principal_subject("a@b.example", None) == {"format": "email", "email": "a@b.example"}
    assert sets.principal_subject("svc-1", "https://idp") == {"format": "iss_sub", "iss": "https://idp",
                                                              "sub": "svc-1"}
    assert sets.principal_subject("svc-1", None) == {"format": "opaque", "id": "svc-1"}
    assert sets.credential_subject(["sha256/16:abcd", "okta-token:00T1", "sha256:ff"]) == {
        "format": "opaque", "id": "sha256:ff"}
    assert sets.credential_subject([], fallback="AKIA1") == {"format": "opaque", "id": "AKIA1"}
    assert sets.credential_subject([]) is None


def test_jti_is_deterministic_per_item_and_case(case: Case, tmp_path: Path) -> None:
    _plan(case)
    first = [(e.jti, e.claims) for e in sets.set_events(case)]
    assert [(e.jti, e.claims) for e in sets.set_events(case)] == first
    # The same act planned and verified again (same idempotency key) is the same event: no second SET.
    again = plans.create(case, "test", "again", {}, [Item(1, "revoke", "act", "gh", "github", "revoke-credentials",
                                                          "t", idempotency_key="k1")], {})
    _verified(case, again, 1)
    assert [(e.jti, e.claims) for e in sets.set_events(case)] == first
    # The same act in another case (a copy on another machine, a merge) is the same event: the same jti. Another act,
    # or an item without an idempotency key, is not.
    with create_case(tmp_path / "other.stanch") as other:
        pid = plans.create(other, "test", "t", {}, [
            Item(1, "revoke", "act", "gh", "github", "revoke-credentials", "t", idempotency_key="k1"),
            Item(2, "revoke", "act", "gh", "github", "revoke-credentials", "u", idempotency_key="k-other"),
            Item(3, "revoke", "act", "gh", "github", "revoke-credentials", "v")], {})
        for seq in (1, 2, 3):
            _verified(other, pid, seq)
        theirs = [e.jti for e in sets.set_events(other)]
    assert theirs[0] == first[0][0] and not {theirs[1], theirs[2]} & {j for j, _ in first}
    assert len(set(theirs)) == 3


def test_full_claims_carry_iss_iat_jti_aud_events(case: Case) -> None:
    _plan(case)
    e = sets.set_events(case)[0]
    claims = e.full_claims("https://ir.example", ["https://rp.example"], 1_700_000_000)
    assert list(claims)[:4] == ["iss", "iat", "jti", "aud"] and claims["aud"] == "https://rp.example"
    assert claims["events"] and claims["jti"] == e.jti
    assert e.full_claims("i", ["a", "b"], 1)["aud"] == ["a", "b"]


def test_no_raw_secret_in_any_claim(case: Case) -> None:
    _plan(case)
    text = orjson.dumps([e.claims for e in sets.set_events(case)]).decode()
    assert PAT not in text and PAT[4:] not in text and JWT not in text
    assert fingerprint(PAT).keys[0] in text  # named by its fingerprint


@pytest.mark.parametrize("bad", ["", "   ", "two words", "x\ny"])
def test_bad_issuer_or_audience_is_one_line(bad: str) -> None:
    for check in (sets.check_issuer, sets.check_audience):
        with pytest.raises(CaseError) as e:
            check(bad)
        assert "\n" not in str(e.value) and str(e.value).startswith(("--issuer", "--audience"))
    assert sets.check_audience(["https://a", " b "]) == ["https://a", "b"]


def test_deliveries_are_audited_and_latest_wins(case: Case) -> None:
    _plan(case)
    jti = sets.set_events(case)[0].jti
    sets.record_delivery(case, "https://rp.example/ssf", jti, "failed", http_status=503, attempts=4)
    sets.record_delivery(case, "https://rp.example/ssf", jti, "delivered", http_status=202, attempts=1, kid="k")
    sets.record_delivery(case, "https://other.example/ssf", jti, "rejected", http_status=400, attempts=1,
                         err="invalid_audience", description="not for us\nreally")
    got = sets.deliveries(case, "https://rp.example/ssf")
    assert list(got) == [("https://rp.example/ssf", jti)]
    assert got[("https://rp.example/ssf", jti)]["status"] == "delivered"
    assert got[("https://rp.example/ssf", jti)]["who"] == "alice"
    other = sets.deliveries(case)[("https://other.example/ssf", jti)]
    assert other["err"] == "invalid_audience" and "\n" not in other["description"]
    with pytest.raises(ValueError):
        sets.record_delivery(case, "https://rp.example/ssf", jti, "maybe")
    head, _, problems = verify(case.conn)
    assert problems == []
    # an edited delivery record breaks the chain
    seq = case.conn.execute("SELECT max(seq) FROM audit WHERE operation = ?", (sets.DELIVERY_OPERATION,)).fetchone()[0]
    path = case.path
    case.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE audit SET details = replace(details, 'rejected', 'delivered') WHERE seq = ?", (seq,))
    conn.commit()
    conn.close()
    with open_case(path) as again:
        _, _, problems = verify(again.conn)
        assert any(p.table == "audit" and p.row == seq for p in problems)
