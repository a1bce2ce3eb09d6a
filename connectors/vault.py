"""HashiCorp Vault / OpenBao: the file audit device's JSON log (`vault-audit`), token lookups (`vault-token`),
and the live API (pull the token inventory; look up, revoke and probe tokens; audit-hash).

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

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import JsonDepthScanner, as_dict, host_without_port
from connectors.act import SnapshotFn, take
from connectors.config import ConnectorSettings
from connectors.http import ConnectorClient, ConnectorError, JournalEntry, UnexpectedResponseError
from connectors.pull import Page
from connectors.verdict import REVOKED_UNVERIFIED as UNVERIFIED
from connectors.verdict import REVOKED_VERIFIED as VERIFIED
from connectors.verdict import STILL_LIVE as LIVE
from connectors.verdict import Verdict

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
def _plus_seconds(iso: str, seconds: int) -> str | None:
    """`iso` plus `seconds`, or None past year 9999 (a TTL is a log field: it can say anything)."""
    base, _, frac = iso.rstrip("Z").partition(".")
    try:
        dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S") + timedelta(seconds=seconds)  # noqa: DTZ007 - UTC text
    except (OverflowError, ValueError):
        return None
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
        if expires_at is not None and expires_at[:19] < at[:19]:  # both are `YYYY-MM-DDTHH:MM:SS…Z` UTC text
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


# ---------------------------------------------------------------- token lookups (`vault-token`)
#
# One token's metadata per line, as `vault token lookup -format=json [-accessor]` prints it (`{"data": {…}}`)
# or as the bare `data` object; the live pull writes the same shape. Each becomes a `token.issue` event at the
# token's issue time naming the token as its subject (keys: its accessor; the `sha256:` of `id` when an export
# carries the raw token, which is then dropped). vendor_id = `token:<accessor>:<creation_time>`, so the same
# token pulled twice, or pulled and exported, is one event.

_LOOKUP_FIELDS = frozenset({"accessor", "policies", "creation_time", "display_name"})


def _token_event(line: int, obj: Any) -> Parsed | Problem:
    data = obj.get("data") if isinstance(obj, dict) and isinstance(obj.get("data"), dict) else obj
    if not isinstance(data, dict) or not _str(data.get("accessor")):
        return Problem(line, "malformed", "not a Vault token lookup: no `accessor` (expected the output of "
                       "`vault token lookup -format=json`)")
    record = {k: v for k, v in data.items() if k != "id"}
    accessor = str(data["accessor"])
    keys = list(value_key(accessor, accessor=True))
    hmac = _str(data.get("audit_hmac_accessor"))
    if hmac and hmac.startswith(HMAC_PREFIX):  # the key the audit device's log files this token under
        keys.extend(k for k in value_key(hmac) if k not in keys)
    preview = None
    raw_id = _str(data.get("id"))
    if raw_id:
        fp = fingerprint(raw_id)
        keys.extend(k for k in fp.keys if k not in keys)
        preview = fp.preview or None
    issued = _time(data.get("issue_time")) or _time(data.get("creation_time"))
    if issued is None:
        return Problem(line, "malformed", f"Vault token {accessor}: no readable issue_time or creation_time")
    policies = data.get("policies")
    scopes = " ".join(p for p in policies if isinstance(p, str)) if isinstance(policies, list) else None
    principal = _str(data.get("display_name")) or _str(data.get("entity_id"))
    subject = CredentialRef(keys=tuple(keys), kind="vault-token", issuer=VENDOR, principal=principal,
                            scopes=scopes or None, preview=preview, issued_at=issued,
                            expires_at=_time(data.get("expire_time")))
    event = Event(time=issued, vendor=VENDOR, action="token.issue", raw=record, vendor_type="token.lookup",
                  vendor_id=f"token:{accessor}:{data.get('creation_time') or issued}", outcome="success",
                  subject=subject, principal=principal, resource=_str(data.get("path")),
                  extra={"ttl": data.get("ttl"), "orphan": data.get("orphan"), "type": data.get("type")})
    return Parsed(line, event)


def parse_tokens(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Vault token lookups (JSON lines) → `token.issue` events; a bad line becomes a `Problem` naming it."""
    for line, text in src.lines():
        if not text.strip():
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            yield Problem(line, "malformed", f"not JSON: {e}")
            continue
        try:
            yield _token_event(line, obj)
        except (TypeError, ValueError, AttributeError) as e:
            yield Problem(line, "malformed", f"unreadable Vault token lookup: {e}")


