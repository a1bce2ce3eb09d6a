"""Shared Signals: signing the case's Security Event Tokens and pushing them to a receiver (RFC 8417, RFC 8935).

The signing key. One ES256 (P-256) key per stanch installation, made on first use. Its private half lives only in the
OS keyring (service `stanch`, user `ssf:signing-key`, through the same secure-keyring check as connector secrets:
a plaintext or null keyring is refused); the case and every export hold only the public key. Its `kid` is the
RFC 7638 thumbprint of the public JWK. `public_jwks()` is the document to publish (a receiver verifies every SET with
it). `export_key(out, passphrase)` writes the key as an encrypted PKCS #8 PEM (mode 0600, never over an existing
file) for moving a case to another machine; `import_key(path, passphrase)` puts it in that machine's keyring and
refuses to replace a different key unless told to.

The issuer. `iss` is what the responder gives (`--issuer https://ir.example.com`); without one it is the RFC 9278
thumbprint URI of the signing key (`urn:ietf:params:oauth:jwk-thumbprint:sha-256:<kid>`), which names the key the
receiver must trust.

Export (`stanch export CASE --format sets -o OUT`): one JSON document, `{"format": "stanch-sets", "version": 1,
"issuer", "audience", "kid", "jwks", "sets": [{"jti", "plan", "item", "event", "set"}]}`, where `set` is the compact
JWS (header `typ` `secevent+jwt`, `alg` `ES256`, `kid`) and `jwks` the public key that verifies every one. One
document rather than JSON lines so the SETs travel with the key that verifies them; `jq -r '.sets[].set'` gives one
SET per line.

Push (`stanch push-sets CASE --to URL`): each SET is POSTed alone as `application/secevent+jwt` (RFC 8935) through the
shared `ConnectorClient` (stanch's user agent and request id, TLS verified, bounded retries with jitter on 429/5xx and
transport errors, `Retry-After` honoured). 202 Accepted is a delivery. A 400 carries an SSF error
(`{"err", "description"}`): it is not retried and is reported in one line; `invalid_request` concerns that SET
alone and the push goes on, any other code (`invalid_key`, `invalid_issuer`, `invalid_audience`,
`authentication_failed`, `access_denied`) would refuse every SET, so the push stops. Any other failure (401/403,
5xx after the retries, timeout, TLS) stops the push too. Each outcome is recorded in the case (an audit entry per
SET, `casefile.sets.record_delivery`). A SET already delivered to that receiver is not sent again (`force` sends it
anyway; its `jti` is the same, so the receiver deduplicates it). The receiver's credential comes from the keyring
(`store_receiver_secret`, user `ssf-receiver:<name>`) or an environment variable, never from the command line; it is
sent as `Authorization: Bearer …` unless it names its own scheme (`Basic …`, `DPoP …`).

Exceptions: `SsfError` and `config.KeyringUnavailable` (both `config.ConfigError`) and `casefile.case.CaseError` (a bad
issuer or audience), each one line that says what to do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from casefile import sets as sets_mod
from casefile.atomic import atomic_write
from casefile.case import Case
from casefile.timeutil import now_iso
from connectors import config
from connectors.http import (
    ConfigurationError,
    ConnectorClient,
    ConnectorError,
    InvalidCredentialError,
    PermissionDeniedError,
)

ALG = "ES256"
TYP = "secevent+jwt"
MEDIA_TYPE = "application/secevent+jwt"
EXPORT_FORMAT = "stanch-sets"
EXPORT_VERSION = 1
KEY_USER = "ssf:signing-key"
RECEIVER_USER_PREFIX = "ssf-receiver:"
THUMBPRINT_URN = "urn:ietf:params:oauth:jwk-thumbprint:sha-256:"
MIN_PASSPHRASE = 12
#: SSF errors that would refuse every SET of the push, not just this one (RFC 8935 §2.3, IANA secevent registry).
STREAM_ERRORS = frozenset({"invalid_key", "invalid_issuer", "invalid_audience", "authentication_failed",
                           "access_denied"})
_SCHEME = re.compile(r"^(bearer|basic|dpop|token|ssws)\s+\S", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class SsfError(config.ConfigError):
    """A Shared Signals problem, as one line for stderr that says how to fix it. Never carries a secret."""


# ------------------------------------------------------------------------------------------------ keyring


def _one_line(text: object, limit: int = 200) -> str:
    return _CONTROL.sub(" ", str(text)).strip()[:limit]


def _keyring_get(user: str) -> str | None:
    backend = config.secure_keyring()
    try:
        return cast("str | None", backend.get_password(config.KEYRING_SERVICE, user))
    except Exception as e:
        raise config.KeyringUnavailable(f"cannot read {user} from the keyring ({type(e).__name__}); unlock it, or "
                                        f"{config.FIX_KEYRING}") from None


def _keyring_set(user: str, value: str) -> None:
    backend = config.secure_keyring()
    try:
        backend.set_password(config.KEYRING_SERVICE, user, value)
    except Exception as e:
        raise config.KeyringUnavailable(f"the keyring refused {user} ({type(e).__name__}); unlock it, or "
                                        f"{config.FIX_KEYRING}") from None


def _keyring_delete(user: str) -> bool:
    backend = config.secure_keyring()
    try:
        if backend.get_password(config.KEYRING_SERVICE, user) is None:
            return False
        backend.delete_password(config.KEYRING_SERVICE, user)
    except Exception as e:
        raise config.KeyringUnavailable(f"cannot delete {user} from the keyring ({type(e).__name__}); unlock it, "
                                        f"or {config.FIX_KEYRING}") from None
    return True


# ------------------------------------------------------------------------------------------------ the key


def _private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def _check_curve(key: object, where: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SsfError(f"{where}: not a P-256 EC private key; stanch signs SETs with ES256: give a key file "
                       "`stanch sets-key export` wrote")
    return key


def signing_key(create: bool = True) -> ec.EllipticCurvePrivateKey:
    """The SET signing key from the keyring; made and stored there on first use when `create`."""
    pem = _keyring_get(KEY_USER)
    if pem is None:
        if not create:
            raise SsfError("no SET signing key in the keyring yet; `stanch export CASE --format sets` makes one, or "
                           "import one with `stanch sets-key import FILE`")
        _keyring_set(KEY_USER, _private_pem(ec.generate_private_key(ec.SECP256R1())))
        pem = _keyring_get(KEY_USER)  # what the keyring holds now is what signs (another writer may have won)
        if pem is None:
            raise config.KeyringUnavailable(f"the keyring dropped the SET signing key; {config.FIX_KEYRING}")
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise SsfError(f"the keyring entry {config.KEYRING_SERVICE}/{KEY_USER} is not a PEM private key; delete it "
                       "and import the key again (`stanch sets-key import FILE`)") from None
    return _check_curve(key, f"keyring entry {KEY_USER}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC public key."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    return _b64url(hashlib.sha256(orjson.dumps(members, option=orjson.OPT_SORT_KEYS)).digest())


def public_jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey | None = None) -> dict[str, Any]:
    """The public JWK of the signing key (`kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`); never a private member."""
    k = key if key is not None else signing_key()
    pub = k.public_key() if isinstance(k, ec.EllipticCurvePrivateKey) else k
    numbers = pub.public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": _b64url(numbers.x.to_bytes(32, "big")),
           "y": _b64url(numbers.y.to_bytes(32, "big"))}
    return {**jwk, "kid": thumbprint(jwk), "use": "sig", "alg": ALG}


def public_jwks(create: bool = True) -> dict[str, Any]:
    """The JWKS to publish: the one public key every SET verifies with."""
    return {"keys": [public_jwk(signing_key(create))]}


def default_issuer(kid: str) -> str:
    """The RFC 9278 JWK thumbprint URI of the signing key: the `iss` when the responder gives none."""
    return THUMBPRINT_URN + kid


def _check_passphrase(passphrase: str | None, what: str) -> bytes:
    if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE:
        raise SsfError(f"{what}: the passphrase must be at least {MIN_PASSPHRASE} characters (the key file is the "
                       "signing key, encrypted with it)")
    return passphrase.encode("utf-8")


def export_key(out: str | os.PathLike[str], passphrase: str) -> dict[str, Any]:
    """Write the signing key, encrypted with `passphrase` (PKCS #8 PEM, mode 0600), to a new file `out`, for moving
    a case to another machine. Refuses to write over an existing file. Returns `{"path", "kid"}`."""
    secret = _check_passphrase(passphrase, "sets-key export")
    key = signing_key(create=False)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(secret))
    target = Path(out)
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise SsfError(f"{target}: already exists; choose another path (a key file is never overwritten)") from None
    except OSError as e:
        raise SsfError(f"{target}: cannot create ({e.strerror or e}); choose another path") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    return {"path": str(target), "kid": public_jwk(key)["kid"]}


def import_key(path: str | os.PathLike[str], passphrase: str | None, *, replace: bool = False) -> dict[str, Any]:
    """Put the key in the file at `path` (an encrypted PKCS #8 PEM from `export_key`, or an unencrypted P-256 PEM
    with `passphrase` None) into the keyring. A different key already there is replaced only with `replace`.
    Returns `{"kid", "replaced", "unchanged"}`."""
    p = Path(path)
    try:
        data = p.read_bytes()[:65536]
    except OSError as e:
        raise SsfError(f"{p}: cannot read ({e.strerror or e}); give the file `stanch sets-key export` wrote") from None
    encrypted = b"ENCRYPTED" in data
    if encrypted and not passphrase:
        raise SsfError(f"{p}: the key file is encrypted; give its passphrase")
    password = passphrase.encode("utf-8") if encrypted and passphrase else None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError):
        hint = "wrong passphrase, or " if encrypted else ""
        raise SsfError(f"{p}: {hint}not a PEM private key; give the file `stanch sets-key export` wrote") from None
    new = _check_curve(key, str(p))
    kid = public_jwk(new)["kid"]
    current_pem = _keyring_get(KEY_USER)
    if current_pem is not None:
        try:
            current_kid: str | None = public_jwk(_check_curve(
                serialization.load_pem_private_key(current_pem.encode("ascii"), password=None), KEY_USER))["kid"]
        except (ValueError, TypeError, SsfError):
            current_kid = None
        if current_kid == kid:
            return {"kid": kid, "replaced": False, "unchanged": True}
        if not replace:
            raise SsfError(f"the keyring already holds a different SET signing key (kid {current_kid}); pass "
                           f"--replace to put {kid} in its place (receivers must then trust the new public key)")
    _keyring_set(KEY_USER, _private_pem(new))
    return {"kid": kid, "replaced": current_pem is not None, "unchanged": False}


def delete_key() -> bool:
    """Remove the signing key from the keyring (tests, or retiring a key); True when one was there."""
    return _keyring_delete(KEY_USER)


# ------------------------------------------------------------------------------------------------ sign, verify


def sign(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey | None = None) -> str:
    """The compact JWS of `claims`: header `typ` `secevent+jwt`, `alg` ES256, `kid` the key's thumbprint."""
    k = key if key is not None else signing_key()
    return jwt.encode(claims, k, algorithm=ALG, headers={"typ": TYP, "kid": public_jwk(k)["kid"]})


def verify_set(token: str, jwks: dict[str, Any], *, issuer: str | None = None,
               audience: str | Sequence[str] | None = None) -> dict[str, Any]:
    """Verify one SET against a published JWKS (and `iss`/`aud` when given); return its claims. Raises
    `jwt.InvalidTokenError` (a subclass) when the signature, type, key or a required claim is wrong."""
    header = jwt.get_unverified_header(token)
    if header.get("typ") != TYP:
        raise jwt.InvalidTokenError(f"typ is {header.get('typ')!r}, not {TYP}")
    if header.get("alg") != ALG:
        raise jwt.InvalidAlgorithmError(f"alg is {header.get('alg')!r}, not {ALG}")
    match = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == header.get("kid")]
    if not match:
        raise jwt.InvalidTokenError(f"no key {header.get('kid')!r} in the JWKS")
    key = jwt.PyJWK(match[0], algorithm=ALG)
    claims = jwt.decode(token, key.key, algorithms=[ALG], issuer=issuer,
                        audience=list(audience) if audience is not None and not isinstance(audience, str) else audience,
                        options={"require": ["iss", "iat", "jti", "aud", "events"],
                                 "verify_aud": audience is not None})
    return cast(dict[str, Any], claims)


