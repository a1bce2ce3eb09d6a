"""Shared Signals (connectors.ssf): SETs signed with the keyring's ES256 key verify with the published JWKS and carry
iss, iat, jti, aud and events; the key moves between machines only as an encrypted file and never enters the case or an
export; RFC 8935 push against a real local receiver (an HTTP server in this process that verifies every SET with the
published JWKS): 202 delivers, 503 is retried within bounds, a 400 SSF error is not retried and is one line, a second
push sends nothing new, and each outcome is in the audit chain."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import keyring
import keyring.backends.null
import pytest

import connectors  # noqa: F401  (verbs, so the playbook engine can plan)
from casefile import plans
from casefile import sets as sets_mod
from casefile.audit import verify
from casefile.case import Case, CaseError, create_case, open_case
from casefile.data import ingest_data
from casefile.secrets import fingerprint
from connectors import config, ssf
from playbooks import engine
from playbooks.model import load_all
from tests.conftest import fake_token
from tests.connectors.test_config import InMemoryTestKeyring
from tui.demo import build_demo

ISSUER = "https://ir.fake.example"
AUDIENCE = "https://rp.fake.example"
PAT = fake_token("ghp_", 36, salt="ssfcanary")
RECEIVER_TOKEN = fake_token("rcv-", 32, salt="receiver")
PASSPHRASE = "correct horse battery staple"


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def store() -> Iterator[InMemoryTestKeyring]:
    """TEST DOUBLE keyring (in memory) standing in for the OS Secret Service; restores the previous backend."""
    before = keyring.get_keyring()
    kr = InMemoryTestKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(before)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo incident, a leaked PAT (the canary) found in a data file, and two playbook plans whose first act
    items were applied and proven (as `stanch play verify` leaves them)."""
    d = tmp_path_factory.mktemp("ssf-demo")
    path = build_demo(d / "demo.stanch", events=3000, quiet=True, truth_dir=d / "truth")
    truth = json.loads((d / "truth" / "truth.json").read_text())
    leak = d / "leak.txt"
    leak.write_text(f"deploy:\n  github_token: {PAT}\n", encoding="utf-8")
    creds = truth["compromised_credentials"]
    with open_case(path) as case:
        ingest_data(case, [str(leak)], "repo")
        runs = [("idp-support-artifact", {"seed": f"okta-token:{creds[0]['okta_token_id']}",
                                          "attacker_ips": "44.215.108.109"}),
                ("leaked-github-pat", {"seed": fingerprint(PAT).keys[0]})]
        for pid_name, inputs in runs:
            plan_id = engine.make_plan(case, load_all()[pid_name], inputs, {})
            acts = [i for i in plans.load(case, plan_id).items if i.kind == "act"][:3]
            for n, item in enumerate(acts):
                plans.record(case, plan_id, item.seq, "intent", "in-flight")
                plans.record(case, plan_id, item.seq, "result", "done", {"status_code": 204})
                verdict = "unrevocable" if (pid_name, n) == ("idp-support-artifact", 2) else "revoked-verified"
                plans.record(case, plan_id, item.seq, "probe", "verified", {"verdict": verdict}, verdict=verdict,
                             evidence="the vendor refused the token")
    return path


@pytest.fixture
def case(demo: Path, tmp_path: Path) -> Iterator[Case]:
    p = tmp_path / "case.stanch"
    shutil.copy(demo, p)
    with open_case(p, analyst="alice") as c:
        yield c


def _files_of(case: Case) -> bytes:
    case.conn.execute("PRAGMA wal_checkpoint(FULL)")
    return b"".join(Path(f"{case.path}{s}").read_bytes() for s in ("", "-wal") if Path(f"{case.path}{s}").exists())


def _private_forms(store: InMemoryTestKeyring) -> list[bytes]:
    """Every shape the private key could leak in: the PEM body, and the scalar d (base64url, hex)."""
    pem = store.store[(config.KEYRING_SERVICE, ssf.KEY_USER)]
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    key = ssf.signing_key(create=False)
    d = key.private_numbers().private_value.to_bytes(32, "big")
    return [body.encode(), body[10:50].encode(), base64.urlsafe_b64encode(d).rstrip(b"="), d.hex().encode(), d]


# ------------------------------------------------------------------------------------------------ the receiver


