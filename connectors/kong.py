"""kong connector: Kong Gateway log-plugin entries (parser registered on import), and the live Admin API
(consumers, credentials, delete/revoke, probes: see the section "live API" at the end).

Format `kong-log`: the JSON entry Kong's log serializer writes for each request (`file-log`, `http-log`,
`tcp-log`, `udp-log`...; connectors.md §6.1), in three shapes, chosen from the first non-blank character:

* JSON lines, one entry per line (`file-log`). Provenance "line" = the line number.
* a JSON array (`http-log` with queue batching posts a batch as one array): streamed with ijson, so memory stays
  constant. Provenance "line" = the **1-based index of the item in the array**; a broken array yields every item
  before the break and one `malformed` Problem at the index of the item that broke.
* pretty-printed entries back to back (a body saved from a request bin, Kong's documentation sample).
  Provenance "line" = the line where the object starts.

Fields: `started_at` (epoch ms) → time; `client_ip` → src_ip; `request.method`; `request.uri` (path and query)
→ resource, with secret-named query values replaced by `[redacted]`; `response.status`, `response.size`;
`request.headers.user-agent`. Kong 3.5+ writes `request.id`, also sent as the `x-kong-request-id` response
header; that (or a `kong-request-id`/`x-kong-request-id` request header) is the vendor id. Without one the
normalised entry is the `id_text`.

Credential: `authenticated_entity.id` is the id of the Kong credential (key-auth key, JWT, basic-auth,
OAuth2 token...) that authenticated the request → key `kong-credential:<id>`. Kong's serializer replaces
`request.headers.authorization` / `proxy-authorization` with `REDACTED`, but not an `apikey` header or query
parameter; any raw value found in a secret-named request header or query parameter is fingerprinted, and its
`sha256:`/`sha256/16:` keys join the same `CredentialRef` (they name the same secret, so the credential learns
both). If several distinct raw values are present, the first one (headers `apikey`, `x-api-key`,
`authorization`, `proxy-authorization`, then the query string) is taken and the others' `sha256/16:` keys are
listed in `extra["other_credentials"]`.

Principal = `consumer.username`, else `consumer.id`, else `authenticated_entity.consumer_id`. Client =
`consumer.custom_id` (the consumer's id in the operator's own system, usually the calling app); route and
service are what was called, so they go to `extra` (`route`, `service`), not to client. Actions: status 401/403
→ `auth.fail`; an authenticated request (a credential or a consumer) → `api.call`; else `other`.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote_plus

import ijson
import orjson

from casefile.formats import Format, SourceStream, chunk_of_lines, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, is_secret_field, normalise
from casefile.timeutil import TimeError, to_utc_iso
from connectors import gateway
from connectors._common import (
    JsonDepthScanner,
    PrefixedStream,
    as_dict,
    as_int,
    first_nonblank_byte,
    http_outcome,
    json_line_share,
    stream_json_items,
    text_reader,
    unreadable,
)
from connectors.act import SnapshotFn, take
from connectors.config import ConnectorSettings
from connectors.http import ConnectorClient, ConnectorError
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict

VENDOR = "kong"
REDACTED = "[redacted]"
MAX_RECORD_CHARS = 4_000_000
# Values a serializer or a redacting pipeline writes in place of a secret.
_PLACEHOLDERS = frozenset({"redacted", "[redacted]", "***", "<redacted>", "-", ""})
_HEADER_ORDER = ("apikey", "x-api-key", "authorization", "proxy-authorization")
_REQUEST_ID_HEADERS = ("x-kong-request-id", "kong-request-id")
_HEADER_KINDS = {"apikey": "api-key", "x-api-key": "api-key"}


# ---------------------------------------------------------------- fields


_s = text_reader()  # a usable string: None for absent and blank values
_d = as_dict
_int = as_int


def _header(headers: dict[str, Any], name: str) -> str | None:
    """A request/response header (Kong lower-cases names; a repeated header is a list: its first value)."""
    v = headers.get(name)
    if v is None:
        for k, val in headers.items():
            if isinstance(k, str) and k.lower() == name:
                v = val
                break
    if isinstance(v, list):
        v = next((x for x in v if isinstance(x, str)), None)
    return _s(v)


def _raw_values(request: dict[str, Any]) -> list[tuple[str, str]]:
    """(field name, raw value) of every secret-named header and query parameter that holds a value."""
    out: list[tuple[str, str]] = []
    headers = _d(request.get("headers"))
    names = list(_HEADER_ORDER) + sorted(k.lower() for k in headers if isinstance(k, str)
                                         and k.lower() not in _HEADER_ORDER and is_secret_field(k))
    for name in names:
        values = headers.get(name)
        if values is None:
            values = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None)
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, str) and v.strip().lower() not in _PLACEHOLDERS and normalise(v):
                out.append((name, v))
    for name, values in _d(request.get("querystring")).items():
        if not isinstance(name, str) or not is_secret_field(name):
            continue
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, str) and v.strip().lower() not in _PLACEHOLDERS and normalise(v):
                out.append((name.lower(), v))
    return out


def _redact_query(target: str) -> tuple[str, list[tuple[str, str]]]:
    """(target with secret-named query values replaced by `[redacted]`, the raw values removed)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target, []
    parts, found = [], []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and is_secret_field(unquote_plus(name)):
            raw = unquote_plus(value)
            if raw.strip().lower() not in _PLACEHOLDERS and normalise(raw):
                found.append((unquote_plus(name).lower(), raw))
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}", found


