"""API gateways and resource servers (kind `gateway`): the probe that asks the gateway itself whether it still
lets a token through (ARCHITECTURE §4).

An authorization server can say a token is revoked while a gateway in front of the API still accepts it (a
cached introspection answer, a locally verified JWT). `probe` sends one safe, read-only GET of a path the
token could read, through the gateway, with `Authorization: <scheme> <token>`, and reads the answer:

* `revoked-verified`: 401 with no `WWW-Authenticate` error, or with `error="invalid_token"`; or 403 with
  `error="invalid_token"`. The gateway **refused** the token. A 401 does not say why: a revoked, an expired
  and a never-issued token are all refused alike, so the evidence says "refused", never "revoked".
* `still-live`: 2xx or 3xx. The gateway let the token through (a 3xx is the gateway answering the request,
  not refusing it; a redirect to a login page would also land here, so pick a path that answers 2xx).
* `revoked-unverified`: anything else: a 401 whose `WWW-Authenticate` error is about the request rather than
  the token (`invalid_request`, `invalid_dpop_proof`, `use_dpop_nonce`), a 403 without `invalid_token` (the
  token may be live but lack the permission for that path), 404, other 4xx, 5xx and 429 after the client's
  retries, timeouts, or an unreachable gateway.

A gateway has no connector secret: build its `ConnectorClient` without `auth_header` (if it has one, the probe's
per-call `auth` replaces it, so only the token under test is sent). The token is given at call time and is
never stored or logged: the client journal holds method, URL and status (no header), the client scrubs the
token from its error texts, the probe reads no response body, and every evidence text is checked not to
contain it. There is no `whoami` for this kind: with no secret there is
nothing to test before a token is at hand; `stanch connector test` cannot check a gateway, `probe` can.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from connectors.http import ConnectorClient, ConnectorError
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict

KIND = "gateway"

# RFC 9110 §11.1 auth-scheme (a token) and RFC 6750 §2.1 b64token / token68: what a header can carry.
_SCHEME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_TOKEN68 = re.compile(r"^[\x21-\x7e]+$")
# `error="invalid_token"` (or unquoted) inside a WWW-Authenticate challenge
_ERROR = re.compile(r'(?:^|[\s,])error\s*=\s*(?:"([^"]*)"|([^\s,]+))', re.IGNORECASE)
# Errors that speak about the token itself (RFC 6750 §3.1); any other error speaks about the request.
_TOKEN_ERRORS = frozenset({"invalid_token"})
# Statuses read as an answer rather than raised: every 4xx but 429 (which the client retries).
_ACCEPTED = tuple(s for s in range(400, 500) if s != 429)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _challenge_error(response: httpx.Response) -> str | None:
    """The `error` parameter of the WWW-Authenticate challenge(s), if a short printable code; else None."""
    for value in response.headers.get_list("www-authenticate"):
        m = _ERROR.search(value)
        if m:
            code = (m.group(1) if m.group(1) is not None else m.group(2)).strip()
            if code and code.isascii() and code.isprintable() and len(code) < 64:
                return code
            return "unreadable"
    return None


async def probe(client: ConnectorClient, raw_token: str, path: str, scheme: str = "Bearer") -> Verdict:
    """One read-only `GET path` through the gateway with `Authorization: <scheme> <raw_token>`; the verdict
    reads the status (module docstring). Never raises a `ConnectorError`: a failure is `revoked-unverified`
    with evidence saying what failed. Raises `ValueError` for a scheme that is not an HTTP auth-scheme."""
    if not _SCHEME.match(scheme):
        raise ValueError(f"gateway probe: {scheme!r} is not an HTTP authorization scheme (Bearer, DPoP)")
    binding = "dpop" if scheme.lower() == "dpop" else "none"
    if not _TOKEN68.match(raw_token):
        return Verdict(REVOKED_UNVERIFIED, "the token is empty or holds spaces, control or non-ASCII characters: "
                       "it cannot be sent in an Authorization header, so the gateway was not asked",
                       None, binding, _now())
    sent = f"{scheme} {raw_token}"
    where = f"gateway {client.name}: GET {path.split('?', 1)[0]}"  # the query is not shown
    try:
        # `auth` replaces any auth header the client has for this one call and scrubs the token from its errors.
        response = await client.request("GET", path, auth={"Authorization": sent}, accept_status=_ACCEPTED)
    except ConnectorError as exc:
        return _verdict(REVOKED_UNVERIFIED, f"{where} failed: {exc}; not evidence either way", binding, raw_token)
    status = response.status_code
    error = _challenge_error(response)
    said = f' (WWW-Authenticate error="{error}")' if error else ""
    if status < 400:
        kind = "a redirect" if status >= 300 else "success"
        return _verdict(STILL_LIVE, f"{where} answered {status} ({kind}): the gateway still lets the token through",
                        binding, raw_token)
    if (status == 401 and error in (None, *_TOKEN_ERRORS)) or (status == 403 and error in _TOKEN_ERRORS):
        return _verdict(REVOKED_VERIFIED, f"{where} answered {status}{said}: the gateway refused the token "
                        "(refused means revoked, expired or never valid; a gateway does not say which)",
                        binding, raw_token)
    if status == 401:
        why = "the challenge is about the request, not the token (a DPoP proof or nonce the probe cannot send?)"
    elif status == 403:
        why = "a 403 without invalid_token may mean a live token that lacks the permission for this path"
    else:
        why = "choose a path the token may read"
    return _verdict(REVOKED_UNVERIFIED, f"{where} answered {status}{said}: {why}; not evidence either way",
                    binding, raw_token)


def _verdict(status: str, evidence: str, binding: str, raw_token: str) -> Verdict:
    # Belt and braces: nothing above quotes the token, but no evidence text may ever carry it.
    if raw_token in evidence:
        evidence = evidence.replace(raw_token, "[token]")
    return Verdict(status, evidence, None, binding, _now())