class Receiver:
    """A real RFC 8935 push endpoint on 127.0.0.1: verifies each SET with the JWKS it was given (PyJWT), dedupes
    by jti, answers 202, or 400 with an SSF error, or 401 without the expected credential; `fail_first` 503s
    (Retry-After: 0) come before any answer."""

    def __init__(self, jwks: dict[str, Any], token: str | None = None, tls: Any = None) -> None:
        self.jwks, self.token = jwks, token
        self.fail_first = 0
        self.reject: set[str] = set()
        self.posts: list[dict[str, Any]] = []
        self.accepted: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    status, doc = receiver.handle(dict(self.headers), body.decode("ascii", "replace"))
                data = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "0")
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # an ssl.SSLContext: the receiver speaks HTTPS
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/ssf/events"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def handle(self, headers: dict[str, str], token: str) -> tuple[int, dict[str, Any] | None]:
        post: dict[str, Any] = {"headers": headers, "jti": None}
        self.posts.append(post)
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, None
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, None
        if headers.get("Content-Type") != "application/secevent+jwt":
            return 400, {"err": "invalid_request", "description": "not application/secevent+jwt"}
        try:
            header = jwt.get_unverified_header(token)
            keys = [k for k in self.jwks["keys"] if k["kid"] == header.get("kid")]
            if header.get("typ") != "secevent+jwt" or not keys:
                return 400, {"err": "invalid_key", "description": "unknown signing key"}
            claims = jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["ES256"], audience=AUDIENCE,
                                issuer=ISSUER, options={"require": ["iss", "iat", "jti", "aud", "events"]})
        except jwt.InvalidSignatureError:
            return 400, {"err": "invalid_key", "description": "the signature does not verify"}
        except jwt.InvalidIssuerError:
            return 400, {"err": "invalid_issuer", "description": "unknown issuer"}
        except jwt.InvalidAudienceError:
            return 400, {"err": "invalid_audience", "description": "not for this receiver"}
        except jwt.InvalidTokenError as e:
            return 400, {"err": "invalid_request", "description": str(e)}
        post["jti"] = claims["jti"]
        if len(claims["events"]) != 1 or claims["jti"] in self.reject:
            return 400, {"err": "invalid_request", "description": "the event does not match\nits definition"}
        self.accepted.setdefault(claims["jti"], claims)  # dedupe by jti (RFC 8935: jti names one SET)
        return 202, None

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _expected_jtis(case: Case) -> list[str]:
    return [e.jti for e in sets_mod.set_events(case)]


# ------------------------------------------------------------------------------------------------ the key


def test_signing_key_is_made_once_and_lives_in_the_keyring(store: InMemoryTestKeyring) -> None:
    with pytest.raises(ssf.SsfError, match="no SET signing key"):
        ssf.signing_key(create=False)
    key = ssf.signing_key()
    assert list(store.store) == [(config.KEYRING_SERVICE, ssf.KEY_USER)]
    assert ssf.public_jwk(ssf.signing_key())["kid"] == ssf.public_jwk(key)["kid"]  # not made twice
    jwks = ssf.public_jwks()
    (jwk,) = jwks["keys"]
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"} and jwk["alg"] == "ES256"
    # RFC 7638: SHA-256 over the required members, sorted, no whitespace, base64url without padding
    canon = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    import hashlib

    assert jwk["kid"] == base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()
    assert ssf.default_issuer(jwk["kid"]) == "urn:ietf:params:oauth:jwk-thumbprint:sha-256:" + jwk["kid"]


def test_an_insecure_keyring_is_refused() -> None:
    before = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.null.Keyring())
    try:
        with pytest.raises(config.KeyringUnavailable) as e:
            ssf.signing_key()
        assert "\n" not in str(e.value)
    finally:
        keyring.set_keyring(before)


