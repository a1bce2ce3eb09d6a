"""Fingerprints, previews, detectors and field-name rules (ARCHITECTURE §3, incidents.md §6.1)."""

from __future__ import annotations

import base64
import hashlib

import orjson

from casefile import secrets
from tests.conftest import fake_token


def test_one_scheme_prefix_and_whitespace_are_normalised_away():
    tok = fake_token()
    expected = hashlib.sha256(tok.encode()).hexdigest()
    for presented in (tok, f"  {tok}\n", f"Bearer {tok}", f"bearer {tok}", f"DPoP {tok}", f"SSWS {tok}",
                      f"token {tok}"):
        assert secrets.sha256_hex(presented) == expected, presented
    # only one prefix is stripped: "Bearer Bearer X" is not X
    assert secrets.sha256_hex(f"Bearer Bearer {tok}") != expected


def test_fingerprint_keys_and_preview_never_hold_the_token():
    tok = "ghp_" + "FAKE" * 9
    fp = secrets.fingerprint(f"Bearer {tok}")
    digest = hashlib.sha256(tok.encode()).hexdigest()
    assert fp.keys == (f"sha256:{digest}", f"sha256/16:{digest[:16]}")
    assert fp.preview == "ghp_…FAKE"
    assert fp.kind == "pat"
    assert tok not in repr(fp)


def test_preview_is_empty_under_20_characters():
    assert secrets.preview("short-secret-123") == ""
    assert secrets.preview("x" * 19) == ""
    assert secrets.preview("y" * 20) == "…yyyy"


def test_detectors_match_on_prefix_and_tolerate_length():
    longer = "ghp_" + "A1b2" * 15  # longer than today's 36-character body
    spans = secrets.find_secrets(f"found {longer} in a ticket")
    assert [s.name for _, _, s in spans] == ["github-classic-pat"]
    hvs = "hvs." + "FAKEfake" * 4
    akia = "AKIA" + "FAKEFAKEFAKEFAKE"
    found = {s.name for _, _, s in secrets.find_secrets(f"{hvs} and {akia}")}
    assert found == {"vault-service-token", "aws-access-key-id"}
    assert secrets.classify("xoxb-" + "1234567890-" * 2 + "FAKE") is not None
    assert secrets.classify("just words") is None


def test_secret_field_names_and_the_identifier_allow_list():
    for name in ("access_token", "refresh_token", "id_token", "client_secret", "password", "api_key", "code",
                 "assertion", "Authorization", "x-api-key", "sessionToken",
                 # key names from config files and the environment (tests/hardening/test_canary.py found the first)
                 "aws_secret_access_key", "AWS_SECRET_KEY", "aws-secret-access-key", "stripeApiKey", "gcp_private_key"):
        assert secrets.is_secret_field(name), name
    for name in ("token_id", "hashed_token", "token_fp", "token_type", "status_code", "requestApiTokenId",
                 "user", "uri", "private_key_id", "api_key_name", "public_key"):
        assert not secrets.is_secret_field(name), name


def _jwt(claims):
    def b64(d):
        return base64.urlsafe_b64encode(orjson.dumps(d)).rstrip(b"=").decode()

    return f"{b64({'alg': 'ES256', 'typ': 'at+jwt'})}.{b64(claims)}.FAKESIGNATUREFAKESIGNATURE"


def test_jwt_gives_a_jti_key_and_its_sender_binding():
    tok = _jwt({"iss": "https://idp.example", "jti": "abc123", "exp": 1755430000, "cnf": {"jkt": "FAKE"}})
    fp = secrets.fingerprint(tok)
    assert "jti:https://idp.example:abc123" in fp.keys
    assert secrets.binding_from_claims(fp.claims) == "dpop"
    assert secrets.binding_from_claims({"cnf": {"x5t#S256": "x"}}) == "mtls"
    assert secrets.binding_from_claims({}) == "none"


def test_github_hashed_token_becomes_our_sha256_key():
    tok = "ghp_" + "FAKE" * 9
    hashed = base64.b64encode(hashlib.sha256(tok.encode()).digest()).decode()
    assert secrets.github_hashed_token_key(hashed) == secrets.fingerprint(tok).keys[0]
    assert secrets.github_hashed_token_key("not base64!") is None


def test_openbao_legacy_tokens_are_detected_but_hostnames_are_not():
    tok = "s." + "YAfHoFAKEfake" * 2  # OpenBao 2.7 still mints `s.` service tokens
    assert secrets.classify(tok).name == "vault-legacy-token"
    assert secrets.preview(tok) == "s.…fake"
    assert secrets.find_secrets("see s.example.com or s.lowercaseonlylettersxxxxxxxx") == []


def test_the_cheap_prefilter_never_hides_a_detector_match():
    # The shortest value each detector accepts must still pass may_contain_secret's prefilter.
    examples = {
        "github-fine-grained-pat": "github_pat_" + "a" * 20, "github-classic-pat": "ghp_" + "a" * 20,
        "github-oauth": "gho_" + "a" * 20, "github-user-to-server": "ghu_" + "a" * 20,
        "github-server-to-server": "ghs_" + "a" * 20, "github-refresh": "ghr_" + "a" * 20,
        "gitlab-pat": "glpat-" + "a" * 16, "slack-token": "xoxb-" + "1" * 10, "slack-app-token": "xapp-" + "1" * 10,
        "slack-webhook": "https://hooks.slack.com/services/" + "T" * 20, "aws-access-key-id": "ASIA" + "A" * 16,
        "google-access-token": "ya29." + "a" * 20, "google-refresh-token": "1//" + "a" * 30,
        "google-api-key": "AIza" + "a" * 30, "google-client-secret": "GOCSPX-" + "a" * 20,
        "vault-service-token": "hvs." + "a" * 20, "vault-batch-token": "hvb." + "a" * 20,
        "vault-recovery-token": "hvr." + "a" * 20, "vault-legacy-token": "b." + "aB" * 12,
        "stripe-secret-key": "rk_test_" + "a" * 20, "stripe-webhook-secret": "whsec_" + "a" * 20,
        "salesforce-access-token": "00D" + "a" * 12 + "!" + "b" * 20,
        "salesforce-sfdx-auth-url": "force://a::b@c", "jwt": "eyJ" + "a" * 8 + ".eyJ" + "a" * 8 + ".",
        "private-key": "-----BEGIN EC PRIVATE KEY-----",
    }
    assert set(examples) == {s.name for s in secrets.SHAPES}
    for name, value in examples.items():
        assert secrets.classify(value) is not None and secrets.classify(value).name == name, name
        assert secrets.may_contain_secret(value), name