@dataclass(slots=True)
class SignedSet:
    event: sets_mod.SetEvent
    token: str


def build_sets(case: Case, issuer: str | None, audience: str | Sequence[str],
               now: Callable[[], float] | None = None) -> tuple[list[SignedSet], dict[str, Any], str, list[str]]:
    """Sign one SET per verified revocation or rotation of the case. Returns (SETs, public JWKS, issuer, audience)."""
    aud = sets_mod.check_audience(audience)
    key = signing_key()
    jwk = public_jwk(key)
    iss = sets_mod.check_issuer(issuer) if issuer else default_issuer(jwk["kid"])
    iat = int((now or time.time)())
    out = [SignedSet(e, sign(e.full_claims(iss, aud, iat), key)) for e in sets_mod.set_events(case)]
    return out, {"keys": [jwk]}, iss, aud


def export_sets(case: Case, out: str | os.PathLike[str], issuer: str | None = None,
                audience: str | Sequence[str] = ()) -> int:
    """Write the case's SETs with the JWKS that verifies them (one JSON document, see the module doc) to `out`
    atomically; returns how many SETs. Succeeds on a case with no plan (an empty `sets`)."""
    signed, jwks, iss, aud = build_sets(case, issuer, audience)
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "generated_at": now_iso(), "issuer": iss,
           "audience": aud[0] if len(aud) == 1 else aud, "kid": jwks["keys"][0]["kid"], "jwks": jwks,
           "sets": [{"jti": s.event.jti, "plan": s.event.plan_id, "item": s.event.seq, "event": s.event.event_type,
                     "set": s.token} for s in signed]}
    with atomic_write(out) as f:
        f.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return len(signed)


