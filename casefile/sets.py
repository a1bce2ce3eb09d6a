"""Security Event Tokens from the case: the claims of one RFC 8417 SET per proven revocation or rotation, and the
record of each RFC 8935 delivery.

Vendor-free and key-free: this module builds the JSON claims from the case's plans and writes the delivery records;
`connectors.ssf` signs them (the key lives in the OS keyring) and pushes them over HTTP.

Which items make a SET: every act item of every plan in state `verified` (its probe gave positive evidence, ARCHITECTURE
§4), one SET each, one event per SET (OpenID SSF 1.0 / CAEP 1.0, event-type URIs as in incidents.md §5.7):

- a session verb (`…session…`, `logout…`) or a credential of kind `session`: CAEP `session-revoked`;
- a rotation (the verb replaces a secret): CAEP `credential-change` with `change_type` `update`;
- a verdict `unrevocable` (nothing can revoke it; it lives until it expires): RISC `credential-compromise`, so the
  receiver distrusts what stanch could not kill;
- any other revocation (`revoked-verified`): CAEP `credential-change` with `change_type` `revoke`.

Items still pending, failed, or left `revoked-unverified` make no SET: a SET says something happened, and only
positive evidence counts.

Claims (SSF 1.0 puts the subject in the top-level `sub_id`, RFC 9493): `jti`, `txn`, `sub_id`, `events`; the
signer adds `iss`, `aud` and `iat`. The subject names the credential: `jwt_id` (`iss` + `jti`) for a JWT the case
knows by its `jti:` key, else `opaque` with the case's best key for it (`sha256:<hex>` of the raw value, or the
vendor's id such as `okta-token:…`, `vault-accessor:…`; an AWS key by its `aws-key:AKIA…` id) — fingerprints and
ids, never the secret. When the principal is known the subject is `complex`: `user` (`email`, or `iss_sub` with the
credential's issuer, else `opaque`) beside `session` (for a session revocation) or `credential`. A session revocation
aimed at a user (the target is the user) names only the `user`: CAEP applies it to every session of that user.

`jti` is deterministic per item: a hash of the item's idempotency key (which names the act: playbook, step, verb,
target id) and the event type (an item without one falls back to the case's identity, plan and item number).
Exporting or pushing again produces the same `jti`, so a receiver deduplicates it; the same act verified again in a
later plan, or in a copy of the case on another machine, or after `stanch merge`, is the same event with the same
`jti`, and makes one SET. `txn` (a hash of the plan's hash) is shared by the SETs of one plan.

Deliveries: each push of one SET to one receiver is recorded as an audit entry (`sets.deliver`, hash-chained like
every write; `stanch verify` catches an edit), with the receiver URL, `jti`, outcome (`delivered`, `rejected` by a
400 with an SSF error, or `failed`), HTTP status, attempts and the receiver's error. `deliveries` reads the latest
outcome per (receiver, `jti`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from casefile import audit
from casefile.case import Case, CaseError
from casefile.timeutil import TimeError, to_micros

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
CREDENTIAL_COMPROMISE = RISC + "credential-compromise"
EVENT_TYPES = (SESSION_REVOKED, CREDENTIAL_CHANGE, CREDENTIAL_COMPROMISE)

#: The audit operation of one delivery.
DELIVERY_OPERATION = "sets.deliver"
DELIVERY_STATUSES = ("delivered", "rejected", "failed")

# Verdicts (connectors.verdict; repeated here because casefile does not import connectors).
_REVOKED_VERIFIED = "revoked-verified"
_UNREVOCABLE = "unrevocable"

_SESSION_VERB = re.compile(r"session|logout|log-out|sign-?out", re.IGNORECASE)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# CAEP credential-change `credential_type`: `x509` is CAEP's own; the others are "mutually agreed" names (CAEP 1.0
# allows them) for the kinds of credential stanch tracks.
_CREDENTIAL_TYPES = {
    "access": "oauth-access-token", "refresh": "oauth-refresh-token", "jwt": "jwt", "api-key": "api-key",
    "pat": "personal-access-token", "vault-token": "vault-token", "aws-key": "aws-access-key",
    "client-secret": "client-secret", "private-key": "private-key", "certificate": "x509",
    "webhook": "webhook-secret", "session": "session",
}
# Which key names a credential to a receiver, best first: an AWS access key id (public, what CloudTrail logs; its
# sha256 says nothing more), the raw value's hash anyone holding the token can compute, the vendor's own id, then
# weaker fingerprints.
_KEY_ORDER = ("aws-key:", "sha256:", "okta-token:", "github-token:", "sf-token:", "vault-accessor:", "sha256/16:",
              "vault-hmac:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(slots=True)
class SetEvent:
    """One SET to be signed: its claims without `iss`, `aud` and `iat`, and where it came from."""

    plan_id: int
    seq: int
    jti: str
    event_type: str
    claims: dict[str, Any]
    verdict: str
    credential_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def full_claims(self, issuer: str, audience: str | Sequence[str], iat: int) -> dict[str, Any]:
        """The SET's claims: `iss`, `iat`, `jti`, `aud`, then the rest."""
        aud: str | list[str] = audience if isinstance(audience, str) else list(audience)
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        return {"iss": issuer, "iat": int(iat), "jti": self.jti, "aud": aud, **self.claims}


