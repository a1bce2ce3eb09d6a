"""Credential shapes, fingerprints and masked previews.

Nothing here stores a secret: a raw value goes in, keys and a preview come out.
Detectors match on a vendor prefix and tolerate length (vendors lengthen tokens);
strict shapes are only used to classify. Shapes come from incidents.md §6.1.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

import orjson
import re2

# One leading scheme word is stripped before hashing, so `Bearer X`, `DPoP X` and `X` share a key.
_SCHEME = re.compile(r"^(?:bearer|dpop|ssws|token)\s+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Shape:
    """A credential shape: `name`, a tolerant `pattern` for finding it, and the preview `prefix`."""

    name: str
    kind: str
    prefix: str
    pattern: re.Pattern[str]


def _shape(name: str, kind: str, prefix: str, body: str) -> Shape:
    return Shape(name, kind, prefix, re.compile(body))


# Tolerant detectors: the prefix must match, the body only needs a plausible minimum length.
SHAPES: tuple[Shape, ...] = (
    _shape("github-fine-grained-pat", "pat", "github_pat_", r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    _shape("github-classic-pat", "pat", "ghp_", r"\bghp_[A-Za-z0-9]{20,}"),
    _shape("github-oauth", "access", "gho_", r"\bgho_[A-Za-z0-9]{20,}"),
    _shape("github-user-to-server", "access", "ghu_", r"\bghu_[A-Za-z0-9]{20,}"),
    _shape("github-server-to-server", "access", "ghs_", r"\bghs_[A-Za-z0-9]{20,}"),
    _shape("github-refresh", "refresh", "ghr_", r"\bghr_[A-Za-z0-9]{20,}"),
    _shape("gitlab-pat", "pat", "glpat-", r"\bglpat-[A-Za-z0-9_-]{16,}"),
    _shape("slack-token", "api-key", "xox", r"\bxox[abpsre]-[0-9A-Za-z-]{10,}"),
    _shape("slack-app-token", "api-key", "xapp-", r"\bxapp-[0-9A-Za-z-]{10,}"),
    _shape("slack-webhook", "webhook", "https://hooks.slack.com/", r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}"),
    _shape("aws-access-key-id", "aws-key", "AKIA", r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b"),
    _shape("google-access-token", "access", "ya29.", r"\bya29\.[0-9A-Za-z_-]{20,}"),
    _shape("google-refresh-token", "refresh", "1//", r"(?<![\w/])1//[0-9A-Za-z_-]{30,}"),
    _shape("google-api-key", "api-key", "AIza", r"\bAIza[0-9A-Za-z_-]{30,}"),
    _shape("google-client-secret", "client-secret", "GOCSPX-", r"\bGOCSPX-[0-9A-Za-z_-]{20,}"),
    _shape("vault-service-token", "vault-token", "hvs.", r"\bhvs\.[A-Za-z0-9_-]{20,}"),
    _shape("vault-batch-token", "vault-token", "hvb.", r"\bhvb\.[A-Za-z0-9_-]{20,}"),
    _shape("vault-recovery-token", "vault-token", "hvr.", r"\bhvr\.[A-Za-z0-9_-]{20,}"),
    # Vault < 1.10 and OpenBao (which went back to them) mint `s.`/`b.`/`r.` tokens; 24+ mixed-case alnum.
    _shape("vault-legacy-token", "vault-token", "s.", r"(?<![\w.])[sbr]\.(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]{24,}\b"),
    _shape("stripe-secret-key", "api-key", "sk_", r"\b[sr]k_(?:live|test)_[0-9A-Za-z]{20,}"),
    _shape("stripe-webhook-secret", "client-secret", "whsec_", r"\bwhsec_[0-9A-Za-z]{20,}"),
    _shape("salesforce-access-token", "access", "00D", r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{20,}"),
    _shape("salesforce-sfdx-auth-url", "refresh", "force://", r"force://[A-Za-z0-9._-]+:[A-Za-z0-9._-]*:[A-Za-z0-9._-]+={0,2}@[A-Za-z0-9._-]+"),
    _shape("jwt", "jwt", "eyJ", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # The whole key, not only its first line: up to the END line (PEM headers and body, real or `\n`-escaped
    # newlines); without an END line, the base64 body that follows the BEGIN line.
    _shape("private-key", "private-key", "-----BEGIN",
           r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY-----"
           r"(?:(?:[A-Za-z0-9+/=:,.\s-]|\\[nr])*?-----END (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY-----"
           r"|(?:[A-Za-z0-9+/=\r\n]|\\[nr])*)"),
)

# One alternation so a string is scanned once, not once per shape.
_ANY = re.compile("|".join(f"(?P<s{i}>{s.pattern.pattern})" for i, s in enumerate(SHAPES)))

# Field names whose values are secrets. `*token` and `*secret` are suffix rules.
_SECRET_FIELD_EXACT = frozenset(
    {"password", "passwd", "api_key", "apikey", "x-api-key", "code", "assertion", "client_assertion",
     "authorization", "proxy-authorization", "cookie", "set-cookie", "private_key", "session_id", "sessionid",
     "access_key_secret", "secretaccesskey", "secret_access_key", "sessiontoken", "x-vault-token"})
# `*token`, `*secret`, `*password`; and, underscores aside, the names keys go by in config files and the
# environment: `aws_secret_access_key`, `AWS_SECRET_KEY`, `stripe_api_key`, `gcpPrivateKey`.
_SECRET_SUFFIXES = ("token", "secret", "password")
_SECRET_KEY_SUFFIXES = ("secretaccesskey", "secretkey", "privatekey", "apikey")
# Identifiers that look secret-named but are not the secret itself.
SECRET_FIELD_ALLOW = frozenset(
    {"token_id", "tokenid", "hashed_token", "token_fp", "token_tail", "token_type", "token_ttl",
     "token_policies", "token_issue_time", "token_active", "token_type_hint", "token_endpoint",
     "id_token_hint", "secret_id_accessor", "client_secret_expires_at", "code_challenge",
     "code_challenge_method", "status_code", "response_code", "error_code", "country_code", "postal_code",
     "postalcode", "countrycode", "code_method", "requestapitokenid", "next_page_token", "nextpagetoken",
     "page_token", "pagetoken", "continuation_token", "continuationtoken"})


def is_secret_field(name: str) -> bool:
    """True when a field of this name holds a secret value (`access_token`, `client_secret`, `password`...)."""
    n = name.strip().lower()
    if n in SECRET_FIELD_ALLOW:
        return False
    if n in _SECRET_FIELD_EXACT:
        return True
    n = n.replace("-", "_")
    return n.endswith(_SECRET_SUFFIXES) or n.replace("_", "").endswith(_SECRET_KEY_SUFFIXES)


def normalise(raw: str) -> str:
    """The value a fingerprint hashes: whitespace trimmed, then one `Bearer `/`DPoP `/`SSWS `/`token ` prefix."""
    return _SCHEME.sub("", raw.strip(), count=1).strip()


def sha256_hex(raw: str) -> str:
    """Hex SHA-256 of the normalised value."""
    return hashlib.sha256(normalise(raw).encode("utf-8")).hexdigest()


def classify(raw: str) -> Shape | None:
    """The shape a whole value has, if it starts with a known prefix."""
    value = normalise(raw)
    m = _ANY.match(value)
    if not m or not m.lastgroup:
        return None
    return SHAPES[int(m.lastgroup[1:])]


def preview(raw: str) -> str:
    """Masked preview: a vendor prefix plus at most the last 4 characters (`ghp_…3kQ9`).

    Values under 20 characters get no preview at all: their tail is too large a share of the secret.
    """
    value = normalise(raw)
    if len(value) < 20:
        return ""
    shape = classify(value)
    prefix = shape.prefix if shape and shape.prefix.isascii() and len(shape.prefix) <= 12 else ""
    if shape and shape.name == "aws-access-key-id":
        # An access key id is an identifier, not the secret; its first 4 name the key type.
        prefix = value[:4]
    return f"{prefix}…{value[-4:]}"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What stanch keeps of a raw credential: its keys, a preview, and facts read from it."""

    keys: tuple[str, ...]
    preview: str
    kind: str
    shape: str
    claims: dict[str, object]