def sniff_tokens(first_lines: list[str]) -> float:
    """Token lookups: JSON objects whose `data` (or the object) has accessor, policies and creation_time."""
    hits = objects = 0
    for ln in (x.strip() for x in first_lines):
        if not ln.startswith("{"):
            continue
        try:
            obj = orjson.loads(ln)
        except orjson.JSONDecodeError:
            continue
        objects += 1
        data = obj.get("data") if isinstance(obj, dict) and isinstance(obj.get("data"), dict) else obj
        hits += isinstance(data, dict) and data.keys() >= _LOOKUP_FIELDS
    return 0.5 + 0.45 * hits / objects if objects and hits else 0.0


register(
    Format(
        name="vault-token",
        vendor=VENDOR,
        description="HashiCorp Vault / OpenBao token lookups (`vault token lookup -format=json`), one per line",
        parse=parse_tokens,
        sniff=sniff_tokens,
        version="1",
        splittable=json_lines,
    )
)


# ---------------------------------------------------------------- live API
#
# HashiCorp Vault / OpenBao, live: look up, list, revoke and probe tokens through `ConnectorClient`.
#
# The client's base URL is the Vault address (`https://vault.example.com:8200`); every route here is
# under `v1/`. The client's secret is the responder's own Vault token, sent as `X-Vault-Token` (build one
# with `client_for`). Leaked tokens are addressed by **accessor** wherever Vault allows it, so the
# responder never has to handle the token itself. Two calls need the raw token (`revoke_orphan`,
# `probe_token`); it is passed in at call time, held only for that call, and scrubbed from the journal and
# from every error text.
#
# Verdicts (ARCHITECTURE §4): only positive evidence of death counts.
#
# - `probe_accessor`: `revoked-verified` only when Vault answers the responder's `lookup-accessor` with 400
#   `invalid accessor` (Vault looked in its token store and found nothing); `still-live` when the lookup
#   succeeds; anything else (403: the *responder's* token lacks the permission or is itself revoked; 5xx,
#   sealed, timeout, an unexpected body) is `revoked-unverified`.
# - `probe_token`: `lookup-self` sent *with the leaked token*; Vault's 403 `permission denied` means the
#   token no longer authenticates (`revoked-verified`); 200 is `still-live`; anything else is unverified.
#
# Destructive acts (`revoke_accessor`, `revoke_orphan`, `revoke_lease_prefix`) first snapshot what is about
# to change and return `{"snapshot": ..., "status_code": ...}` for the playbook engine to keep. A snapshot
# that cannot be taken stops the act.

API = "v1/"
#: Vault Proxy with `require_request_header` demands it; Vault itself ignores it.
VAULT_HEADERS = {"X-Vault-Request": "true"}

# A mount/device path or lease prefix as it goes into the URL: no `..`, no query, no leading slash.
_PATH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*")
# Token metadata that is safe to show and keep; `id` (the token itself) is never kept.
_DROP = frozenset({"id"})


# ------------------------------------------------------------------------------------------- clients


def client_for(settings: ConnectorSettings, secret: str, **kwargs: Any) -> ConnectorClient:
    """A `ConnectorClient` for a `vault` connector: the secret goes as `X-Vault-Token` on every request.

    `kwargs` are `ConnectorClient` options that override those taken from the settings."""
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
        "headers": VAULT_HEADERS,
    }
    options.update(kwargs)  # tests and callers may override any of them (timeouts, retries, transport)
    return ConnectorClient(settings.name, settings.url, auth_header=lambda: {"X-Vault-Token": secret}, **options)


def _path(value: str, what: str) -> str:
    text = value.strip().strip("/")
    if not _PATH_RE.fullmatch(text) or ".." in text.split("/"):
        raise ValueError(f"{what} {value!r} is not a Vault path (letters, digits, '_', '-', '.', '/'; no '..')")
    return text


def _data(client: ConnectorClient, response: httpx.Response) -> dict[str, Any]:
    body = client._json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise UnexpectedResponseError(
            f"{response.status_code} from {client.name}: {response.request.method} {response.request.url.path} "
            "has no `data` object; check that the base URL is the Vault address",
            connector=client.name, status=response.status_code, method=response.request.method,
            path=response.request.url.path,
        )
    return {k: v for k, v in data.items() if k not in _DROP}