# ------------------------------------------------------------------------------------------------ receiver auth


def receiver_user(name: str) -> str:
    return RECEIVER_USER_PREFIX + config.check_name(name)


def store_receiver_secret(name: str, secret: str) -> str:
    """Keep the credential stanch presents to receiver `name` in the keyring; returns the keyring user."""
    if not isinstance(secret, str) or not secret.strip():
        raise SsfError(f"receiver {name}: the credential is empty")
    user = receiver_user(name)
    _keyring_set(user, secret.strip())
    return user


def delete_receiver_secret(name: str) -> bool:
    return _keyring_delete(receiver_user(name))


def _auth_value(name: str | None, env: str | None) -> str | None:
    if env:
        config.check_env_name(env)
        value = os.environ.get(env, "").strip()
        if not value:
            raise SsfError(f"environment variable {env} is not set or empty; export the receiver's credential in it "
                           "for this run")
    elif name:
        value = (_keyring_get(receiver_user(name)) or "").strip()
        if not value:
            raise SsfError(f"no credential for receiver {name} in the keyring (service {config.KEYRING_SERVICE!r}, "
                           f"user {receiver_user(name)!r}); store it first (`stanch sets-auth add {name}`)")
    else:
        return None
    return value if _SCHEME.match(value) else f"Bearer {value}"


