"""Generic OAuth 2.0 / OIDC authorization servers (kind `oauth`): discovery, RFC 7662 introspection, RFC 7009
revocation, and the probe that decides whether a token is really dead (ARCHITECTURE §4).

Every call goes through the shared `connectors.http.ConnectorClient`; the connector's client authenticates
with HTTP Basic (`client_id` + client secret, both form-urlencoded first as RFC 6749 §2.3.1 asks), built by
`client_auth` / `open_client`. Endpoints are read from the discovery document
(`/.well-known/openid-configuration`, else RFC 8414 `/.well-known/oauth-authorization-server`), never
hard-coded, and the client refuses an advertised endpoint off the base URL's origin.

Raw tokens are given at call time and only ever travel in a form body (`token=`): the client journal records
method, URL and status, never a body, and the client scrubs every secret-named body value from error texts.
Nothing here stores or logs a token; results carry only non-secret facts.

Verdicts (`probe`), on positive evidence only:

* `revoked-verified`: introspection answered 200 with `{"active": false}`.
* `still-live`: introspection answered `{"active": true}` (after a revoke: the revoke did nothing; an RFC 7009
  server answers 200 even when its policy refused to revoke).
* `unrevocable`: a self-contained JWT (three base64url parts with `typ` `at+jwt` or a payload with `exp`) that
  the server cannot introspect (400 `unsupported_token_type`, or no introspection endpoint): nothing can
  revoke it, it dies at `exp`, which is `expires_at` (decoded without verification).
* `revoked-unverified`: anything else: an error, a timeout, an unreachable server, an unsupported answer for
  a token that is not a JWT, a body without a boolean `active`.
"""

from __future__ import annotations

import asyncio
import base64
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from casefile.secrets import binding_from_claims, fingerprint, jwt_claims
from connectors.act import SnapshotFn, take
from connectors.config import ConnectorSettings
from connectors.http import (
    ConnectorClient,
    ConnectorError,
    RequestRejectedError,
    UnexpectedResponseError,
)
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, UNREVOCABLE, Verdict

KIND = "oauth"
DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


_discovered: weakref.WeakKeyDictionary[ConnectorClient, dict[str, Any]] = weakref.WeakKeyDictionary()


class UnsupportedTokenTypeError(RequestRejectedError):
    """The server answered `unsupported_token_type`: it cannot introspect or revoke this kind of token."""


# ------------------------------------------------------------------------------------------ client auth


def client_auth(client_id: str, secret: str) -> Callable[[], dict[str, str]]:
    """The `auth_header` callable for `ConnectorClient`: HTTP Basic with the form-urlencoded id and secret."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    value = "Basic " + base64.b64encode(pair).decode("ascii")
    return lambda: {"Authorization": value}


def open_client(settings: ConnectorSettings, secret: str) -> ConnectorClient:
    """A `ConnectorClient` for a `ConnectorSettings` of kind `oauth` (the secret is the client secret)."""
    if not settings.client_id:
        raise ValueError(f"connector {settings.name}: kind oauth needs a client_id; run "
                         f"`stanch connector add {settings.name} --client-id ID`")
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    return ConnectorClient(
        settings.name, settings.url, auth_header=client_auth(settings.client_id, secret),
        timeout=(settings.connect_timeout, settings.read_timeout), verify=settings.ca_bundle or True, cert=cert,
        concurrency=settings.concurrency, rate_limit_per_s=settings.rate_limit,
    )


# ------------------------------------------------------------------------------------------- discovery


async def discover(client: ConnectorClient) -> dict[str, Any]:
    """The server's metadata (OIDC discovery, else RFC 8414), cached per client. Raises `ConnectorError`."""
    cached = _discovered.get(client)
    if cached is not None:
        return cached
    last: ConnectorError | None = None
    for path in DISCOVERY_PATHS:
        response = await client.request("GET", path, accept_status=(404,))
        if response.status_code == 404:
            continue
        body = orjson.loads(response.content) if _is_json(response.content) else None
        if not isinstance(body, dict) or not isinstance(body.get("issuer"), str):
            last = UnexpectedResponseError(
                f"{response.status_code} from {client.name}: GET {path} is not an OAuth metadata document (no "
                "issuer); check the base URL (it must be the issuer URL)",
                connector=client.name, status=response.status_code, method="GET", path=path)
            continue
        _discovered[client] = body
        return body
    raise last or UnexpectedResponseError(
        f"404 from {client.name}: neither {' nor '.join(DISCOVERY_PATHS)} exists; check the base URL (it must be "
        "the issuer URL)", connector=client.name, status=404, method="GET", path=DISCOVERY_PATHS[0])


def _is_json(content: bytes) -> bool:
    try:
        orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    return True


async def _endpoint(client: ConnectorClient, field: str) -> str | None:
    value = (await discover(client)).get(field)
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------------- introspect / revoke