def test_key_moves_to_another_machine_only_encrypted(store: InMemoryTestKeyring, case: Case, tmp_path: Path) -> None:
    ssf.export_sets(case, tmp_path / "a.json", ISSUER, AUDIENCE)
    published = ssf.public_jwks()
    forms = _private_forms(store)
    out = tmp_path / "stanch-sets.key"
    got = ssf.export_key(out, PASSPHRASE)
    assert got["kid"] == published["keys"][0]["kid"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    data = out.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert not any(f in data for f in forms)
    with pytest.raises(ssf.SsfError, match="already exists"):
        ssf.export_key(out, PASSPHRASE)
    with pytest.raises(ssf.SsfError, match="at least 12"):
        ssf.export_key(tmp_path / "short.key", "short")
    # machine B: its own keyring, nothing in it
    keyring.set_keyring(InMemoryTestKeyring())
    with pytest.raises(ssf.SsfError) as e:
        ssf.import_key(out, "not the passphrase")
    assert "wrong passphrase" in str(e.value) and str(out) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ssf.SsfError, match="encrypted; give its passphrase"):
        ssf.import_key(out, None)
    assert ssf.import_key(out, PASSPHRASE) == {"kid": got["kid"], "replaced": False, "unchanged": False}
    assert ssf.import_key(out, PASSPHRASE)["unchanged"] is True
    # SETs signed on machine B verify with the key published from machine A
    ssf.export_sets(case, tmp_path / "b.json", ISSUER, AUDIENCE)
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["sets"] and all(ssf.verify_set(s["set"], published, issuer=ISSUER, audience=AUDIENCE)
                               for s in doc["sets"])
    # a different key is not silently replaced
    keyring.set_keyring(InMemoryTestKeyring())
    other = ssf.public_jwk(ssf.signing_key())["kid"]
    with pytest.raises(ssf.SsfError, match="different SET signing key") as e:
        ssf.import_key(out, PASSPHRASE)
    assert other in str(e.value)
    assert ssf.import_key(out, PASSPHRASE, replace=True)["replaced"] is True
    assert ssf.public_jwks() == published


def test_import_refuses_what_is_not_a_p256_key(store: InMemoryTestKeyring, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = tmp_path / "p384.pem"
    p384.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ssf.SsfError, match="not a P-256"):
        ssf.import_key(p384, None)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(ssf.SsfError, match="not a PEM private key"):
        ssf.import_key(junk, None)
    with pytest.raises(ssf.SsfError, match="cannot read"):
        ssf.import_key(tmp_path / "missing.pem", PASSPHRASE)
    assert store.store == {}


# ------------------------------------------------------------------------------------------------ export