def _credential(entry: dict[str, Any], raws: list[tuple[str, str]], principal: str | None, client: str | None,
                extra: dict[str, Any]) -> CredentialRef | None:
    keys: list[str] = []
    kind = "unknown"
    preview = binding = None
    cred_id = _s(_d(entry.get("authenticated_entity")).get("id"))
    if cred_id:
        keys.append(f"kong-credential:{cred_id}")
    seen: dict[str, str] = {}
    for name, raw in raws:
        fp = fingerprint(raw)
        if fp.keys[0] in seen:
            continue
        seen[fp.keys[0]] = name
        if len(seen) == 1:
            keys.extend(fp.keys)
            scheme = raw.strip().split(" ", 1)[0].lower() if " " in raw.strip() else ""
            if fp.kind != "unknown":
                kind = fp.kind
            elif name in _HEADER_KINDS or "key" in name:
                kind = "api-key"
            elif scheme in ("bearer", "dpop"):
                kind = "access"
            preview = fp.preview or None
            binding = "dpop" if scheme == "dpop" else None
        else:
            extra.setdefault("other_credentials", []).append(fp.keys[1])
    if not keys:
        return None
    return CredentialRef(keys=tuple(keys), kind=kind, principal=principal, client=client, preview=preview,
                         binding=binding)


def _action(status: int | None, authenticated: bool) -> tuple[str, str]:
    if status in (401, 403):
        return "auth.fail", "failure"
    return ("api.call" if authenticated else "other"), http_outcome(status)


def _name(obj: Any) -> str | None:
    d = _d(obj)
    return _s(d.get("name")) or _s(d.get("id"))


def _event(line: int, entry: dict[str, Any]) -> Parsed | Problem:
    started = entry.get("started_at")
    if started is None or isinstance(started, bool):
        return Problem(line, "malformed", "no started_at (epoch ms) in the Kong log entry")
    try:
        when = to_utc_iso(started)
    except (TimeError, ValueError, OverflowError, OSError, TypeError):
        return Problem(line, "malformed", f"unreadable started_at {str(started)[:40]!r}")
    request, response = _d(entry.get("request")), _d(entry.get("response"))
    if not request and not response:
        return Problem(line, "malformed", "Kong log entry without request or response")
    extra: dict[str, Any] = {}
    uri = _s(request.get("uri"))
    resource, query_raws = _redact_query(uri) if uri else (None, [])
    consumer = _d(entry.get("consumer"))
    principal = (_s(consumer.get("username")) or _s(consumer.get("id"))
                 or _s(_d(entry.get("authenticated_entity")).get("consumer_id")))
    client = _s(consumer.get("custom_id"))
    raws = _raw_values(request)
    raws += [r for r in query_raws if r not in raws]
    credential = _credential(entry, raws, principal, client, extra)
    status = _int(response.get("status"))
    action, outcome = _action(status, credential is not None or principal is not None)

    headers = _d(request.get("headers"))
    request_id = _s(request.get("id"))
    if request_id is None:
        for name in _REQUEST_ID_HEADERS:
            request_id = _header(headers, name) or _header(_d(response.get("headers")), name)
            if request_id:
                break
    for key, value in (("route", _name(entry.get("route"))), ("service", _name(entry.get("service"))),
                       ("upstream_uri", _s(entry.get("upstream_uri"))),
                       ("upstream_status", _s(entry.get("upstream_status"))),
                       ("workspace", _s(entry.get("workspace_name")) or _s(entry.get("workspace"))),
                       ("source", _s(entry.get("source"))), ("host", _header(headers, "host")),
                       ("trace_id", _s(entry.get("trace_id"))), ("correlation_id", _s(entry.get("correlation_id")))):
        if value is not None:
            extra[key] = value
    latencies = {k: v for k, v in _d(entry.get("latencies")).items() if isinstance(v, int | float)}
    if latencies:
        extra["latencies_ms"] = latencies
    xff = _header(headers, "x-forwarded-for")
    if xff:
        extra["xff"] = xff
    method = _s(request.get("method"))
    event = Event(
        time=when,
        vendor=VENDOR,
        action=action,
        raw=entry,
        vendor_type="access",
        vendor_id=request_id,
        outcome=outcome,
        credential=credential,
        principal=principal,
        client=client,
        src_ip=_s(entry.get("client_ip")),
        user_agent=_header(headers, "user-agent"),
        method=method.upper() if method else None,
        resource=resource,
        status=status,
        bytes=_int(response.get("size")),
        request_id=request_id,
        extra=extra,
    )
    id_text = None if request_id else orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(line, event, id_text=id_text)