async def _post_token(client: ConnectorClient, url: str, raw_token: str, hint: str | None,
                      what: str) -> tuple[int, Any]:
    form = {"token": raw_token}
    if hint:
        form["token_type_hint"] = hint
    # Both calls are idempotent in effect (RFC 7009 §2.2: revoking twice is revoking once; 503 asks for a retry).
    response = await client.request("POST", url, data=form, idempotent=True, accept_status=(400,))
    body: Any = orjson.loads(response.content) if response.content and _is_json(response.content) else None
    if response.status_code == 400:
        code = body.get("error") if isinstance(body, dict) else None
        path = response.request.url.path
        if code == "unsupported_token_type":
            raise UnsupportedTokenTypeError(
                f"400 from {client.name}: the server cannot {what} this kind of token (unsupported_token_type); "
                "a structured JWT dies only at its exp, by revoking its grant or by rotating the signing key",
                connector=client.name, status=400, method="POST", path=path)
        shown = code if isinstance(code, str) and code.isascii() and len(code) < 64 else "no error code"
        raise RequestRejectedError(
            f"400 from {client.name}: the server rejected {what} at POST {path} ({shown}); check the client's "
            "permissions on the server", connector=client.name, status=400, method="POST", path=path)
    return response.status_code, body


async def introspect(client: ConnectorClient, raw_token: str, hint: str | None = None) -> dict[str, Any]:
    """RFC 7662 introspection of `raw_token` (authenticated as the connector's client).

    Returns the server's answer (`active`, `client_id`, `scope`, `exp`, `cnf`…) plus `binding`: `dpop`
    (`cnf.jkt`), `mtls` (`cnf.x5t#S256`) or `none`. Any value holding the token is dropped. Raises
    `UnsupportedTokenTypeError`, another `ConnectorError`, or `UnexpectedResponseError` for a non-object body.
    """
    url = await _endpoint(client, "introspection_endpoint")
    if url is None:
        raise UnsupportedTokenTypeError(
            f"{client.name} advertises no introspection_endpoint: stanch cannot ask it whether a token is live",
            connector=client.name)
    status, body = await _post_token(client, url, raw_token, hint, "introspect")
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            f"{status} from {client.name}: introspection did not answer a JSON object; check the server",
            connector=client.name, status=status, method="POST", path=str(url))
    # A server may echo the token, in its own field or inside a sentence ("token … is not active"): drop any
    # value that holds it, so no snapshot or evidence keeps it.
    answer = {k: v for k, v in body.items()
              if raw_token not in (v if isinstance(v, str) else orjson.dumps(v).decode())}
    answer["binding"] = binding_from_claims(answer)
    return answer


async def revoke(client: ConnectorClient, raw_token: str, hint: str | None = None, *,
                 snapshot: SnapshotFn | None = None) -> int:
    """RFC 7009 revocation of `raw_token`; returns the HTTP status (200). A 200 proves nothing: RFC 7009
    servers answer 200 for unknown tokens and when a policy refused to revoke. Follow every revoke with
    `probe`. Raises `UnsupportedTokenTypeError` or another `ConnectorError`.

    With `snapshot`, the token's introspection (client, scope, subject, expiry, binding) is taken first and
    handed over as `oauth.token` under the token's `sha256:` key; a server that cannot introspect it gives
    `{"introspection": "<why not>"}` instead, and the revoke still goes ahead."""
    url = await _endpoint(client, "revocation_endpoint")
    if url is None:
        raise UnsupportedTokenTypeError(
            f"{client.name} advertises no revocation_endpoint: revoke the grant or the client in its console",
            connector=client.name)
    if snapshot is not None:
        before: dict[str, Any]
        try:
            before = await introspect(client, raw_token, hint)
        except ConnectorError as exc:
            before = {"introspection": f"unavailable: {exc}"}
        take(snapshot, "oauth.token", fingerprint(raw_token).keys[0], before)
    status, _ = await _post_token(client, url, raw_token, hint, "revoke")
    return status


# ---------------------------------------------------------------------------------------------- probe


def _iso(epoch: Any) -> str | None:
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def self_contained(raw_token: str) -> dict[str, object]:
    """The unverified claims of a self-contained JWT access token (`typ` at+jwt, or a payload with `exp`),
    else {}."""
    claims = jwt_claims(raw_token)
    if not claims:
        return {}
    header: Any = None
    try:
        part = raw_token.split(".")[0]
        header = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        header = None
    typ = header.get("typ") if isinstance(header, dict) else None
    at_jwt = isinstance(typ, str) and typ.lower() in ("at+jwt", "application/at+jwt")
    return claims if at_jwt or "exp" in claims else {}