# ------------------------------------------------------------------------------------------------ push


def check_receiver(url: str) -> str:
    """The receiver's push endpoint: an http(s) URL naming a host, with no user, password, query or fragment."""
    if not isinstance(url, str) or not url.strip():
        raise SsfError("--to: give the receiver's push endpoint, e.g. https://rp.example.com/ssf/events")
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as e:
        raise SsfError(f"--to {url[:80]!r}: not a URL ({e})") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SsfError("--to: the push endpoint must start with https:// (or http:// for a lab) and name a host")
    if parts.username is not None or parts.password is not None:
        raise SsfError("--to: the URL must not carry a user or password; keep the receiver's credential in the "
                       "keyring (--auth NAME)")
    if parts.query or parts.fragment:
        raise SsfError("--to: the push endpoint must not carry a ?query or #fragment (a credential in a URL leaks "
                       "into logs); use --auth NAME")
    return url


@dataclass(slots=True)
class PushSummary:
    """What one push did. `problems` holds one line per SET refused and for the failure that stopped the push."""

    receiver: str
    issuer: str
    kid: str
    total: int = 0
    delivered: int = 0
    already: int = 0
    rejected: int = 0
    failed: int = 0
    not_sent: int = 0
    attempts: int = 0
    stopped: str | None = None
    problems: list[str] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rejected == 0 and self.failed == 0 and self.not_sent == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _ssf_error(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    err, desc = body.get("err"), body.get("description")
    return (_one_line(err, 60) if isinstance(err, str) and err else None,
            _one_line(desc, 200) if isinstance(desc, str) and desc else None)


def push_sets(case: Case, url: str, *, issuer: str | None = None, audience: str | Sequence[str] | None = None,
              auth_secret_name: str | None = None, auth_env: str | None = None, force: bool = False,
              verify: bool | str = True, timeout: tuple[float, float] = (10.0, 30.0), max_retries: int = 3,
              backoff_base_s: float = 0.5, sleep: Callable[[float], Awaitable[None]] | None = None,
              transport: httpx.AsyncBaseTransport | None = None) -> PushSummary:
    """Deliver the case's SETs to the RFC 8935 push endpoint `url` (see the module doc). `audience` defaults to
    `url`; `issuer` to the key's thumbprint URI. `verify`: True, False, or a CA bundle path. Records each outcome
    in the case; returns the summary (never raises for a receiver's refusal: see `problems`)."""
    receiver = check_receiver(url)
    auth = _auth_value(auth_secret_name, auth_env)
    signed, jwks, iss, aud = build_sets(case, issuer, audience if audience else receiver)
    kid = jwks["keys"][0]["kid"]
    summary = PushSummary(receiver, iss, kid, total=len(signed))
    done = {jti for (_, jti), d in sets_mod.deliveries(case, receiver).items() if d.get("status") == "delivered"}
    todo = []
    for s in signed:
        if s.event.jti in done and not force:
            summary.already += 1
        else:
            todo.append(s)
    if todo:
        client_kw: dict[str, Any] = {"timeout": timeout, "verify": verify, "max_retries": max_retries,
                                     "backoff_base_s": backoff_base_s, "transport": transport}
        if sleep is not None:
            client_kw["sleep"] = sleep
        try:
            asyncio.run(_push(case, receiver, todo, summary, auth, client_kw))
        except ConfigurationError as e:  # an unreadable CA bundle: nothing was sent
            raise SsfError(str(e)) from None
    return summary


async def _push(case: Case, receiver: str, todo: list[SignedSet], summary: PushSummary, auth: str | None,
                client_kw: dict[str, Any]) -> None:
    """Send `todo` one at a time (in plan and item order), recording each outcome as it comes."""
    host = urlsplit(receiver).netloc
    headers = {"Content-Type": MEDIA_TYPE, "Accept": "application/json"}
    async with ConnectorClient(f"receiver {host}", receiver, auth_header=(lambda: {"Authorization": auth})
                               if auth else None, concurrency=1, **client_kw) as client:
        for n, s in enumerate(todo):
            e = s.event
            before = len(client.journal)
            status, http_status, err, desc, line = "failed", None, None, None, None
            stop = False
            try:
                response = await client.request("POST", receiver, content=s.token.encode("ascii"), headers=headers,
                                                idempotent=True, accept_status=(400,))
                http_status = response.status_code
                if http_status == 202:
                    status = "delivered"
                elif http_status == 400:
                    status = "rejected"
                    err, desc = _ssf_error(response)
                    line = (f"SET {e.jti} (plan {e.plan_id} item {e.seq}) refused by {receiver}: 400 "
                            f"{err or 'without an SSF error'}{f' ({desc})' if desc else ''}")
                    if err in STREAM_ERRORS:
                        stop = True
                        line += "; every SET would be refused, so the push stopped: fix the issuer, key or " \
                                "credential the receiver expects"
                else:
                    stop = True
                    line = (f"{receiver} answered {http_status} to SET {e.jti}, not 202 Accepted (RFC 8935); check "
                            "that --to is the receiver's push endpoint")
            except (InvalidCredentialError, PermissionDeniedError) as exc:
                http_status, stop = exc.status, True
                line = (f"{exc.status} from {receiver}: the receiver refused stanch's credential; store the right one "
                        "(--auth NAME) or pass --auth-env VAR")
            except ConnectorError as exc:
                http_status, stop = exc.status, True
                line = str(exc)
            attempts = len(client.journal) - before
            summary.attempts += attempts
            sets_mod.record_delivery(case, receiver, e.jti, status, http_status=http_status, attempts=attempts,
                                     err=err, description=desc, kid=summary.kid, plan_id=e.plan_id, seq=e.seq,
                                     event_type=e.event_type)
            summary.outcomes.append({"jti": e.jti, "plan": e.plan_id, "item": e.seq, "status": status,
                                     "http": http_status, "attempts": attempts})
            if status == "delivered":
                summary.delivered += 1
            elif status == "rejected":
                summary.rejected += 1
            else:
                summary.failed += 1
            if line:
                summary.problems.append(line)
            if stop:
                summary.not_sent = len(todo) - n - 1
                summary.stopped = line
                return


__all__ = ["ALG", "MEDIA_TYPE", "TYP", "PushSummary", "SignedSet", "SsfError", "build_sets",
           "check_receiver", "default_issuer", "delete_key", "delete_receiver_secret", "export_key", "export_sets",
           "import_key", "public_jwk", "public_jwks", "push_sets", "sign", "signing_key", "store_receiver_secret",
           "thumbprint", "verify_set"]