def jwt_claims(value: str) -> dict[str, object]:
    """Unverified JWT payload claims (for `iss`, `jti`, `exp`, `cnf`); empty when not a JWT."""
    parts = value.split(".")
    if len(parts) != 3 or not value.startswith("eyJ"):
        return {}
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def binding_from_claims(claims: dict[str, object]) -> str:
    """Sender binding a token carries: `dpop` (cnf.jkt), `mtls` (cnf.x5t#S256) or `none`."""
    cnf = claims.get("cnf")
    if isinstance(cnf, dict):
        if "jkt" in cnf:
            return "dpop"
        if "x5t#S256" in cnf:
            return "mtls"
    return "none"


def fingerprint(raw: str) -> Fingerprint:
    """Every key that names this secret, and its masked preview. The raw value is not kept."""
    value = normalise(raw)
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
    keys = [f"sha256:{digest}", f"sha256/16:{digest[:16]}"]
    shape = classify(value)
    claims = jwt_claims(value) if shape and shape.name == "jwt" else {}
    if claims.get("jti") and claims.get("iss"):
        keys.append(f"jti:{claims['iss']}:{claims['jti']}")
    if shape and shape.name == "aws-access-key-id":
        keys.append(f"aws-key:{value}")
    return Fingerprint(
        keys=tuple(keys),
        preview=preview(value),
        kind=shape.kind if shape else "unknown",
        shape=shape.name if shape else "",
        claims={k: v for k, v in claims.items() if k in {"iss", "sub", "aud", "jti", "exp", "iat", "client_id", "scope", "cnf"}},
    )


