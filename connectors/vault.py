"""HashiCorp Vault / OpenBao: the file audit device's JSON log (`vault-audit`).

One audit record is one JSON object whose `type` is `request` or `response` (Enterprise also writes
`kmip-request` / `kmip-response`). A request and its response share `request.id`, so the stable id is
`f"{request.id}:{type}"`. Records are usually one per line (JSON lines); pretty-printed objects spanning
many lines, back to back, are read too (e.g. a log passed through `jq .`).

Credential keys. Vault HMACs tokens with a salt that belongs to the *audit device*, so the same token
hashes differently in two devices' logs. A line does not name the device that wrote it, so every
`hmac-sha256:<hex>` value becomes `vault-hmac:default:<hex>`: the device name is the constant
`DEVICE` ("default") until the format takes options. To find a known token, ask the device that wrote
the log: `POST /v1/sys/audit-hash/<device>` `{"input": "<token>"}`, and look up
`vault-hmac:default:<hex of the answer>`. The token's HMAC and its accessor's HMAC are two keys of one
credential; they go into one `CredentialRef` only when they appear together in one auth block (or one
request). A plain accessor (`hmac_accessor=false`) becomes `vault-accessor:default:<accessor>`. A raw
token (only with `log_raw=true`) is fingerprinted on the spot and never kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import JsonDepthScanner, as_dict, host_without_port

VENDOR = "vault"
DEVICE = "default"  # audit device name used in keys; the log line does not say which device wrote it
HMAC_PREFIX = "hmac-sha256:"
MAX_RECORD_CHARS = 16 << 20  # a multi-line object larger than this is reported, not buffered

_TYPES = frozenset({"request", "response"})
_KMIP_TYPES = frozenset({"kmip-request", "kmip-response"})
_WRITE_OPS = frozenset({"create", "update", "patch", "delete"})
_KV_MOUNTS = frozenset({"kv", "generic"})
# sys/ endpoints that take POST/PUT but change nothing.
_SYS_QUERIES = (
    "sys/capabilities",
    "sys/audit-hash/",
    "sys/leases/lookup",
    "sys/wrapping/lookup",
    "sys/tools/",
    "sys/internal/",
    "sys/policies/password/",
)
_LOGIN = re.compile(r"^auth/.+/login(?:/|$)")


# ---------------------------------------------------------------- keys


def value_key(value: str, *, accessor: bool = False) -> tuple[str, ...]:
    """Keys for one token or accessor value as the audit log shows it (HMAC'd, plain accessor or raw token)."""
    if value.startswith(HMAC_PREFIX):
        digest = value[len(HMAC_PREFIX):].strip().lower()
        return (f"vault-hmac:{DEVICE}:{digest}",) if digest else ()
    if accessor:
        return (f"vault-accessor:{DEVICE}:{value}",)
    return fingerprint(value).keys  # log_raw=true: a raw token; keep only its fingerprint


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


_dict = as_dict


def _keys(token: str | None, accessor: str | None) -> tuple[tuple[str, ...], str | None]:
    """Keys for a token and its accessor seen together, and a preview when the token was raw."""
    keys: list[str] = []
    preview = None
    if token:
        keys.extend(value_key(token))
        if not token.startswith(HMAC_PREFIX):
            preview = fingerprint(token).preview or None
    if accessor:
        keys.extend(k for k in value_key(accessor, accessor=True) if k not in keys)
    return tuple(keys), preview


def _time(value: Any) -> str | None:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or value in ("", 0):
        return None
    if isinstance(value, str):
        return _time_text(value)
    try:
        return to_utc_iso(value)
    except TimeError:
        return None


@lru_cache(maxsize=4096)
def _time_text(value: str) -> str | None:
    # token_issue_time repeats on every line a token is used: convert each once.
    try:
        return to_utc_iso(value)
    except TimeError:
        return None


@lru_cache(maxsize=4096)
def _plus_seconds(iso: str, seconds: int) -> str:
    base, _, frac = iso.rstrip("Z").partition(".")
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S") + timedelta(seconds=seconds)  # noqa: DTZ007 - UTC text
    out = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{out}.{frac}Z" if frac else f"{out}Z"


def credential_from_auth(
    auth: dict[str, Any], at: str, *, token: str | None = None, accessor: str | None = None,
    issued: str | None = None,
) -> CredentialRef | None:
    """A `CredentialRef` for an audit `auth` block (or a request's token and accessor when the block has none).

    `expires_at` is `token_issue_time + token_ttl`, kept only when it is not before the event time `at`:
    a renewed or periodic token outlives its first TTL and the block does not say by how much.
    """
    tok = _str(auth.get("client_token")) or token
    acc = _str(auth.get("accessor")) or (accessor if not _str(auth.get("client_token")) else None)
    keys, preview = _keys(tok, acc)
    if not keys:
        return None
    policies = auth.get("policies") or auth.get("token_policies")
    scopes = " ".join(p for p in policies if isinstance(p, str)) if isinstance(policies, list) else None
    issued_at = _time(auth.get("token_issue_time")) or issued
    ttl = auth.get("token_ttl")
    expires_at = None
    if issued_at and isinstance(ttl, int) and not isinstance(ttl, bool) and ttl > 0:
        expires_at = _plus_seconds(issued_at, ttl)
        if expires_at[:19] < at[:19]:  # both are `YYYY-MM-DDTHH:MM:SS…Z` UTC text
            expires_at = None
    return CredentialRef(
        keys=keys,
        kind="vault-token",
        issuer=VENDOR,
        principal=_str(auth.get("display_name")),
        scopes=scopes or None,
        preview=preview,
        issued_at=issued_at,
        expires_at=expires_at,
    )


# ---------------------------------------------------------------- actions


def action_for(path: str, operation: str, mount_type: str, mount_class: str) -> str:
    """The canonical action for a request path and operation (errors are handled by the caller)."""
    p = path.lstrip("/")
    if p.startswith("auth/token/create") or _LOGIN.match(p):
        return "token.issue"
    if p.startswith("auth/token/revoke") or p.startswith("sys/leases/revoke"):
        return "token.revoke"
    if p.startswith("auth/token/lookup"):
        return "token.use"
    kv = mount_type in _KV_MOUNTS or "/data/" in p
    if operation == "read" and (kv or mount_class == "secret"):
        return "secret.read"
    if kv and operation in _WRITE_OPS:
        return "secret.write"
    if p.startswith("sys/") and operation in _WRITE_OPS and not p.startswith(_SYS_QUERIES):
        return "admin.change"
    return "api.call"


def _host(addr: str | None) -> str | None:
    """`192.168.0.10:36776` / `[2001:db8::10]:36778` → the address without its port (KMIP records)."""
    return host_without_port(addr) if addr else None


def _event(line: int, rec: dict[str, Any]) -> Parsed | Problem:
    rtype = rec.get("type")
    if not isinstance(rtype, str) or not rtype:
        return Problem(line, "malformed", "not a Vault audit record: no `type`")
    when = None
    if isinstance(rec.get("time"), str):
        try:
            when = to_utc_iso(rec["time"])  # unique per line: not cached
        except TimeError:
            when = None
    if when is None:
        return Problem(line, "malformed", f"{rtype} record has no readable `time`: {rec.get('time')!r}")
    request = _dict(rec.get("request"))
    auth = _dict(rec.get("auth"))
    response = _dict(rec.get("response"))
    error = rec.get("error")
    error_text = error if isinstance(error, str) and error else None

    if rtype in _KMIP_TYPES:
        extra: dict[str, Any] = {}
        serial = _str(request.get("client_certificate_serial_number"))
        if serial:
            extra["client_certificate_serial_number"] = serial
        ev = Event(
            time=when, vendor=VENDOR, action="api.call", raw=rec, vendor_type=rtype,
            outcome="failure" if error_text else "unknown", src_ip=_host(_str(request.get("remote_address"))),
            resource="kmip", extra=extra,
        )
        return Parsed(line, ev, orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode())
    if rtype not in _TYPES:
        return Problem(line, "skipped", f"audit record type {rtype!r} is not request/response")
    if not request:
        return Problem(line, "malformed", f"{rtype} record has no `request` object")

    path = _str(request.get("path")) or ""
    operation = _str(request.get("operation")) or ""
    mount_type = _str(request.get("mount_type")) or ""
    mount_class = _str(request.get("mount_class")) or ""
    action = action_for(path, operation, mount_type, mount_class)

    credential = credential_from_auth(
        auth, when, token=_str(request.get("client_token")), accessor=_str(request.get("client_token_accessor"))
    )

    subject = None
    resp_auth = _dict(response.get("auth"))
    if _str(resp_auth.get("client_token")):
        subject = credential_from_auth(resp_auth, when, issued=when)
        action = "token.issue"
    elif action == "token.revoke" and path.startswith("auth/token/revoke"):
        data = _dict(request.get("data"))
        if path.startswith("auth/token/revoke-accessor"):
            acc = _str(data.get("accessor"))
            keys = value_key(acc, accessor=True) if acc else ()
        elif path.startswith("auth/token/revoke-self"):
            keys = credential.keys if credential else ()
        else:
            tok = _str(data.get("token"))
            keys = value_key(tok) if tok else ()
        if keys:
            subject = CredentialRef(keys=keys, kind="vault-token", issuer=VENDOR)

    if error_text:
        outcome = "failure"
        if "permission denied" in error_text.lower():
            action = "auth.fail"
    else:
        outcome = "success" if rtype == "response" else "unknown"

    extra = {}
    for k in ("mount_type", "mount_point", "mount_class"):
        if _str(request.get(k)):
            extra[k] = request[k]
    ns = _dict(request.get("namespace")).get("path") or _dict(request.get("namespace")).get("id")
    if isinstance(ns, str) and ns:
        extra["namespace"] = ns
    for k in ("entity_id", "token_type"):
        if _str(auth.get(k)):
            extra[k] = auth[k]
    if error_text:
        extra["error"] = error_text.strip()

    req_id = _str(request.get("id"))
    ev = Event(
        time=when,
        vendor=VENDOR,
        action=action,
        raw=rec,
        vendor_type=rtype,
        vendor_id=f"{req_id}:{rtype}" if req_id else None,
        outcome=outcome,
        credential=credential,
        subject=subject,
        principal=_str(auth.get("display_name")),
        src_ip=_str(request.get("remote_address")),
        method=operation or None,
        resource=path or None,
        request_id=req_id,
        extra=extra,
    )
    id_text = None if req_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(line, ev, id_text)


# ---------------------------------------------------------------- reading


def iter_records(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]] | Problem]:
    """(line where the object starts, object) for every JSON object, one per line or pretty-printed.

    JSON lines take the fast path (one `orjson.loads` per line). A line that does not parse alone and
    opens an object starts a multi-line object, buffered until its braces balance (at most
    `MAX_RECORD_CHARS`, so memory stays bounded). An object that is cut short is reported at its first
    line when a line ends inside a string (JSON strings hold no newlines), when the next object starts
    at column 0 (the shape `json.dumps(indent=...)` and `jq .` write), or at the end of the input;
    reading then resumes at the next line that starts with `{`.
    """
    buf: list[str] = []
    size = 0
    start = 0
    overflow = False
    resync = False
    scan = JsonDepthScanner()

    def finish() -> Iterator[tuple[int, dict[str, Any]] | Problem]:
        if overflow:
            yield Problem(start, "malformed", f"JSON object longer than {MAX_RECORD_CHARS} characters")
            return
        try:
            obj = orjson.loads("".join(buf))
        except orjson.JSONDecodeError as e:
            yield Problem(start, "malformed", f"not valid JSON: {e}")
            return
        if isinstance(obj, dict):
            yield start, obj
        else:
            yield Problem(start, "malformed", "JSON value is not an object")

    for n, line in lines:
        if buf and line[:1] == "{":
            # A new top-level object begins while the previous one is still open: that one was cut short.
            yield Problem(start, "malformed", f"JSON object not closed before line {n}")
            buf, overflow, scan = [], False, JsonDepthScanner()
        if resync:
            if line[:1] != "{":
                continue
            resync = False
        text = line
        while True:
            if not buf:
                stripped = text.strip()
                if not stripped:
                    break
                if text is line:
                    try:
                        obj = orjson.loads(stripped)
                    except orjson.JSONDecodeError:
                        pass
                    else:  # the common case: one JSON object per line
                        if isinstance(obj, dict):
                            yield n, obj
                        else:
                            yield Problem(n, "malformed", "JSON value is not an object")
                        break
                if stripped[0] != "{":
                    yield Problem(n, "malformed", f"not a JSON object: {stripped[:60]!r}")
                    break
                start, text, size, overflow = n, stripped, 0, False
            end = scan.feed(text)
            piece = text if end < 0 else text[:end]
            size += len(piece) + 1
            if size > MAX_RECORD_CHARS:
                overflow = True
            if not overflow:
                buf.append(piece)
            elif not buf:
                buf.append("")  # keeps "inside an object" without keeping its text
            if end < 0:
                if scan.in_str:
                    yield Problem(start, "malformed", f"JSON string not closed at the end of line {n}")
                    buf, overflow, scan, resync = [], False, JsonDepthScanner(), True
                elif not overflow:
                    buf.append("\n")
                break
            yield from finish()
            buf = []
            text = text[end:]
    if buf:
        yield Problem(start, "malformed", "JSON object not closed at the end of the input")


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Vault/OpenBao audit records → events; a bad record becomes a `Problem` naming its line."""
    for item in iter_records(src.lines()):
        if isinstance(item, Problem):
            yield item
            continue
        line, rec = item
        try:
            yield _event(line, rec)
        except (TypeError, ValueError, AttributeError) as e:  # a record of an unexpected shape
            yield Problem(line, "malformed", f"unreadable Vault audit record: {e}")


# ---------------------------------------------------------------- sniffing

_PRETTY_TYPE = re.compile(r'"type"\s*:\s*"(?:request|response|kmip-request|kmip-response)"')
_PRETTY_OBJ = re.compile(r'"(auth|request)"\s*:\s*\{')


def _is_vault(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    rtype = obj.get("type")
    if rtype in _KMIP_TYPES:
        return isinstance(obj.get("request"), dict) and "time" in obj
    return rtype in _TYPES and isinstance(obj.get("request"), dict) and isinstance(obj.get("auth"), dict | None)


def sniff(first_lines: list[str]) -> float:
    """How sure we are these are Vault audit records: `type` request/response with `request`/`auth` objects."""
    lines = [ln.strip() for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    hits = objects = 0
    for ln in lines:
        if not ln.startswith("{"):
            continue
        try:
            obj = orjson.loads(ln)
        except orjson.JSONDecodeError:
            continue
        objects += 1
        hits += _is_vault(obj)
    if objects:
        return 0.5 + 0.45 * hits / objects if hits else 0.0
    # Pretty-printed: the head is the top of one object.
    if lines[0] != "{":
        return 0.0
    text = "\n".join(lines)
    found = set(_PRETTY_OBJ.findall(text))
    if _PRETTY_TYPE.search(text) and ("request" in found or ("auth" in found and HMAC_PREFIX in text)):
        return 0.8
    return 0.0


register(
    Format(
        name="vault-audit",
        vendor=VENDOR,
        description="HashiCorp Vault / OpenBao file audit device, JSON lines or pretty-printed JSON objects",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=json_lines,
    )
)


# ---------------------------------------------------------------- live API

# Lookups, revokes, probes and audit-hash against a running Vault/OpenBao live in `connectors.vault_live`;
# `whoami` is re-exported here because `stanch connector test` looks for `connectors.<kind>.whoami`.
from connectors.vault_live import whoami  # noqa: E402, F401
