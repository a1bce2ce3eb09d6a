"""OAuth 2.0 / OIDC authorization servers: the `oidc-provider` (node, panva) event log (`oidc-provider-events`).

The lab's authorization server (test-peers.md §1, `server.mjs`) writes one JSON object per line:
`{"ts": <ISO 8601 UTC>, "event": <name>, …fields}` (`JSON.stringify` drops undefined fields). It logs

* token-model events `<model>.<what>` for the models `access_token`, `client_credentials`, `refresh_token`,
  `authorization_code` and `grant`, and `what` in `saved` (an opaque token stored), `issued` (a structured JWT
  token minted, not stored), `consumed` and `destroyed`, with `kind` (the model class: `AccessToken`,
  `ClientCredentials`, …), `client_id`, `account`, `grant_id`, `token_fp`, `jkt` (DPoP key thumbprint) and
  `x5t` (mTLS certificate thumbprint);
* `grant.success` (`client_id`, `gty` = the grant type, `ip`) and `grant.revoked` (`client_id` of the caller,
  `grant_id`);
* `grant.error`, `introspection.error`, `revocation.error`, `server_error` (`client_id`, `error`, `detail`,
  `route`);
* `request`: one line per request to an OAuth endpoint (`route`, `method`, `status`, `client_id`, `ip`,
  `dpop`).

There is no `revocation.success` event: a revocation shows as `<model>.destroyed` (plus `grant.revoked`),
and a 200 from the revocation endpoint (`request` route `revocation`) proves nothing.

Credential keys. `token_fp` is the first 16 hex characters of SHA-256 of the model's `jti`. For an opaque token
(`saved`, `consumed`, `destroyed`) the jti *is* the token, so the key is `sha256/16:<token_fp>`, the same key
gateway logs and `casefile.secrets.fingerprint` give for that token. For a structured token (`issued`) the jti
is a claim inside the JWT, and `token_fp` hashes that claim, not the token: the key is
`jti:oidc-provider:sha256/16:<token_fp>`, one credential per JWT that never joins a gateway fingerprint (the
line holds neither the issuer nor the jti in clear). `grant` events carry no fingerprint: the grant id is kept
in `extra["grant_id"]`, never as a key. Client and account are facts of the credential, never keys; `jkt` / `x5t`
set its `binding` (`dpop` / `mtls`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import json_line_share, parse_json_lines, text_reader

VENDOR = "oidc"
ISSUER = "oidc-provider"  # the lines do not name their issuer

_MODELS = {
    "access_token": "access",
    "client_credentials": "access",
    "refresh_token": "refresh",
    "authorization_code": "unknown",
    "grant": "unknown",
}
_MODEL_EVENT = re.compile(r"^(access_token|client_credentials|refresh_token|authorization_code|grant)\."
                          r"(saved|issued|consumed|destroyed)$")
_ERRORS = frozenset({"grant.error", "introspection.error", "revocation.error", "server_error"})
_FP = re.compile(r"^[0-9a-f]{16}$")


def action_of(event: str, rec: dict[str, Any]) -> str:
    """oidc-provider event name (and the record's fields) → canonical action."""
    m = _MODEL_EVENT.match(event)
    if m:
        model, what = m.groups()
        if what == "destroyed":
            return "token.revoke"
        if model == "grant":
            return "other"  # a grant stored / consumed: consent bookkeeping, no token
        if what == "consumed":
            # A used authorization code, or a rotated refresh token that was exchanged.
            return "token.refresh" if model == "refresh_token" else "token.use"
        return "token.issue"
    if event == "grant.success":
        return "token.refresh" if rec.get("gty") == "refresh_token" else "token.issue"
    if event == "grant.revoked":
        return "token.revoke"
    if event in _ERRORS:
        return "other" if event == "server_error" else "auth.fail"
    if event == "request":
        status = rec.get("status")
        if isinstance(status, int) and status in (401, 403):
            return "auth.fail"
        return "api.call"
    if event.endswith(".error"):
        return "auth.fail"
    if event == "authorization.success":
        return "login"
    if event == "end_session.success":
        return "logout"
    return "other"


_s = text_reader()  # a usable string: None for absent and blank values


def _credential(event: str, rec: dict[str, Any], time: str, action: str) -> CredentialRef | None:
    m = _MODEL_EVENT.match(event)
    fp = _s(rec.get("token_fp"))
    if m is None or fp is None or not _FP.match(fp.lower()):
        return None
    model, what = m.groups()
    key = f"jti:{ISSUER}:sha256/16:{fp.lower()}" if what == "issued" else f"sha256/16:{fp.lower()}"
    binding = "dpop" if _s(rec.get("jkt")) else "mtls" if _s(rec.get("x5t")) else None
    return CredentialRef(
        keys=(key,),
        kind=_MODELS[model],
        client=_s(rec.get("client_id")),
        principal=_s(rec.get("account")),
        binding=binding,
        issued_at=time if action == "token.issue" else None,
    )


def _event(rec: dict[str, Any], line: int) -> Parsed | Problem:
    name = rec.get("event")
    if not isinstance(name, str) or not name:
        return Problem(line, "malformed", "no event name: not an oidc-provider event line")
    ts = _s(rec.get("ts"))
    if ts is None:
        return Problem(line, "malformed", f"{name}: no ts")
    try:
        time = to_utc_iso(ts)
    except TimeError:
        return Problem(line, "malformed", f"{name}: unreadable ts {str(ts)[:40]!r}")

    action = action_of(name, rec)
    ref = _credential(name, rec, time, action)
    credential = subject = None
    if action in ("token.issue", "token.refresh", "token.revoke"):
        subject = ref
    else:
        credential = ref  # a consumed authorization code: presented at the token endpoint

    status = rec.get("status") if isinstance(rec.get("status"), int) else None
    if name in _ERRORS or action == "auth.fail":
        outcome = "failure"
    elif status is not None:
        outcome = "success" if status < 400 else "failure"
    else:
        outcome = "success"
    extra: dict[str, Any] = {}
    for key in ("kind", "grant_id", "gty", "error", "detail", "jkt", "x5t", "dpop"):
        value = rec.get(key)
        if value is not None and value != "":
            extra[key] = value
    route = _s(rec.get("route"))
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=rec,
        vendor_type=name,
        outcome=outcome,
        credential=credential,
        subject=subject,
        principal=_s(rec.get("account")),
        client=_s(rec.get("client_id")),
        src_ip=_s(rec.get("ip")),
        method=_s(rec.get("method")),
        resource=route,
        status=status,
        extra=extra,
    )
    return Parsed(line, event, orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode())


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """oidc-provider JSON event lines → `Event`s (the server never logs a raw token; nothing to redact here)."""
    yield from parse_json_lines(src.lines(), _event, non_object="not a JSON object: not an oidc-provider event line")


def _looks_oidc(obj: dict[str, Any]) -> bool:
    name = obj.get("event")
    if not isinstance(name, str) or "ts" not in obj:
        return False
    if _MODEL_EVENT.match(name) or name in _ERRORS or name in ("grant.success", "grant.revoked"):
        return True
    return name == "request" and "route" in obj


def sniff(first_lines: list[str]) -> float:
    """JSON lines `{"ts":…, "event": <an oidc-provider event name>, …}` as server.mjs writes them."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    share = json_line_share(lines, lambda obj: isinstance(obj, dict) and _looks_oidc(obj))
    return 0.8 + 0.15 * share if share >= 0.5 else 0.0


register(
    Format(
        name="oidc-provider-events",
        vendor=VENDOR,
        description="oidc-provider (node) authorization-server events as JSON lines (the lab's server.mjs)",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=json_lines,
    )
)