# ------------------------------------------------------------------------------------------------ inputs


def check_issuer(issuer: str) -> str:
    """An `iss` value: a StringOrURI (RFC 7519) without spaces or control characters."""
    if not isinstance(issuer, str) or not issuer.strip():
        raise CaseError("--issuer: give the SET issuer, e.g. https://ir.example.com (the receiver checks it)")
    if _CONTROL.search(issuer) or " " in issuer.strip() or len(issuer) > 512:
        raise CaseError(f"--issuer {issuer[:60]!r}: must be one URI or name without spaces, at most 512 characters")
    return issuer.strip()


def check_audience(audience: str | Sequence[str]) -> list[str]:
    """The `aud` values: one or more StringOrURI values without spaces or control characters."""
    values = [audience] if isinstance(audience, str) else list(audience)
    values = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if not values:
        raise CaseError("--audience: name the receiver the SETs are for, e.g. https://rp.example.com (RFC 8417 aud)")
    for v in values:
        if _CONTROL.search(v) or " " in v or len(v) > 512:
            raise CaseError(f"--audience {v[:60]!r}: must be one URI or name without spaces, at most 512 characters")
    return values


# ------------------------------------------------------------------------------------------------ events


def case_identity(case: Case) -> str:
    """A stable id of this case (the hash of its first audit entry), for the `jti` of an item without an
    idempotency key. Copies keep it."""
    row = case.conn.execute("SELECT hash FROM audit ORDER BY seq LIMIT 1").fetchone()
    if row is not None:
        return str(row[0])
    meta = case.meta()
    return hashlib.sha256(f"{meta.get('created_at')}\x00{meta.get('title')}".encode()).hexdigest()


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x00".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def _epoch(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return to_micros(iso) // 1_000_000
    except (TimeError, ValueError, IndexError):
        return None


def _credential(case: Case, credential_id: int | None) -> dict[str, Any] | None:
    if credential_id is None:
        return None
    row = case.conn.execute("SELECT kind, issuer, principal, preview, expires_at FROM credentials WHERE id = ?",
                            (credential_id,)).fetchone()
    if row is None:
        return None
    keys = [k for (k,) in case.conn.execute("SELECT key FROM credential_keys WHERE credential_id = ? ORDER BY key",
                                            (credential_id,))]
    return {"kind": row[0], "issuer": row[1], "principal": row[2], "preview": row[3], "expires_at": row[4],
            "keys": keys}


