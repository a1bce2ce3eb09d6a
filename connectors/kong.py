"""kong connector: Kong Gateway log-plugin entries (parser registered on import).

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

import io
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote_plus

import ijson
import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, is_secret_field, normalise
from casefile.timeutil import TimeError, to_utc_iso
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
)

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
        return Problem(line, "malformed", f"unreadable Kong log entry ({type(e).__name__})")


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
    if not first:
        return
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