def find_secrets(text: str) -> list[tuple[int, int, Shape]]:
    """Spans of credential-shaped substrings in `text` (start, end, shape)."""
    out = []
    for m in _ANY.finditer(text):
        if m.lastgroup:
            out.append((m.start(), m.end(), SHAPES[int(m.lastgroup[1:])]))
    return out


# Literal prefixes only (RE2, linear time): a superset of the detectors' matches, several times cheaper
# than running the full alternation with Python's `re` on every string.
PREFIX_ALTERNATION = (
    # Each branch is a detector's prefix plus enough of its shape that ordinary text does not hit it
    # (a Salesforce org id `00D…` without `!`, `task_` or `disk_` containing `sk_`): a hit sends the whole
    # record down the slow redaction walk.
    r"gh[pousr]_[A-Za-z0-9]{20}|github_pat_|glpat-|xox[abpsre]-|xapp-|hooks\.slack\.com/"
    r"|(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}|ya29\.|1//[0-9A-Za-z_-]{30}|AIza[0-9A-Za-z_-]{30}"
    r"|GOCSPX-|[sbr]\.[A-Za-z0-9]{24}|hv[sbr]\.|[sr]k_(?:live|test)_|whsec_|00D[A-Za-z0-9]{12,15}!|force://"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ|-----BEGIN"
)
_PREFILTER = re2.compile(PREFIX_ALTERNATION)
_SHORTEST = 14  # no detector matches fewer characters (`force://a::b@c`)


def may_contain_secret(text: str) -> bool:
    """Cheap test before a full scan."""
    return len(text) >= _SHORTEST and _PREFILTER.search(text) is not None and _ANY.search(text) is not None


def redaction_marker(raw: str) -> str:
    """What replaces a secret in a stored record: `[redacted sha256:ab12cd34…]`."""
    return f"[redacted sha256:{sha256_hex(raw)[:8]}…]"


def github_hashed_token_key(hashed_token: str) -> str | None:
    """GitHub audit `hashed_token` is base64 of the token's SHA-256: turn it into our `sha256:` key."""
    try:
        raw = base64.b64decode(hashed_token, validate=True)
    except ValueError:
        return None
    return f"sha256:{raw.hex()}" if len(raw) == 32 else None