def test_every_exported_set_verifies_and_carries_the_required_claims(store: InMemoryTestKeyring, case: Case,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "sets.json"
    n = ssf.export_sets(case, out, ISSUER, AUDIENCE)
    doc = json.loads(out.read_text())
    verified = case.conn.execute("SELECT count(*) FROM plan_items WHERE kind = 'act' AND state = 'verified'").fetchone()[0]
    assert n == len(doc["sets"]) == len(_expected_jtis(case)) == verified >= 4
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert doc["format"] == "stanch-sets" and doc["issuer"] == ISSUER and doc["audience"] == AUDIENCE
    published = ssf.public_jwks()
    assert doc["jwks"] == published and doc["kid"] == published["keys"][0]["kid"]
    types = []
    for entry in doc["sets"]:
        header = jwt.get_unverified_header(entry["set"])
        assert header == {"alg": "ES256", "typ": "secevent+jwt", "kid": doc["kid"]}
        claims = ssf.verify_set(entry["set"], published, issuer=ISSUER, audience=AUDIENCE)
        assert {"iss", "iat", "jti", "aud", "events", "sub_id", "txn"} <= set(claims)
        assert claims["jti"] == entry["jti"] and list(claims["events"]) == [entry["event"]]
        assert claims["sub_id"]["format"] in ("opaque", "jwt_id", "complex", "email", "iss_sub")
        types.append(entry["event"])
    assert set(types) == {sets_mod.SESSION_REVOKED, sets_mod.CREDENTIAL_CHANGE, sets_mod.CREDENTIAL_COMPROMISE}
    # the same jtis on a second export: receivers dedupe a re-export
    ssf.export_sets(case, tmp_path / "again.json", ISSUER, AUDIENCE)
    assert [s["jti"] for s in json.loads((tmp_path / "again.json").read_text())["sets"]] == \
        [s["jti"] for s in doc["sets"]]
    # a tampered SET does not verify
    h, p, s = doc["sets"][0]["set"].split(".")
    forged = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    forged["aud"] = "https://evil.example"
    p2 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        ssf.verify_set(f"{h}.{p2}.{s}", published)


def test_default_issuer_and_an_empty_case(store: InMemoryTestKeyring, tmp_path: Path) -> None:
    with create_case(tmp_path / "empty.stanch") as empty:
        assert ssf.export_sets(empty, tmp_path / "e.json", None, [AUDIENCE, "https://second.example"]) == 0
        # nothing to push: nothing is sent (this port has no listener) and nothing is recorded
        summary = ssf.push_sets(empty, "http://127.0.0.1:9/ssf/events")
        assert summary.ok and summary.total == 0 and summary.attempts == 0 and sets_mod.deliveries(empty) == {}
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["sets"] == [] and doc["issuer"] == ssf.default_issuer(doc["kid"])
    assert doc["audience"] == [AUDIENCE, "https://second.example"]
    with create_case(tmp_path / "e2.stanch") as empty, pytest.raises(CaseError, match="--audience"):
        ssf.export_sets(empty, tmp_path / "e2.json", ISSUER, "")


def test_no_private_key_and_no_raw_secret_in_the_case_or_exports(store: InMemoryTestKeyring, case: Case,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "sets.json"
    ssf.export_sets(case, out, ISSUER, AUDIENCE)
    with Receiver(ssf.public_jwks(), token=RECEIVER_TOKEN) as rcv:
        ssf.store_receiver_secret("rp", RECEIVER_TOKEN)
        assert ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_secret_name="rp").ok
    export = out.read_bytes()
    payloads = b"".join(base64.urlsafe_b64decode(t.split(".")[1] + "==")
                        for t in (s["set"] for s in json.loads(export)["sets"]))
    case_bytes = _files_of(case)
    for blob in (export, payloads, case_bytes):
        for form in _private_forms(store):
            assert form not in blob
        for raw in (PAT, RECEIVER_TOKEN):
            for shape in (raw, urllib.parse.quote(raw, safe=""), base64.b64encode(raw.encode()).decode(),
                          base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")):
                assert shape.encode() not in blob
    assert fingerprint(PAT).keys[0].encode() in payloads  # the leaked PAT is named by its fingerprint


# ------------------------------------------------------------------------------------------------ push


def test_push_delivers_each_set_once_and_records_it(store: InMemoryTestKeyring, case: Case) -> None:
    ssf.store_receiver_secret("rp", RECEIVER_TOKEN)
    want = _expected_jtis(case)
    with Receiver(ssf.public_jwks(), token=RECEIVER_TOKEN) as rcv:
        summary = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_secret_name="rp")
        assert summary.ok and summary.delivered == summary.total == len(want) and summary.attempts == len(want)
        assert sorted(rcv.accepted) == sorted(want)
        post = rcv.posts[0]["headers"]
        assert post["Content-Type"] == "application/secevent+jwt" and post["Accept"] == "application/json"
        assert post["User-Agent"].startswith("stanch/") and post["X-Stanch-Request-Id"]
        recorded = sets_mod.deliveries(case, rcv.url)
        assert {jti for _, jti in recorded} == set(want)
        assert all(d["status"] == "delivered" and d["http"] == 202 and d["kid"] == summary.kid
                   for d in recorded.values())
        # again: nothing new is sent
        again = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_secret_name="rp")
        assert again.ok and again.already == len(want) and again.delivered == 0 and len(rcv.posts) == len(want)
        # forced: sent again, with the same jtis, and the receiver dedupes them
        forced = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_secret_name="rp", force=True)
        assert forced.delivered == len(want) and len(rcv.posts) == 2 * len(want)
        assert [p["jti"] for p in rcv.posts[len(want):]] == [p["jti"] for p in rcv.posts[:len(want)]]
        assert sorted(rcv.accepted) == sorted(want)
    _, _, problems = verify(case.conn)
    assert problems == []
    ops = [r[0] for r in case.conn.execute("SELECT operation FROM audit WHERE operation = 'sets.deliver'")]
    assert len(ops) == 2 * len(want)
    assert RECEIVER_TOKEN.encode() not in _files_of(case)


def test_a_503_is_retried_then_delivered(store: InMemoryTestKeyring, case: Case) -> None:
    with Receiver(ssf.public_jwks()) as rcv:
        rcv.fail_first = 2
        summary = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE)
    assert summary.ok and summary.outcomes[0]["attempts"] == 3 and summary.outcomes[0]["status"] == "delivered"
    assert summary.attempts == summary.total + 2
    first = summary.outcomes[0]["jti"]
    assert sets_mod.deliveries(case, rcv.url)[(rcv.url, first)]["attempts"] == 3