async def probe(client: ConnectorClient, raw_token: str, hint: str | None = None) -> Verdict:
    """Decide whether `raw_token` is dead, on positive evidence only (module docstring). Never raises a
    `ConnectorError`: a failure is a `revoked-unverified` verdict whose evidence says what failed."""
    claims = self_contained(raw_token)
    jwt_exp = _iso(claims.get("exp")) if claims else None
    jwt_binding = binding_from_claims(claims) if claims else "none"
    try:
        answer = await introspect(client, raw_token, hint)
    except UnsupportedTokenTypeError as exc:
        if claims and jwt_exp is not None:
            past = " (already past)" if jwt_exp <= _now() else ""
            return Verdict(UNREVOCABLE, f"self-contained JWT the server cannot introspect or revoke ({exc}); it "
                           f"stays valid until exp {jwt_exp}{past}", jwt_exp, jwt_binding, _now())
        return Verdict(REVOKED_UNVERIFIED, f"introspection unsupported: {exc}", jwt_exp, jwt_binding, _now())
    except ConnectorError as exc:
        return Verdict(REVOKED_UNVERIFIED, f"introspection failed: {exc}", jwt_exp, jwt_binding, _now())
    active = answer.get("active")
    binding = answer["binding"] if answer["binding"] != "none" else jwt_binding
    if active is False:
        return Verdict(REVOKED_VERIFIED, f"introspection at {client.name} answered 200 {{\"active\": false}}",
                       None, binding, _now())
    if active is True:
        exp = _iso(answer.get("exp")) or jwt_exp
        who = answer.get("client_id")
        owner = f" (client_id {who})" if isinstance(who, str) and who.isprintable() and len(who) < 200 else ""
        return Verdict(STILL_LIVE, f"introspection at {client.name} answered active: true{owner}; a revoke that "
                       "answered 200 did not take effect", exp, binding, _now())
    return Verdict(REVOKED_UNVERIFIED, f"introspection at {client.name} answered no boolean `active`; "
                   "not evidence either way", jwt_exp, binding, _now())


# --------------------------------------------------------------------------------------------- whoami


async def _whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    async with open_client(settings, secret) as client:
        meta = await discover(client)
        out: dict[str, Any] = {
            "issuer": meta.get("issuer"),
            "client_id": settings.client_id,
            "token_endpoint": meta.get("token_endpoint"),
            "introspection_endpoint": meta.get("introspection_endpoint"),
            "revocation_endpoint": meta.get("revocation_endpoint"),
            "dpop": bool(meta.get("dpop_signing_alg_values_supported")),
            "mtls_bound_tokens": meta.get("tls_client_certificate_bound_access_tokens") is True,
        }
        if out["introspection_endpoint"]:
            # Introspecting a token that cannot exist proves the client secret works (a bad one answers 401
            # invalid_client) and that the client may introspect, without touching any real token.
            answer = await introspect(client, "stanch-connector-test-not-a-token")
            out["can_introspect"] = answer.get("active") is False
        return out


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test`: discovery (issuer, endpoints) and a check that the client secret is accepted.
    Returns only non-secret facts; raises `ConnectorError` (no secret in its text) or `ValueError`."""
    return asyncio.run(_whoami(settings, secret))


# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402


def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """Any OAuth access or refresh token known by its `sha256:` key: RFC 7009 at its issuer, which needs the
    raw token. Asked after every vendor revoker (a fallback)."""
    if credential.get("kind") not in ("access", "refresh", "jwt"):
        return None
    keys = credential.get("keys") or []
    key = next((k for k in keys if k.startswith("sha256:")), None) or next(
        (k for k in keys if k.startswith("sha256/16:")), None)  # the full key first: the plan shows it
    if key is None:
        return None
    note = "a self-contained JWT lives until its exp unless its grant is revoked" if credential.get("kind") == "jwt" else ""
    return RevokeHow("oauth", "revoke", key, needs_raw_secret=True, note=note)


register_revoker(revoker, fallback=True)


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb     | target                        | raw | act                              | probe                      |
# |----------|-------------------------------|-----|----------------------------------|----------------------------|
# | `revoke` | `sha256:…` / `sha256/16:…` key | yes | RFC 7009 `revoke` (snapshot: the | introspection (`probe`)    |
# |          |                               |     | token's introspection)           |                            |
#
# The raw token must fingerprint to the target key: a raw value of another credential is refused unsent.

from connectors import verbs as _verbs  # noqa: E402


async def _verb_revoke(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                       snapshot: SnapshotFn) -> dict[str, Any]:
    token = _verbs.check_raw(KIND, "revoke", target, raw)
    async with open_client(settings, secret) as client:
        status = await revoke(client, token, snapshot=snapshot)
    return {"status_code": status}


async def _probe_revoke(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    token = _verbs.check_raw(KIND, "revoke", target, raw)
    async with open_client(settings, secret) as client:
        return await probe(client, token)


_verbs.register(KIND, "revoke", act=_verb_revoke, probe=_verbs.guarded(_probe_revoke), needs_raw=True,
                description="RFC 7009 revocation at the issuer (needs the raw token); proven by introspection")