def credential_subject(keys: Sequence[str], fallback: str | None = None) -> dict[str, str] | None:
    """The RFC 9493 / SSF subject identifier naming one credential: `jwt_id` from a `jti:<issuer>:<jti>` key,
    else `opaque` with the best key (never a raw secret: keys are fingerprints and vendor ids)."""
    for k in keys:
        if k.startswith("jti:"):
            iss, _, jti = k[4:].rpartition(":")
            if iss and jti:
                return {"format": "jwt_id", "iss": iss, "jti": jti}
    for prefix in _KEY_ORDER:
        for k in keys:
            if k.startswith(prefix):
                return {"format": "opaque", "id": k}
    if keys:
        return {"format": "opaque", "id": keys[0]}
    return {"format": "opaque", "id": fallback} if fallback else None


def principal_subject(principal: str, issuer: str | None) -> dict[str, str]:
    """The subject identifier of a principal: `email` when it is one, else `iss_sub` under the credential's issuer,
    else `opaque`."""
    if _EMAIL.fullmatch(principal):
        return {"format": "email", "email": principal}
    if issuer:
        return {"format": "iss_sub", "iss": issuer, "sub": principal}
    return {"format": "opaque", "id": principal}


def _event_type(verb: str | None, kind: str | None, verdict: str) -> str:
    if verdict == _UNREVOCABLE:
        return CREDENTIAL_COMPROMISE
    if (verb and _SESSION_VERB.search(verb)) or kind == "session":
        return SESSION_REVOKED
    return CREDENTIAL_CHANGE


def _acted_at(case: Case, plan_id: int, seq: int, fallback: str | None) -> str | None:
    """When the act took effect: its last `result` journal row that ended `done`, else the item's last change."""
    row = case.conn.execute("SELECT time FROM journal WHERE plan_id = ? AND seq = ? AND phase IN ('result', 'resume')"
                            " AND state = 'done' ORDER BY rowid DESC LIMIT 1", (plan_id, seq)).fetchone()
    return str(row[0]) if row else fallback


def set_events(case: Case) -> list[SetEvent]:
    """One `SetEvent` per verified act item of every plan, in plan and item order (an act verified in several plans
    once, under the first)."""
    ident = case_identity(case)
    out: list[SetEvent] = []
    seen: set[str] = set()
    plans = case.conn.execute("SELECT id, hash FROM plans ORDER BY id").fetchall()
    for plan_id, plan_hash in plans:
        txn = _digest("stanch-txn", plan_hash)
        rows = case.conn.execute(
            "SELECT seq, connector_kind, verb, target, preview, credential_id, rotation, idempotency_key, verdict,"
            " updated_at FROM plan_items WHERE plan_id = ? AND kind = 'act' AND state = 'verified'"
            " AND verdict IN (?, ?) ORDER BY seq", (plan_id, _REVOKED_VERIFIED, _UNREVOCABLE)).fetchall()
        for seq, connector_kind, verb, target, preview, credential_id, rotation, ikey, verdict, updated in rows:
            cred = _credential(case, credential_id)
            etype = _event_type(verb, cred["kind"] if cred else None, verdict)
            # The idempotency key names the act (playbook, step, verb, target): the same act verified again in a
            # later plan, or in a copy or merge of this case, is the same event and gets the same jti, once.
            jti = _digest("stanch-set", ikey, etype) if ikey else _digest("stanch-set", ident, plan_id, seq, etype)
            if jti in seen:
                continue
            seen.add(jti)
            when = _epoch(_acted_at(case, plan_id, seq, updated)) if etype != CREDENTIAL_COMPROMISE else _epoch(updated)
            claims = {"txn": txn, "sub_id": _subject(etype, verb, target, cred),
                      "events": {etype: _event_body(etype, verb, connector_kind, plan_id, seq, bool(rotation),
                                                    cred, preview, target, when)}}
            out.append(SetEvent(plan_id, seq, jti, etype, claims, verdict, credential_id,
                                {"verb": verb, "connector_kind": connector_kind}))
    return out