def test_retries_are_bounded_and_the_push_stops(store: InMemoryTestKeyring, case: Case) -> None:
    with Receiver(ssf.public_jwks()) as rcv:
        rcv.fail_first = 100
        summary = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, max_retries=2)
        assert len(rcv.posts) == 3
    assert not summary.ok and summary.failed == 1 and summary.not_sent == summary.total - 1
    assert summary.stopped and "\n" not in summary.stopped and "503" in summary.stopped
    (d,) = sets_mod.deliveries(case, rcv.url).values()
    assert d["status"] == "failed" and d["http"] == 503 and d["attempts"] == 3
    # the next push sends the failed one again, and the rest
    with Receiver(ssf.public_jwks()) as rcv2:
        assert ssf.push_sets(case, rcv2.url, issuer=ISSUER, audience=AUDIENCE).delivered == summary.total


def test_a_400_ssf_error_is_not_retried_and_is_one_line(store: InMemoryTestKeyring, case: Case) -> None:
    want = _expected_jtis(case)
    with Receiver(ssf.public_jwks()) as rcv:
        rcv.reject = {want[1]}
        summary = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE)
        assert len(rcv.posts) == len(want)  # no retry of the refused one; the others still go
    assert summary.rejected == 1 and summary.delivered == len(want) - 1 and summary.not_sent == 0
    (line,) = summary.problems
    assert "\n" not in line and want[1] in line and "invalid_request" in line and "does not match its definition" in line
    d = sets_mod.deliveries(case, rcv.url)[(rcv.url, want[1])]
    assert d["status"] == "rejected" and d["err"] == "invalid_request" and d["attempts"] == 1


def test_a_stream_wide_refusal_stops_the_push(store: InMemoryTestKeyring, case: Case) -> None:
    published = ssf.public_jwks()
    keyring.set_keyring(InMemoryTestKeyring())  # another machine's key: the receiver does not trust it
    with Receiver(published) as rcv:
        summary = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE)
        assert len(rcv.posts) == 1
    assert summary.rejected == 1 and summary.not_sent == summary.total - 1
    assert "invalid_key" in summary.stopped and "stopped" in summary.stopped
    keyring.set_keyring(store)  # the trusted key again, but an issuer the receiver does not expect
    with Receiver(published) as rcv:
        wrong_iss = ssf.push_sets(case, rcv.url, issuer="https://someone-else.example", audience=AUDIENCE)
        assert len(rcv.posts) == 1
    assert wrong_iss.rejected == 1 and "invalid_issuer" in (wrong_iss.stopped or "")


def test_a_refused_credential_stops_the_push_without_leaking_it(store: InMemoryTestKeyring, case: Case,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = fake_token("rcv-", 32, salt="wrong")
    monkeypatch.setenv("SSF_TOKEN", wrong)
    with Receiver(ssf.public_jwks(), token=RECEIVER_TOKEN) as rcv:
        summary = ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_env="SSF_TOKEN")
        assert rcv.posts[0]["headers"]["Authorization"] == f"Bearer {wrong}"
    assert summary.failed == 1 and summary.not_sent == summary.total - 1 and len(rcv.posts) == 1
    assert "401" in summary.stopped and "credential" in summary.stopped and wrong not in summary.stopped
    assert wrong.encode() not in _files_of(case)
    with pytest.raises(ssf.SsfError, match="no credential for receiver nobody"):
        ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_secret_name="nobody")
    monkeypatch.delenv("SSF_TOKEN")
    with pytest.raises(ssf.SsfError, match="SSF_TOKEN is not set"):
        ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_env="SSF_TOKEN")


@pytest.mark.parametrize("url", ["ftp://rp.example/x", "https://user:pw@rp.example/x", "https://rp.example/x?token=1",
                                 "https:///nohost", ""])
def test_bad_receiver_urls_are_one_line(url: str) -> None:
    with pytest.raises(ssf.SsfError) as e:
        ssf.check_receiver(url)
    assert str(e.value).startswith("--to") and "\n" not in str(e.value) and "pw" not in str(e.value)