def _errors(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    return " ".join(" ".join(str(e).split()) for e in errors)


# ------------------------------------------------------------------------------------------- lookups


async def lookup_self(client: ConnectorClient) -> dict[str, Any]:
    """`GET auth/token/lookup-self` for the client's own token: its metadata, without `id`."""
    return _data(client, await client.request("GET", f"{API}auth/token/lookup-self"))


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: who the responder's Vault token is (never the token itself)."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret) as client:
            data = await lookup_self(client)
        return {k: data.get(k) for k in ("display_name", "policies", "accessor", "ttl", "expire_time", "path",
                                         "orphan", "type", "entity_id")}

    return asyncio.run(ask())


async def lookup_accessor(client: ConnectorClient, accessor: str) -> dict[str, Any]:
    """`POST auth/token/lookup-accessor`: the token's metadata (policies, ttl, path, ...); never its id."""
    r = await client.request("POST", f"{API}auth/token/lookup-accessor", json={"accessor": accessor},
                             idempotent=True)
    return _data(client, r)


async def list_accessors(client: ConnectorClient) -> AsyncIterator[str]:
    """`LIST auth/token/accessors` (needs sudo): every service token's accessor. Batch tokens are not listed."""
    async for key in client.list_keys(f"{API}auth/token/accessors"):
        yield key


# ------------------------------------------------------------------------------------------- acts


async def revoke_accessor(client: ConnectorClient, accessor: str, *, snapshot: SnapshotFn | None = None
                          ) -> dict[str, Any]:
    """Revoke the token behind `accessor`, **its child tokens** and its leases. Snapshot first.

    The token's `lookup-accessor` metadata goes to `snapshot("vault.token", accessor, ...)` before the revoke
    is sent. Returns `{"snapshot": <that metadata>, "status_code": <Vault's answer, 204>}`. Not retried:
    a revoke sent twice must be a choice. Follow it with `probe_accessor`.
    """
    before = await lookup_accessor(client, accessor)
    take(snapshot, "vault.token", accessor, before)
    r = await client.request("POST", f"{API}auth/token/revoke-accessor", json={"accessor": accessor})
    return {"snapshot": before, "status_code": r.status_code}


async def revoke_orphan(client: ConnectorClient, raw_token: str, *, snapshot: SnapshotFn | None = None
                        ) -> dict[str, Any]:
    """Revoke one token but keep its children (they become orphans). Needs sudo. Snapshot first.

    `raw_token` is the leaked token as the responder holds it: sent in the request body only, never kept,
    scrubbed from errors. The snapshot is `auth/token/lookup` of it, without `id`, filed under its accessor.
    """
    r = await client.request("POST", f"{API}auth/token/lookup", json={"token": raw_token}, idempotent=True)
    before = _data(client, r)
    take(snapshot, "vault.token", str(before.get("accessor") or "?"), before)
    r = await client.request("POST", f"{API}auth/token/revoke-orphan", json={"token": raw_token})
    return {"snapshot": before, "status_code": r.status_code}


async def revoke_lease_prefix(client: ConnectorClient, prefix: str, *, allow_own_token: bool = False,
                              snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """`POST sys/leases/revoke-prefix/<prefix>` (sync): revoke every lease, or every token by its creation
    path (`auth/token/create/<role>`, `auth/approle/login`), under `prefix`. Needs sudo.

    Vault matches `<prefix>/` against lease ids, so `auth/token/create` also takes every role's tokens and
    the dev root token. The responder's own token is checked first: when its creation path falls under the
    prefix the act is refused (`ValueError`) unless `allow_own_token`. The snapshot (`vault.lease_prefix`)
    is the `LIST sys/leases/lookup/<prefix>/` answer (one level: lease ids and sub-prefixes).
    """
    p = _path(prefix, "lease prefix")
    own = await lookup_self(client)
    own_path = str(own.get("path") or "").strip("/")
    if not allow_own_token and own_path and f"{own_path}/".startswith(f"{p}/"):
        raise ValueError(f"lease prefix {p!r} covers the responder's own token (created at {own_path!r}); "
                         "narrow the prefix (e.g. auth/token/create/<role>) or pass allow_own_token")
    leases = [key async for key in client.list_keys(f"{API}sys/leases/lookup/{p}/")]
    before = {"prefix": p, "leases": leases}
    take(snapshot, "vault.lease_prefix", p, before)
    r = await client.request("POST", f"{API}sys/leases/revoke-prefix/{p}", json={"sync": True})
    return {"snapshot": before, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- pull

#: How many lookups one pulled page holds.
PULL_PAGE = 200


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str], on_journal: Callable[[JournalEntry], None] | None = None,
               **client_options: Any) -> AsyncIterator[Page]:
    """The token inventory: every service token's `lookup-accessor` (`LIST auth/token/accessors`, needs sudo).

    Stream `tokens`, format `vault-token` (the shape `vault token lookup -format=json` prints, without the
    token `id`). Each token becomes one `token.issue` event at its issue time, so the case learns every
    live token's policies, TTL, expiry and creation path. Vault has no change feed for tokens: each pull
    lists them all again (no cursor; the events dedupe by accessor and creation time). `since`/`until` keep
    the tokens issued in that window. An accessor revoked between the listing and its lookup is skipped.
    Batch tokens are not listed by Vault.

    When the responder's token may read `sys/audit`, each accessor is also hashed by the first audit device
    (`sys/audit-hash`) and the record carries `audit_hmac_accessor`: the key under which that device's log
    files the token, so the inventory joins the ingested audit log.
    """
    del cursors  # a full listing each time: Vault keeps no change feed for tokens
    async with client_for(settings, secret, on_journal=on_journal, **client_options) as client:
        device = await _first_audit_device(client)
        accessors = [a async for a in list_accessors(client)]
        for start in range(0, len(accessors), PULL_PAGE):
            batch = accessors[start:start + PULL_PAGE]
            found = await asyncio.gather(*(_lookup_or_none(client, a, device) for a in batch))
            records = []
            for data in found:
                if data is None:
                    continue
                issued = _time(data.get("issue_time")) or _time(data.get("creation_time"))
                if issued and ((since and issued < since) or (until and issued > until)):
                    continue
                records.append({"data": data})
            yield Page.json_lines("tokens", "vault-token", records, None,
                                  f"LIST {API}auth/token/accessors + POST {API}auth/token/lookup-accessor "
                                  f"({start + 1}-{start + len(batch)} of {len(accessors)})")


async def _first_audit_device(client: ConnectorClient) -> str | None:
    """The first enabled audit device's path (`GET sys/audit`), or None when there is none or it is not readable."""
    r = await client.request("GET", f"{API}sys/audit", accept_status=(403, 404))
    if r.status_code != 200:
        return None
    body = client._json(r)
    data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
    paths = sorted(k.strip("/") for k, v in data.items() if isinstance(v, dict)) if isinstance(data, dict) else []
    return paths[0] if paths else None


async def _lookup_or_none(client: ConnectorClient, accessor: str, device: str | None) -> dict[str, Any] | None:
    r = await client.request("POST", f"{API}auth/token/lookup-accessor", json={"accessor": accessor},
                             idempotent=True, accept_status=(400,))
    if r.status_code == 400:  # revoked or expired since it was listed
        return None
    data = _data(client, r)
    if device:
        h = await client.request("POST", f"{API}sys/audit-hash/{device}", json={"input": accessor}, idempotent=True)
        body = client._json(h)
        found = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
        hashed = found.get("hash") if isinstance(found, dict) else None
        if isinstance(hashed, str) and hashed.startswith(HMAC_PREFIX):
            data["audit_hmac_accessor"] = hashed
    return data


# ------------------------------------------------------------------------------------------- audit


async def audit_hash(client: ConnectorClient, device_path: str, raw_value: str) -> str:
    """The stanch credential key of `raw_value` (a token or accessor) in the log of audit device `device_path`.

    `POST sys/audit-hash/<device>` answers `hmac-sha256:<hex>` with that device's salt; the key is formed
    by the audit parser's own `value_key`, so it is exactly `vault-hmac:default:<hex>` as ingested logs
    file the same token.
    """
    device = _path(device_path, "audit device path")
    # `input` is not a secret-named field: name the value so the client scrubs it from errors anyway.
    r = await client.request("POST", f"{API}sys/audit-hash/{device}", json={"input": raw_value}, idempotent=True,
                             secrets=[raw_value])
    body = client._json(r)
    hashed = None
    if isinstance(body, dict):
        data = body.get("data")
        hashed = (data.get("hash") if isinstance(data, dict) else None) or body.get("hash")
    if not isinstance(hashed, str) or not hashed.startswith(HMAC_PREFIX):
        raise UnexpectedResponseError(
            f"{r.status_code} from {client.name}: POST sys/audit-hash/{device} gave no `hmac-sha256:` hash; "
            "check the device path (`GET sys/audit` lists them) and that it does not log raw values",
            connector=client.name, status=r.status_code, method="POST", path=r.request.url.path,
        )
    keys = value_key(hashed)
    if not keys:
        raise UnexpectedResponseError(f"{r.status_code} from {client.name}: empty hash from sys/audit-hash/{device}",
                                      connector=client.name, status=r.status_code, method="POST")
    return keys[0]


# ------------------------------------------------------------------------------------------- probes


async def _probe(call: Callable[[], Any], what: str) -> tuple[httpx.Response | None, Verdict | None]:
    try:
        return await call(), None
    except ConnectorError as e:
        return None, Verdict(UNVERIFIED, f"{what} failed, nothing proven: {e}", http_status=e.status)


async def probe_accessor(client: ConnectorClient, accessor: str) -> Verdict:
    """Is the token behind `accessor` dead? Only Vault's 400 `invalid accessor` proves it."""

    async def call() -> httpx.Response:
        return await client.request("POST", f"{API}auth/token/lookup-accessor", json={"accessor": accessor},
                                    idempotent=True, accept_status=(400, 403, 404))

    r, failed = await _probe(call, "lookup-accessor")
    if failed is not None or r is None:
        return failed or Verdict(UNVERIFIED, "lookup-accessor gave no answer")
    status, errors = r.status_code, _errors(r)
    if status == 400 and "invalid accessor" in errors.lower():
        return Verdict(VERIFIED, "lookup-accessor refused: 400 invalid accessor (no such token in Vault's store)",
                       http_status=status)
    if status == 200:
        try:
            data = _data(client, r)
        except ConnectorError as e:
            return Verdict(UNVERIFIED, f"lookup-accessor answered 200 without token data: {e}", http_status=status)
        if data.get("accessor") not in (None, accessor):
            return Verdict(UNVERIFIED, "lookup-accessor answered 200 for another accessor", http_status=status)
        return Verdict(LIVE, f"lookup-accessor answered 200: {_describe(data)}", http_status=status)
    if status == 403:
        return Verdict(UNVERIFIED, "lookup-accessor refused with 403: the responder's token lacks permission or "
                       "is itself revoked, so nothing is proven about the target", http_status=status)
    return Verdict(UNVERIFIED, f"lookup-accessor answered {status} ({errors or 'no error text'}); nothing proven",
                   http_status=status)


async def probe_token(client: ConnectorClient, raw_token: str) -> Verdict:
    """Is this token dead? `lookup-self` sent as the token itself; Vault's 403 `permission denied` proves it.

    The request goes over the caller's client with the raw token as `X-Vault-Token` for this one call
    (the client scrubs it from its journal and errors).
    """
    r, failed = await _probe(lambda: client.request("GET", f"{API}auth/token/lookup-self",
                                                    accept_status=(400, 401, 403),
                                                    auth={"X-Vault-Token": raw_token}), "lookup-self")
    if failed is not None or r is None:
        return failed or Verdict(UNVERIFIED, "lookup-self gave no answer")
    status, errors = r.status_code, _errors(r)
    if status == 403 and "permission denied" in errors.lower():
        return Verdict(VERIFIED, "lookup-self with the token refused: 403 permission denied", http_status=status)
    if status == 200:
        try:
            data = _data(client, r)
        except ConnectorError as e:
            return Verdict(UNVERIFIED, f"lookup-self answered 200 without token data: {e}", http_status=status)
        return Verdict(LIVE, f"lookup-self answered 200: {_describe(data)}", http_status=status)
    return Verdict(UNVERIFIED, f"lookup-self answered {status} ({errors or 'no error text'}); nothing proven",
                   http_status=status)


def _describe(data: dict[str, Any]) -> str:
    policies = data.get("policies")
    pol = ",".join(str(p) for p in policies) if isinstance(policies, list) else "?"
    return (f"{data.get('display_name') or '?'} (accessor {data.get('accessor') or '?'}, policies {pol}, "
            f"ttl {data.get('ttl')}, expires {data.get('expire_time') or 'never'})")


# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """Vault tokens: by accessor when the case knows it (children and leases go too, no raw token needed),
    else by the token itself (revoke, which the responder must supply; its HMAC is only a name)."""
    keys = credential.get("keys") or []
    accessor = next((k for k in keys if k.startswith("vault-accessor:")), None)
    if accessor:
        return RevokeHow("vault", "revoke-accessor", accessor.split(":", 2)[2], needs_raw_secret=False,
                         note="revokes its child tokens and leases too")
    if any(k.startswith("vault-hmac:") for k in keys) or credential.get("kind") == "vault-token":
        return RevokeHow("vault", "revoke-token", next(iter(keys), ""), needs_raw_secret=True,
                         note="the audit log names the token only by HMAC: supply the token, or find its accessor "
                              "with `stanch pull` (token inventory)")
    return None


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                 | target              | raw | act                                     | probe            |
# |----------------------|---------------------|-----|-----------------------------------------|------------------|
# | `revoke-accessor`    | `<accessor>`        | no  | `revoke_accessor` (children, leases)    | `probe_accessor` |
# | `revoke-token`       | a key of the token  | yes | lookup → its accessor → `revoke_accessor` | `probe_token`  |
# | `revoke-orphan`      | a key of the token  | yes | `revoke_orphan` (children kept)         | `probe_token`    |
# | `revoke-lease-prefix`| `<prefix>`          | no  | `revoke_lease_prefix`                   | none             |
#
# `revoke-token` revokes the token **with its children and leases**, as `revoke-accessor` does: a leaked token's
# children were minted by whoever held it, so they go too. It reads the token's accessor with `auth/token/lookup`
# (the responder's token needs it, as for `revoke-orphan`) and revokes by accessor, so the raw token is sent
# once, in a request body. `revoke-orphan` is the narrower choice when the children must survive.

from connectors import verbs as _verbs  # noqa: E402


async def _accessor_of(client: ConnectorClient, raw_token: str) -> str:
    r = await client.request("POST", f"{API}auth/token/lookup", json={"token": raw_token}, idempotent=True,
                             secrets=[raw_token])
    accessor = _data(client, r).get("accessor")
    if not isinstance(accessor, str) or not accessor:
        raise ValueError("Vault knows no accessor for this token (a batch token cannot be revoked: it lives until "
                         "its TTL ends)")
    return accessor


async def _act_revoke_accessor(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                               snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_accessor(client, target.strip(), snapshot=snapshot))


async def _probe_revoke_accessor(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None
                                 ) -> Verdict:
    async with client_for(settings, secret) as client:
        return await probe_accessor(client, target.strip())


async def _act_revoke_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                            snapshot: SnapshotFn) -> dict[str, Any]:
    token = _verbs.check_raw(VENDOR, "revoke-token", target, raw)
    async with client_for(settings, secret) as client:
        accessor = await _accessor_of(client, token)
        return _verbs.answer(await revoke_accessor(client, accessor, snapshot=snapshot), accessor=accessor)


async def _act_revoke_orphan(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                             snapshot: SnapshotFn) -> dict[str, Any]:
    token = _verbs.check_raw(VENDOR, "revoke-orphan", target, raw)
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_orphan(client, token, snapshot=snapshot))


async def _probe_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    token = _verbs.check_raw(VENDOR, "probe", target, raw)
    async with client_for(settings, secret) as client:
        return await probe_token(client, token)


async def _act_revoke_lease_prefix(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                   snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_lease_prefix(client, target, snapshot=snapshot))


_verbs.register(VENDOR, "revoke-accessor", act=_act_revoke_accessor, probe=_verbs.guarded(_probe_revoke_accessor),
                description="revoke the token behind an accessor, its child tokens and its leases")
_verbs.register(VENDOR, "revoke-token", act=_act_revoke_token, probe=_verbs.guarded(_probe_token), needs_raw=True,
                description="revoke a token given raw, with its child tokens and leases (by its accessor)")
_verbs.register(VENDOR, "revoke-orphan", act=_act_revoke_orphan, probe=_verbs.guarded(_probe_token), needs_raw=True,
                description="revoke a token given raw but keep its children (they become orphans)")
_verbs.register(VENDOR, "revoke-lease-prefix", act=_act_revoke_lease_prefix, probe=None,
                description="revoke every lease or token created under a path prefix (never the responder's own)")