def _subject(etype: str, verb: str | None, target: str | None, cred: dict[str, Any] | None) -> dict[str, Any]:
    issuer = cred["issuer"] if cred else None
    principal = cred["principal"] if cred and cred["principal"] else None
    user_targeted = etype == SESSION_REVOKED and target is not None and bool(_EMAIL.fullmatch(target))
    if user_targeted and target is not None:
        # The verb ended every session of a user (the target is the user): CAEP applies a complex subject to every
        # session matching it.
        return {"format": "complex", "user": principal_subject(target, issuer)}
    own = credential_subject(cred["keys"] if cred else [], fallback=target)
    if own is None:
        own = {"format": "opaque", "id": "unknown"}
    if principal is None:
        return own
    member = "session" if etype == SESSION_REVOKED else "credential"
    return {"format": "complex", "user": principal_subject(principal, issuer), member: own}


def _event_body(etype: str, verb: str | None, connector_kind: str | None, plan_id: int, seq: int, rotation: bool,
                cred: dict[str, Any] | None, preview: str | None, target: str | None,
                when: int | None) -> dict[str, Any]:
    kind = cred["kind"] if cred else None
    ctype = _CREDENTIAL_TYPES.get(kind or "", kind or ("oauth-grant" if verb and "grant" in verb else "other"))
    how = f"{connector_kind or '?'} {verb or '?'}"
    body: dict[str, Any] = {}
    if etype == CREDENTIAL_COMPROMISE:
        body["credential_type"] = ctype
        if when is not None:
            body["event_timestamp"] = when
        return body
    if etype == CREDENTIAL_CHANGE:
        body["credential_type"] = ctype
        body["change_type"] = "update" if rotation else "revoke"
        name = (cred["preview"] if cred else None) or preview or target
        if name:
            body["friendly_name"] = _CONTROL.sub(" ", str(name))[:200]
    if when is not None:
        body["event_timestamp"] = when
    body["initiating_entity"] = "admin"
    what = "rotated" if etype == CREDENTIAL_CHANGE and rotation else "revoked"
    body["reason_admin"] = {"en": f"Incident response: {what} by {how} (plan {plan_id} item {seq}), proven by a "
                                  "probe"}
    return body


# ------------------------------------------------------------------------------------------------ deliveries


def record_delivery(case: Case, receiver: str, jti: str, status: str, *, http_status: int | None = None,
                    attempts: int = 0, err: str | None = None, description: str | None = None,
                    kid: str | None = None, plan_id: int | None = None, seq: int | None = None,
                    event_type: str | None = None) -> None:
    """Record one delivery outcome of SET `jti` to `receiver` (a URL without query or userinfo) as one audit entry,
    committed at once so a push cut short keeps what it delivered."""
    if status not in DELIVERY_STATUSES:
        raise ValueError(f"unknown delivery status {status!r}")
    details: dict[str, Any] = {"to": receiver, "jti": jti, "status": status, "http": http_status,
                               "attempts": attempts}
    for k, v in (("err", err), ("description", description), ("kid", kid), ("plan", plan_id), ("item", seq),
                 ("event", event_type)):
        if v is not None:
            details[k] = _CONTROL.sub(" ", v)[:300] if isinstance(v, str) else v
    with case.transaction() as c:
        audit.append(c, case.analyst, DELIVERY_OPERATION, details)


def deliveries(case: Case, receiver: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest delivery outcome per (receiver, jti), optionally for one receiver: each value holds `to`, `jti`,
    `status`, `http`, `attempts`, `time`, `who` and, when the receiver refused it, `err` and `description`."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for time, who, details in case.conn.execute(
            "SELECT time, who, details FROM audit WHERE operation = ? ORDER BY seq", (DELIVERY_OPERATION,)):
        try:
            d = orjson.loads(details or "{}")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(d, dict) or (receiver is not None and d.get("to") != receiver):
            continue
        d.update({"time": time, "who": who})
        latest[(str(d.get("to")), str(d.get("jti")))] = d
    return latest