def test_a_credential_with_its_own_scheme_is_sent_as_is(store: InMemoryTestKeyring, case: Case) -> None:
    basic = "Basic " + base64.b64encode(b"transmitter:" + fake_token("", 16).encode()).decode()
    ssf.store_receiver_secret("basic-rp", basic)
    with Receiver(ssf.public_jwks()) as rcv:
        ssf.push_sets(case, rcv.url, issuer=ISSUER, audience=AUDIENCE, auth_secret_name="basic-rp")
        assert rcv.posts[0]["headers"]["Authorization"] == basic
    assert ssf.delete_receiver_secret("basic-rp") is True and ssf.delete_receiver_secret("basic-rp") is False


def test_an_unreachable_receiver_is_one_line_and_recorded(store: InMemoryTestKeyring, case: Case) -> None:
    with Receiver(ssf.public_jwks()) as rcv:
        url = rcv.url  # a port that was just closed again
    summary = ssf.push_sets(case, url, issuer=ISSUER, audience=AUDIENCE, max_retries=1)
    assert summary.failed == 1 and summary.not_sent == summary.total - 1 and summary.outcomes[0]["attempts"] == 2
    assert summary.stopped and "cannot reach" in summary.stopped and "\n" not in summary.stopped
    (d,) = sets_mod.deliveries(case, url).values()
    assert d["status"] == "failed" and d["http"] is None


def test_an_unreadable_ca_bundle_sends_nothing(store: InMemoryTestKeyring, case: Case, tmp_path: Path) -> None:
    with pytest.raises(ssf.SsfError, match="CA bundle") as e:
        ssf.push_sets(case, "https://127.0.0.1:9/ssf/events", issuer=ISSUER, audience=AUDIENCE,
                      verify=str(tmp_path / "no-such-ca.pem"))
    assert "\n" not in str(e.value) and sets_mod.deliveries(case) == {}


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (its own CA), made for this test."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stanch test receiver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp_path / "receiver.crt", tmp_path / "receiver.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_push_over_tls_to_a_receiver_with_a_private_ca(store: InMemoryTestKeyring, case: Case, tmp_path: Path) -> None:
    import ssl

    crt, pem = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, pem)
    with Receiver(ssf.public_jwks(), tls=ctx) as rcv:
        url = rcv.url
        untrusted = ssf.push_sets(case, url, issuer=ISSUER, audience=AUDIENCE)
        assert untrusted.failed == 1 and "TLS verification failed" in (untrusted.stopped or "")
        assert rcv.accepted == {}
        summary = ssf.push_sets(case, url, issuer=ISSUER, audience=AUDIENCE, verify=str(crt))
    assert summary.ok and summary.delivered == summary.total and sorted(rcv.accepted) == sorted(_expected_jtis(case))


def test_cli_exports_and_pushes_sets(store: InMemoryTestKeyring, case: Case, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`stanch export --format sets`, `stanch push-sets` (credential from the environment), `stanch sets-key show`."""
    from tui.cli import main

    path = case.path
    case.close()
    out = tmp_path / "sets.json"
    assert main(["export", path, "--format", "sets", "-o", str(out), "--issuer", ISSUER, "--audience", AUDIENCE]) == 0
    doc = json.loads(out.read_text())
    assert "SETs (and the JWKS" in capsys.readouterr().out and doc["sets"]
    for s in doc["sets"]:
        assert ssf.verify_set(s["set"], doc["jwks"], issuer=ISSUER, audience=AUDIENCE)["jti"] == s["jti"]
    assert main(["sets-key", "show"]) == 0
    assert json.loads(capsys.readouterr().out)["keys"][0]["kid"] == doc["kid"]
    monkeypatch.setenv("RP_TOKEN", RECEIVER_TOKEN)
    with Receiver(ssf.public_jwks(), token=RECEIVER_TOKEN) as rcv:
        assert main(["push-sets", path, "--to", rcv.url, "--issuer", ISSUER, "--audience", AUDIENCE,
                     "--auth-env", "RP_TOKEN"]) == 0
        assert f"{len(doc['sets'])} delivered" in capsys.readouterr().out
        assert sorted(rcv.accepted) == sorted(s["jti"] for s in doc["sets"])
        rcv.reject = set(rcv.accepted)  # refuse from now on: a forced push reports one line per SET, exit 3
        assert main(["push-sets", path, "--to", rcv.url, "--issuer", ISSUER, "--audience", AUDIENCE,
                     "--auth-env", "RP_TOKEN", "--force"]) == 3
        err = capsys.readouterr().err
        assert err.startswith("stanch: ") and "invalid_request" in err and RECEIVER_TOKEN not in err