def _safe_event(line: int, obj: Any) -> Parsed | Problem:
    if not isinstance(obj, dict):
        return Problem(line, "malformed", f"a JSON {type(obj).__name__}, not a Kong log entry object")
    try:
        return _event(line, obj)
    except (ValueError, TypeError, AttributeError) as e:  # defence in depth: never raise on a record
        return Problem(line, "malformed", unreadable("Kong log entry", e))


# ---------------------------------------------------------------- shapes


def _records(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, Any] | Problem]:
    """(start line, value) for JSON lines and for pretty-printed objects; problems for what is neither."""
    buf: list[str] = []
    start = size = 0
    scan = JsonDepthScanner()
    for n, line in lines:
        if buf:
            if line[:1] == "{":  # a new top-level object while the previous one is open: that one was cut
                yield Problem(start, "malformed", f"JSON object not closed before line {n}")
                buf, scan = [], JsonDepthScanner()
            else:
                end = scan.feed(line)
                size += len(line)
                if size > MAX_RECORD_CHARS:
                    yield Problem(start, "malformed", f"JSON object longer than {MAX_RECORD_CHARS} characters")
                    buf, scan = [], JsonDepthScanner()
                    continue
                buf.append(line if end < 0 else line[:end])
                if end >= 0:
                    try:
                        yield start, orjson.loads("\n".join(buf))
                    except orjson.JSONDecodeError as e:
                        yield Problem(start, "malformed", f"invalid JSON ({str(e).split(':')[0]})")
                    buf = []
                continue
        text = line.strip()
        if not text:
            yield Problem(n, "skipped", "blank line")
            continue
        try:
            yield n, orjson.loads(text)
            continue
        except orjson.JSONDecodeError as e:
            if not text.startswith("{"):
                yield Problem(n, "malformed", f"invalid JSON ({str(e).split(':')[0]})")
                continue
        scan = JsonDepthScanner()
        if scan.feed(text) >= 0:  # closed on this line but unreadable
            yield Problem(n, "malformed", "invalid JSON object")
            continue
        buf, start, size = [text], n, len(text)
    if buf:
        yield Problem(start, "malformed", "JSON object not closed at the end of the input")


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Kong log entries from JSON lines, a batch array (items numbered 1, 2, … as "line") or pretty objects."""
    if chunk_of_lines(src):
        yield from _records_events(src)
        return
    fh = src.binary()
    try:
        head, first = first_nonblank_byte(fh)
        if first == b"[":
            yield from stream_json_items(
                ijson.items(io.BufferedReader(PrefixedStream(head, fh)), "item", use_float=True),
                lambda item, index: _safe_event(index, item),
                "JSON array truncated or broken after item {index}: {reason}",
            )
            return
    finally:
        fh.close()
    if first:
        yield from _records_events(src)


def _records_events(src: SourceStream) -> Iterator[Parsed | Problem]:
    for item in _records(src.lines()):
        if isinstance(item, Problem):
            yield item
        else:
            yield _safe_event(*item)


# ---------------------------------------------------------------- sniff

# Keys and values only Kong's serializer writes; a pretty-printed or batched head shows several of them.
_MARKERS = re.compile(
    r'"(started_at|upstream_uri|authenticated_entity|latencies|workspace_name|client_ip|tries|'
    r'x-kong-proxy-latency|x-kong-upstream-latency|x-kong-request-id|balancer_latency)"\s*:'
    r'|"via"\s*:\s*"[^"]*kong/\d'
)


def _looks_kong(obj: Any) -> bool:
    return (isinstance(obj, dict) and "started_at" in obj and isinstance(obj.get("request"), dict)
            and isinstance(obj.get("response"), dict)
            and any(k in obj for k in ("client_ip", "latencies", "upstream_uri", "authenticated_entity")))


def sniff(first_lines: list[str]) -> float:
    """Kong log entries: `started_at` with `request`/`response` objects and `client_ip`/`latencies`/`upstream_uri`
    (JSON lines), or at least three Kong-only keys in the head of an array or a pretty-printed object."""
    lines = [x for x in first_lines if x.strip()]
    if not lines:
        return 0.0
    first = lines[0].lstrip("\ufeff").strip()
    if first.startswith("{") and first.endswith("}"):
        share = json_line_share(lines, _looks_kong)
        return 0.9 * share if share >= 0.6 else 0.0
    if not first.startswith(("[", "{")):
        return 0.0
    text = "\n".join(lines)
    found = {m.group(1) or "via" for m in _MARKERS.finditer(text)}
    return 0.85 if len(found) >= 3 else 0.0


register(
    Format(
        name="kong-log",
        vendor=VENDOR,
        description="Kong Gateway log-plugin entries (file-log/http-log...): JSON lines, an http-log batch array, "
                    "or pretty-printed objects",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=json_lines,
    )
)


# ---------------------------------------------------------------- live API
#
# Kong Gateway Admin API, live: consumers and their credentials, find a leaked key, delete a credential,
# revoke an OAuth2 token, and probe that a credential is gone, through `ConnectorClient`.
#
# The client's base URL is the Admin API (`http://localhost:8001`, or a path prefix behind a proxy). Kong OSS
# declares no authentication on it (kong-oss.yaml has no security scheme: keep it on a private network);
# Kong Enterprise RBAC reads the `Kong-Admin-Token` header [K: not in the OSS spec], so the connector secret,
# when set, is sent there on every request. Listings page with `size` (1..1000) and the body's `offset`, sent
# back as `?offset=` (`ConnectorClient.paginate_cursor`).
#
# Credentials never leave this module raw. Kong answers credential objects *with their secrets* (key-auth
# `key` is the API key itself; jwt `secret`, hmac-auth `secret`, oauth2 `client_secret`, oauth2 token
# `access_token`/`refresh_token`, basic-auth `password` hash). `safe_credential` replaces each such field by
# `<field>_sha256` (the case's `sha256:` key, casefile.secrets.fingerprint) and `<field>_preview` (masked); every
# verb returns and snapshots only that. A leaked key is found by listing `/key-auths` and comparing
# fingerprints in memory (the Admin API has no `?key=` filter in 3.9; `GET /key-auths/{key}` would resolve it
# too, but it writes the raw key into the Admin API's access log and URL, so stanch does not use it).
#
# Verdicts (ARCHITECTURE §4): `probe_credential` is `revoked-verified` only when Kong answers the credential's
# GET with 404, `still-live` on 200 for the same id, else `revoked-unverified`. `probe_proxy` asks the gateway
# itself (through the proxy port) with the key: 401 is refused (`revoked-verified`), 2xx/3xx `still-live`.
#
# Pull: none. The Admin API has no event or change feed, and a credential carries no usage (only
# `created_at`, `ttl`), so an inventory pull would add objects, not evidence; the credential ↔ consumer ↔
# fingerprint link a responder needs is `find_key` / `list_credentials`, on demand. Usage comes from the
# log plugins (`kong-log`).

ADMIN_TOKEN_HEADER = "Kong-Admin-Token"  # noqa: S105  (a header name, not a secret)
#: credential plugin → (per-consumer collection, global collection or None)
CREDENTIAL_KINDS: dict[str, tuple[str, str | None]] = {
    "key-auth": ("key-auth", "key-auths"),
    "jwt": ("jwt", "jwts"),
    "basic-auth": ("basic-auth", "basic-auths"),
    "hmac-auth": ("hmac-auth", "hmac-auths"),
    "oauth2": ("oauth2", "oauth2"),
}
#: fields of Kong credential objects that hold a secret, per plugin ("oauth2_token" for /oauth2_tokens)
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "key-auth": ("key",),
    "jwt": ("secret",),
    "basic-auth": ("password",),
    "hmac-auth": ("secret",),
    "oauth2": ("client_secret",),
    "oauth2_token": ("access_token", "refresh_token"),
}
PAGE_SIZE = 1000  # Kong's maximum `size`
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~@:-]{0,253}")  # a Kong id or username as it goes into a path


def client_for(settings: ConnectorSettings, secret: str, **kwargs: Any) -> ConnectorClient:
    """A `ConnectorClient` for a `kong` connector: the secret, when set, goes as `Kong-Admin-Token`.

    `kwargs` are `ConnectorClient` options that override those taken from the settings."""
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
    }
    options.update(kwargs)
    header = {ADMIN_TOKEN_HEADER: secret} if secret else {}
    return ConnectorClient(settings.name, settings.url, auth_header=lambda: dict(header), **options)


def _seg(value: str, what: str) -> str:
    text = value.strip()
    if not _ID_RE.fullmatch(text):
        raise ValueError(f"{what} {value!r} is not a Kong id or name (letters, digits, '._~@:-')")
    return quote(text, safe="")


def _kind(kind: str) -> tuple[str, str | None]:
    if kind not in CREDENTIAL_KINDS:
        raise ValueError(f"unknown Kong credential kind {kind!r}; choose one of {', '.join(CREDENTIAL_KINDS)}")
    return CREDENTIAL_KINDS[kind]


def safe_credential(kind: str, obj: Any) -> dict[str, Any]:
    """The credential object with every secret field replaced by `<field>_sha256` and `<field>_preview`."""
    if not isinstance(obj, dict):
        return {}
    out: dict[str, Any] = {}
    secret_fields = SECRET_FIELDS.get(kind, ())
    for key, value in obj.items():
        if key in secret_fields:
            if isinstance(value, str) and value.strip():
                fp = fingerprint(value)
                out[f"{key}_sha256"] = fp.keys[0]
                out[f"{key}_preview"] = fp.preview
            continue
        out[key] = value
    return out


def credential_key(cred_id: str) -> str:
    """The case key of a Kong credential id, as the `kong-log` parser files `authenticated_entity.id`."""
    return f"kong-credential:{cred_id}"


# ------------------------------------------------------------------------------------------- reads


async def info(client: ConnectorClient) -> dict[str, Any]:
    """`GET /`: the node's version, edition, hostname, node id and plugins (without `configuration`)."""
    body = await client.get_json("/")
    return body if isinstance(body, dict) else {}


def whoami(settings: ConnectorSettings, secret: str, **client_options: Any) -> dict[str, Any]:
    """`stanch connector test` hook: the Kong node the Admin API answers for (non-secret facts only)."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret, **client_options) as client:
            body = await info(client)
        plugins = body.get("plugins") if isinstance(body.get("plugins"), dict) else {}
        enabled = plugins.get("enabled_in_cluster") if isinstance(plugins, dict) else None
        return {"version": body.get("version"), "edition": body.get("edition"), "hostname": body.get("hostname"),
                "node_id": body.get("node_id"), "tagline": body.get("tagline"),
                "plugins_enabled": enabled if isinstance(enabled, list) else None,
                "credential_plugins": sorted(k for k in CREDENTIAL_KINDS
                                             if isinstance(enabled, list) and k in enabled)}

    return asyncio.run(ask())


def _listing(client: ConnectorClient, path: str, *, max_pages: int | None, page_size: int,
             tags: str | None = None) -> AsyncIterator[Any]:
    params: dict[str, Any] = {"size": page_size}
    if tags:
        params["tags"] = tags
    return client.paginate_cursor(path, cursor_path="offset", cursor_param="offset", items_path="data",
                                  params=params, max_pages=max_pages)


async def list_consumers(client: ConnectorClient, *, tags: str | None = None, max_pages: int | None = None,
                         page_size: int = PAGE_SIZE) -> AsyncIterator[dict[str, Any]]:
    """`GET /consumers`, every page: `id`, `username`, `custom_id`, `created_at`, `tags`."""
    async for item in _listing(client, "/consumers", tags=tags, max_pages=max_pages, page_size=page_size):
        if isinstance(item, dict):
            yield item


async def list_credentials(client: ConnectorClient, kind: str, consumer: str | None = None, *,
                           max_pages: int | None = None, page_size: int = PAGE_SIZE
                           ) -> AsyncIterator[dict[str, Any]]:
    """A consumer's credentials of one plugin (`/consumers/{c}/key-auth`, …), or every consumer's through the
    global collection (`/key-auths`, `/jwts`, …) when `consumer` is None. Secrets are fingerprinted."""
    nested, flat = _kind(kind)
    if consumer is not None:
        path = f"/consumers/{_seg(consumer, 'consumer')}/{nested}"
    elif flat is not None:
        path = f"/{flat}"
    else:
        raise ValueError(f"Kong has no global collection for {kind}; name the consumer")
    async for item in _listing(client, path, max_pages=max_pages, page_size=page_size):
        if isinstance(item, dict):
            yield safe_credential(kind, item)


async def list_oauth2_tokens(client: ConnectorClient, *, max_pages: int | None = None,
                             page_size: int = PAGE_SIZE) -> AsyncIterator[dict[str, Any]]:
    """`GET /oauth2_tokens` (the oauth2 plugin's issued tokens), tokens fingerprinted. Not in the OSS spec."""
    async for item in _listing(client, "/oauth2_tokens", max_pages=max_pages, page_size=page_size):
        if isinstance(item, dict):
            yield safe_credential("oauth2_token", item)


async def find_key(client: ConnectorClient, raw_key: str, *, max_pages: int | None = None,
                   page_size: int = PAGE_SIZE) -> dict[str, Any] | None:
    """The key-auth credential whose key is `raw_key` (fingerprinted in memory, compared with every listed
    key's fingerprint), safe (no raw key), with `credential_key`; None when no key-auth credential matches.

    `raw_key` is held for this call only and never sent to Kong."""
    wanted = fingerprint(raw_key).keys[0]
    async for item in _listing(client, "/key-auths", max_pages=max_pages, page_size=page_size):
        if not isinstance(item, dict):
            continue
        key = item.get("key")
        if isinstance(key, str) and key.strip() and fingerprint(key).keys[0] == wanted:
            found = safe_credential("key-auth", item)
            found["credential_key"] = credential_key(str(item.get("id")))
            return found
    return None


async def get_credential(client: ConnectorClient, kind: str, consumer: str, cred_id: str) -> dict[str, Any]:
    """`GET /consumers/{c}/{plugin}/{id}`, secrets fingerprinted."""
    nested, _ = _kind(kind)
    body = await client.get_json(f"/consumers/{_seg(consumer, 'consumer')}/{nested}/{_seg(cred_id, 'credential id')}")
    return safe_credential(kind, body)


# ------------------------------------------------------------------------------------------- acts


async def delete_credential(client: ConnectorClient, kind: str, consumer: str, cred_id: str, *,
                            snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """Delete one credential (`DELETE /consumers/{c}/{plugin}/{id}`, 204). Snapshot first.

    The credential (secrets fingerprinted) goes to `snapshot("kong.credential", id, ...)` before the DELETE.
    Kong answers 204 whether or not it existed (spec), so follow with `probe_credential`."""
    nested, _ = _kind(kind)
    path = f"/consumers/{_seg(consumer, 'consumer')}/{nested}/{_seg(cred_id, 'credential id')}"
    before = safe_credential(kind, await client.get_json(path))
    before["plugin"] = kind
    take(snapshot, "kong.credential", cred_id, before)
    r = await client.request("DELETE", path)
    return {"snapshot": before, "status_code": r.status_code}


async def revoke_oauth2_token(client: ConnectorClient, token_id: str, *, snapshot: SnapshotFn | None = None
                              ) -> dict[str, Any]:
    """Revoke an oauth2-plugin token by its **id** (`DELETE /oauth2_tokens/{id}`). Snapshot first
    (`kong.oauth2_token`, tokens fingerprinted). Kong also accepts the access token itself in place of the id
    (`endpoint_key`); stanch sends the id so that no token travels in a URL."""
    path = f"/oauth2_tokens/{_seg(token_id, 'token id')}"
    before = safe_credential("oauth2_token", await client.get_json(path))
    take(snapshot, "kong.oauth2_token", token_id, before)
    r = await client.request("DELETE", path)
    return {"snapshot": before, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- probes


async def _probe_get(client: ConnectorClient, path: str, cred_id: str, what: str) -> Verdict:
    try:
        r = await client.request("GET", path, accept_status=(401, 403, 404))
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"GET {what} failed, nothing proven: {e}", http_status=e.status)
    if r.status_code == 404:
        return Verdict(REVOKED_VERIFIED, f"Kong answered GET {what} with 404: no such credential", http_status=404)
    if r.status_code == 200:
        try:
            body = client._json(r)
        except ConnectorError as e:
            return Verdict(REVOKED_UNVERIFIED, f"GET {what} answered 200 without JSON: {e}", http_status=200)
        if isinstance(body, dict) and body.get("id") == cred_id:
            return Verdict(STILL_LIVE, f"Kong still has {what} (created_at {body.get('created_at')})",
                           http_status=200)
        return Verdict(REVOKED_UNVERIFIED, f"GET {what} answered 200 for another object", http_status=200)
    return Verdict(REVOKED_UNVERIFIED, f"GET {what} answered {r.status_code}: the responder's Admin API access is "
                   "refused, so nothing is proven about the credential", http_status=r.status_code)


async def probe_credential(client: ConnectorClient, kind: str, consumer: str, cred_id: str) -> Verdict:
    """Is the credential gone from Kong? 404 on its GET proves it; 200 (same id) is `still-live`."""
    nested, _ = _kind(kind)
    path = f"/consumers/{_seg(consumer, 'consumer')}/{nested}/{_seg(cred_id, 'credential id')}"
    return await _probe_get(client, path, cred_id, f"{kind} credential {cred_id}")


async def probe_oauth2_token(client: ConnectorClient, token_id: str) -> Verdict:
    """Is the oauth2 token gone? 404 on `GET /oauth2_tokens/{id}` proves it."""
    return await _probe_get(client, f"/oauth2_tokens/{_seg(token_id, 'token id')}", token_id,
                            f"oauth2 token {token_id}")


async def probe_proxy(proxy: ConnectorClient, raw_credential: str, path: str, *, kind: str = "key-auth",
                      key_name: str = "apikey", in_query: bool = False) -> Verdict:
    """Ask the gateway itself: one read-only `GET path` through Kong's **proxy** with the credential.

    `proxy` is a `ConnectorClient` on the proxy URL without an auth header. jwt and oauth2 credentials are
    bearer tokens: this is `connectors.gateway.probe` (its verdict rules). A key-auth key goes in the header
    `key_name` (Kong's default `apikey`) or, with `in_query`, the query parameter of that name: 401 means Kong
    refused it (`revoked-verified`: revoked, expired or never valid alike), 2xx/3xx `still-live`, anything else
    (403 from an ACL, 404, 5xx, no answer) `revoked-unverified`. The key is scrubbed from journal and errors."""
    if kind in ("jwt", "oauth2"):
        return await gateway.probe(proxy, raw_credential, path, "Bearer")
    if kind != "key-auth":
        raise ValueError(f"probe_proxy cannot send a {kind} credential; use key-auth, jwt or oauth2")
    if not _HEADER_NAME.fullmatch(key_name):
        raise ValueError(f"{key_name!r} is not a header or parameter name")
    where = f"Kong proxy {proxy.name}: GET {path.split('?', 1)[0]}"
    try:
        if in_query:
            r = await proxy.request("GET", path, params={key_name: raw_credential}, secrets=[raw_credential],
                                    accept_status=_PROXY_ACCEPTED)
        else:
            r = await proxy.request("GET", path, auth={key_name: raw_credential}, accept_status=_PROXY_ACCEPTED)
    except ConnectorError as e:
        return _key_verdict(REVOKED_UNVERIFIED, f"{where} failed: {e}; not evidence either way", raw_credential,
                            e.status)
    status = r.status_code
    if status < 400:
        return _key_verdict(STILL_LIVE, f"{where} answered {status}: Kong still lets the key through", raw_credential,
                            status)
    if status == 401:
        return _key_verdict(REVOKED_VERIFIED, f"{where} answered 401: Kong refused the key (refused means revoked, "
                            "expired or never valid; Kong does not say which)", raw_credential, status)
    return _key_verdict(REVOKED_UNVERIFIED, f"{where} answered {status}: not a refusal of the key (an ACL or the "
                        "upstream may answer this); choose a path the key may read", raw_credential, status)


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_PROXY_ACCEPTED = tuple(s for s in range(400, 500) if s != 429)


def _key_verdict(status: str, evidence: str, raw: str, http_status: int | None = None) -> Verdict:
    if raw and raw in evidence:
        evidence = evidence.replace(raw, "[key]")
    return Verdict(status, evidence, http_status=http_status)



# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """Kong consumer credentials by id (`kong-credential:<id>`): deleted over the Admin API, no raw key needed."""
    for key in credential.get("keys") or []:
        if key.startswith("kong-credential:"):
            return RevokeHow("kong", "delete-credential", key.removeprefix("kong-credential:"), needs_raw_secret=False,
                             note="its consumer keeps its other credentials; probe through the proxy too")
    return None


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                  | target                                   | raw | act                  | probe                 |
# |-----------------------|------------------------------------------|-----|----------------------|-----------------------|
# | `delete-credential`   | `<credential id>` or `<kind>/<consumer>/<id>` | no | `delete_credential` | `probe_credential` |
# | `revoke-oauth2-token` | `<oauth2 token id>`                      | no  | `revoke_oauth2_token`| `probe_oauth2_token`  |
#
# The revocation set names a Kong credential by its id alone (what the `kong-log` parser sees). The act finds its
# plugin and consumer first, through the global collections (`GET /key-auths/{id}`, `/jwts/{id}`, …: each answers
# with the credential's `consumer.id`), then deletes it through `delete_credential`. The probe of a bare id needs a
# 404 from every global collection (the credential is in none of them); any still answering 200 is `still-live`.

from connectors import verbs as _verbs  # noqa: E402
from connectors.http import NotFoundError  # noqa: E402


async def locate_credential(client: ConnectorClient, cred_id: str) -> tuple[str, str]:
    """(plugin kind, consumer id) of the credential `cred_id`, from the global collections. Raises `NotFoundError`
    when no collection holds it."""
    seg = _seg(cred_id, "credential id")
    for kind, (_, flat) in CREDENTIAL_KINDS.items():
        if flat is None:
            continue
        r = await client.request("GET", f"/{flat}/{seg}", accept_status=(404,))
        if r.status_code == 404:
            continue
        body = client._json(r)
        consumer = body.get("consumer") if isinstance(body, dict) else None
        consumer_id = consumer.get("id") if isinstance(consumer, dict) else None
        if isinstance(body, dict) and body.get("id") == cred_id.strip() and isinstance(consumer_id, str):
            return kind, consumer_id
    raise NotFoundError(f"{client.name}: no Kong credential {cred_id} in any credential collection "
                        f"({', '.join(f for _, f in CREDENTIAL_KINDS.values() if f)}); already deleted?",
                        connector=client.name, status=404, method="GET")


def _credential_target(target: str) -> tuple[str | None, str | None, str]:
    parts = target.strip().split("/")
    if len(parts) == 3 and all(parts):
        _kind(parts[0])
        return parts[0], parts[1], parts[2]
    if len(parts) == 1 and parts[0]:
        return None, None, parts[0]
    raise ValueError(f"kong target {target!r} must be <credential id> or <kind>/<consumer>/<credential id>")


async def _act_delete_credential(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                 snapshot: SnapshotFn) -> dict[str, Any]:
    kind, consumer, cred_id = _credential_target(target)
    async with client_for(settings, secret) as client:
        if kind is None or consumer is None:
            kind, consumer = await locate_credential(client, cred_id)
        return _verbs.answer(await delete_credential(client, kind, consumer, cred_id, snapshot=snapshot),
                             plugin=kind, consumer=consumer)


async def _probe_delete_credential(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None
                                   ) -> Verdict:
    kind, consumer, cred_id = _credential_target(target)
    async with client_for(settings, secret) as client:
        if kind is not None and consumer is not None:
            return await probe_credential(client, kind, consumer, cred_id)
        seg = _seg(cred_id, "credential id")
        flats = [flat for _, flat in CREDENTIAL_KINDS.values() if flat]
        verdicts = [await _probe_get(client, f"/{flat}/{seg}", cred_id, f"/{flat}/{cred_id}") for flat in flats]
    live = next((v for v in verdicts if v.status == STILL_LIVE), None)
    if live is not None:
        return live
    unproven = next((v for v in verdicts if v.status != REVOKED_VERIFIED), None)
    if unproven is not None:
        return unproven
    return Verdict(REVOKED_VERIFIED, f"Kong answered 404 for credential {cred_id} in every credential collection "
                   f"({', '.join(flats)})", http_status=404)


async def _act_revoke_oauth2_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                   snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_oauth2_token(client, target.strip(), snapshot=snapshot))


async def _probe_oauth2_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        return await probe_oauth2_token(client, target.strip())


_verbs.register(VENDOR, "delete-credential", act=_act_delete_credential,
                probe=_verbs.guarded(_probe_delete_credential),
                description="delete a consumer credential (key-auth, jwt, basic-auth, hmac-auth, oauth2) by id")
_verbs.register(VENDOR, "revoke-oauth2-token", act=_act_revoke_oauth2_token, probe=_verbs.guarded(_probe_oauth2_token),
                description="delete an oauth2-plugin token by id")
