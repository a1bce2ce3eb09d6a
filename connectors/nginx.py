"""nginx connector: the combined access log and JSON `log_format`s (parsers registered on import).

`nginx-combined` reads the nginx/Apache combined (and common) access log. `nginx-json` reads JSON lines
written by a `log_format ... escape=json`, such as stanch's gateway peer (`ir_json`, with `token_fp`, the
first 16 hex of the token's SHA-256), and similar formats that name their keys after nginx variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import orjson

from casefile.formats import Format, SourceStream, always, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, is_secret_field, normalise
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import as_int, http_outcome, unreadable

VENDOR = "nginx"
REDACTED = "[redacted]"

# ---------------------------------------------------------------- shared


def _redact_query(target: str) -> str:
    """`target` with the values of secret-named query parameters replaced by `[redacted]`."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        if eq and is_secret_field(unquote_plus(name)):
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


# Query parameters that name the kind of credential they carry.
_QUERY_KINDS = {"access_token": "access", "refresh_token": "refresh", "id_token": "id", "api_key": "api-key",
                "apikey": "api-key", "x-api-key": "api-key"}


def _query_credential(target: str) -> CredentialRef | None:
    """A credential carried in a secret-named query parameter (a misconfigured client), fingerprinted."""
    _path, sep, query = target.partition("?")
    if not sep:
        return None
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        name = unquote_plus(name)
        if not eq or not is_secret_field(name):
            continue
        raw = unquote_plus(value)
        if not normalise(raw) or raw == REDACTED:
            continue
        return _raw_credential(raw, _QUERY_KINDS.get(name.lower()))
    return None


def _raw_credential(raw: str, kind: str | None = None) -> CredentialRef:
    """A raw token met in a log line, turned into keys and a preview; the raw value is not kept."""
    fp = fingerprint(raw)
    binding = "dpop" if raw.strip().lower().startswith("dpop ") else None
    return CredentialRef(
        keys=fp.keys,
        kind=fp.kind if fp.kind != "unknown" else (kind or "access"),
        preview=fp.preview or None,
        binding=binding,
    )


def _fp_credential(value: Any) -> CredentialRef | None:
    """A gateway's token fingerprint: 16 hex → `sha256/16:`, 64 hex → `sha256:`; `-` or empty → none."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if re.fullmatch(r"[0-9a-f]{64}", v):
        return CredentialRef(keys=(f"sha256:{v}",), kind="access")
    if re.fullmatch(r"[0-9a-f]{16}", v):
        return CredentialRef(keys=(f"sha256/16:{v}",), kind="access")
    return None


def _action(status: int | None, credential: CredentialRef | None, principal: str | None) -> tuple[str, str]:
    """(action, outcome) of one request: refused → `auth.fail`, authenticated → `api.call`, else `other`."""
    if status in (401, 403):
        return "auth.fail", "failure"
    return ("api.call" if credential or principal else "other"), http_outcome(status)


_int = as_int


def _dash(value: Any) -> str | None:
    """nginx writes `-` (and JSON formats often `""`) for an empty variable."""
    if value is None:
        return None
    text = str(value)
    return None if text in ("", "-") else text


_REQUEST = re.compile(r"^(?P<method>[A-Za-z][A-Za-z0-9_-]*) (?P<target>.+?)(?: (?P<proto>HTTP/\d+(?:\.\d+)?))?$")


def _split_request(request: str) -> tuple[str | None, str | None, str | None]:
    """`GET /x HTTP/1.1` → (method, target, protocol); garbage (`-`, TLS bytes) → (None, None, None)."""
    m = _REQUEST.match(request)
    if not m:
        return None, None, None
    return m.group("method").upper(), m.group("target"), m.group("proto")


# ---------------------------------------------------------------- nginx-combined

_Q = r'"((?:[^"\\]|\\.)*)"'
_COMBINED = re.compile(
    r"^(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    + _Q.replace("(", "(?P<request>", 1)
    + r" (?P<status>\d{3}|-) (?P<bytes>\d+|-)"
    + r"(?: " + _Q.replace("(", "(?P<referer>", 1) + r"(?: (?P<ua_rest>.*))?)?$"
)
# The user agent, then any fields a log_format appends (nginx `main` adds "$http_x_forwarded_for").
_UA_REST = re.compile(r'^"(?P<ua>(?:[^"\\]|\\.)*)(?P<close>"?)(?P<trailing>.*)$')
_TRAILING_Q = re.compile(_Q)


def _unescape(text: str) -> str:
    # Apache escapes `"` and `\` with a backslash; nginx writes `\xXX`, which is kept as logged.
    return text.replace('\\"', '"').replace("\\\\", "\\")


def sniff_combined(first_lines: list[str]) -> float:
    """Share of lines that are combined (or common) access-log lines; JSON lines never count."""
    lines = [x for x in first_lines if x.strip()]
    if not lines:
        return 0.0
    hits = 0
    for line in lines:
        if line.lstrip().startswith(("{", "[")):
            continue
        m = _COMBINED.match(line)
        if m and _time(m.group("time")):
            hits += 1
    share = hits / len(lines)
    return 0.9 * share if share >= 0.6 else 0.0


def _time(value: str | int | float) -> str | None:
    try:
        return to_utc_iso(value)
    except (TimeError, ValueError, OverflowError, OSError):
        return None


def parse_combined(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Combined/common access-log lines → `Event`s; the raw line is kept for the case file to redact."""
    for lineno, line in src.lines():
        if not line.strip():
            yield Problem(lineno, "skipped", "blank line")
            continue
        try:
            yield _combined_line(lineno, line)
        except (ValueError, TypeError, AttributeError) as e:  # defence in depth: never raise on a line
            yield Problem(lineno, "malformed", unreadable("access-log line", e))


def _combined_line(lineno: int, line: str) -> Parsed | Problem:
    text = line.rstrip()
    m = _COMBINED.match(text)
    if not m:
        return Problem(lineno, "malformed", "not a combined access-log line (expected: ip - user [time] \"request\" status bytes ...)")
    when = _time(m.group("time"))
    if when is None:
        return Problem(lineno, "malformed", f"unreadable time [{m.group('time')[:40]}]")
    extra: dict[str, Any] = {}
    request = _unescape(m.group("request"))
    method, target, proto = _split_request(request)
    if target is None and request not in ("", "-"):
        extra["request"] = _redact_query(request)
    if proto:
        extra["protocol"] = proto
    referer = _dash(m.group("referer"))
    if referer is not None:
        extra["referer"] = _redact_query(_unescape(referer))
    ua = None
    if m.group("ua_rest") is not None:
        r = _UA_REST.match(m.group("ua_rest"))
        if r is None:
            return Problem(lineno, "malformed", "user agent field is not quoted")
        ua = _dash(_unescape(r.group("ua")))
        if not r.group("close"):
            extra["truncated"] = "user_agent"  # the line was cut inside the last field
        trailing = r.group("trailing").strip()
        if trailing:
            quoted = _TRAILING_Q.fullmatch(trailing)
            if quoted:
                xff = _dash(_unescape(quoted.group(1)))
                if xff is not None:
                    extra["xff"] = xff
            else:
                extra["trailing"] = trailing
    principal = _dash(m.group("user"))
    credential = _query_credential(target) if target else None
    status = _int(m.group("status"))
    # Apache's %b writes `-` for no body; nginx writes 0.
    nbytes = 0 if m.group("bytes") == "-" else _int(m.group("bytes"))
    action, outcome = _action(status, credential, principal)
    event = Event(
        time=when,
        vendor=VENDOR,
        action=action,
        raw=line,
        vendor_type="access",
        outcome=outcome,
        credential=credential,
        principal=principal,
        src_ip=_dash(m.group("ip")),
        user_agent=ua,
        method=method,
        resource=_redact_query(target) if target else None,
        status=status,
        bytes=nbytes,
        extra=extra,
    )
    return Parsed(lineno, event, id_text=text)


# ---------------------------------------------------------------- nginx-json

# Keys named after nginx variables (or the gateway peer's own): at least two of them, or `remote_addr`
# with a URI and a status, make a JSON line an nginx access-log line. Okta, Vault, Envoy, Kong and
# CloudTrail records use none of these names.
_NGINX_KEYS = frozenset(
    {"remote_addr", "remote_user", "request_uri", "request_method", "http_user_agent", "http_referer",
     "http_x_forwarded_for", "body_bytes_sent", "bytes_sent", "request_time", "upstream_status",
     "upstream_addr", "upstream_response_time", "time_iso8601", "time_local", "token_fp", "token_tail",
     "token_active", "server_name", "request_length"}
)
_TIME_KEYS = ("time", "time_iso8601", "time_local", "timestamp", "@timestamp", "msec")
_URI_KEYS = ("uri", "request_uri", "path", "url")
_IP_KEYS = ("remote_addr", "client_ip", "ip")
_UA_KEYS = ("user_agent", "http_user_agent", "ua", "agent")
_BYTES_KEYS = ("body_bytes_sent", "bytes", "bytes_sent", "size")
_XFF_KEYS = ("xff", "http_x_forwarded_for", "x_forwarded_for")
_RT_KEYS = ("request_time", "rt", "duration")
_REFERER_KEYS = ("http_referer", "referer", "referrer")
# A raw credential logged by mistake (`$http_authorization`, `$http_x_api_key`).
_RAW_AUTH_KEYS = ("http_authorization", "authorization", "auth", "http_x_api_key", "x_api_key", "api_key")
_EXTRA_KEYS = {"upstream_status": "upstream_status", "upstream_addr": "upstream_addr",
               "upstream_response_time": "upstream_response_time", "urt": "upstream_response_time",
               "upstream": "upstream_addr", "token_active": "token_active", "host": "host",
               "server_name": "host", "server_protocol": "protocol", "protocol": "protocol"}


def _first(rec: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = rec.get(k)
        if v is not None and v != "" and v != "-":
            return v
    return None


_DASH_VALUE = re.compile(r":\s*-\s*(?=[,}])")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")


def _lenient(line: str) -> str:
    """Repair what nginx writes into a JSON template: `:-,`/`:-}` from an unquoted empty number, and
    `\\xXX` escapes from a format without `escape=json`. Only text outside strings is touched for `-`."""
    out: list[str] = []
    i, n, in_str = 0, len(line), False
    while i < n:
        c = line[i]
        if in_str:
            if c == "\\" and i + 1 < n:
                if line[i + 1] == "x" and _HEX2.fullmatch(line[i + 2:i + 4]):
                    out.append("\\u00" + line[i + 2:i + 4])
                    i += 4
                    continue
                out.append(line[i:i + 2])
                i += 2
                continue
            if c == '"':
                in_str = False
            out.append(c)
        elif c == '"':
            in_str = True
            out.append(c)
        elif c == ":":
            m = _DASH_VALUE.match(line, i)
            if m:
                out.append(":null")
                i = m.end()
                continue
            out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _load(line: str) -> tuple[dict[str, Any] | None, str]:
    """(record, "") or (None, reason)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        try:
            obj = orjson.loads(_lenient(line))
        except orjson.JSONDecodeError:
            return None, f"invalid JSON ({str(e).split(':')[0]})"
    if not isinstance(obj, dict):
        return None, f"a JSON {type(obj).__name__}, not an object"
    return obj, ""


# haproxy's JSON log-format (test-peers §5b) shares `remote_addr` and `token_fp`; its timer and
# termination fields are haproxy's alone.
_HAPROXY_KEYS = frozenset({"tt_ms", "tr_ms", "tw_ms", "tc_ms", "ta_ms", "termination_state", "frontend", "backend"})


def _looks_nginx(rec: dict[str, Any]) -> bool:
    if not _HAPROXY_KEYS.isdisjoint(rec):
        return False
    named = sum(1 for k in rec if k in _NGINX_KEYS)
    if named >= 2:
        return True
    return "remote_addr" in rec and "status" in rec and any(isinstance(rec.get(k), str) for k in _URI_KEYS)


def sniff_json(first_lines: list[str]) -> float:
    """Share of lines that are JSON objects keyed like nginx variables (`remote_addr`, `request_uri`, `token_fp`...)."""
    lines = [x for x in first_lines if x.strip()]
    if not lines:
        return 0.0
    hits = 0
    for line in lines:
        if not line.lstrip().startswith("{"):
            continue
        rec, _ = _load(line)
        if rec is not None and _looks_nginx(rec) and _first(rec, _TIME_KEYS) is not None:
            hits += 1
    share = hits / len(lines)
    return 0.9 * share if share >= 0.6 else 0.0


def parse_json(src: SourceStream) -> Iterator[Parsed | Problem]:
    """JSON access-log lines → `Event`s; `raw` is the record (the case file redacts it)."""
    for lineno, line in src.lines():
        if not line.strip():
            yield Problem(lineno, "skipped", "blank line")
            continue
        try:
            yield _json_line(lineno, line)
        except (ValueError, TypeError, AttributeError) as e:  # defence in depth: never raise on a line
            yield Problem(lineno, "malformed", unreadable("JSON access-log record", e))


# stanch's own gateway format (`ir_json`, test-peers §4, plus `bytes`): the common case gets a direct path.
_IR_KEYS = frozenset({"time", "remote_addr", "method", "uri", "status", "user_agent", "token_fp", "token_tail",
                      "token_active", "upstream_status", "request_time", "request_id", "bytes"})
_HEX16 = re.compile(r"[0-9a-f]{16}")


def _ir_line(lineno: int, rec: dict[str, Any]) -> Parsed | None:
    """The gateway's own line read directly; None hands anything unusual to the general path."""
    t, ip, method, uri, status = rec.get("time"), rec.get("remote_addr"), rec.get("method"), rec.get("uri"), rec.get("status")
    if (t.__class__ is not str or ip.__class__ is not str or method.__class__ is not str or uri.__class__ is not str
            or status.__class__ is not int):
        return None
    when = _time(t)
    if when is None:
        return None
    fp = rec.get("token_fp")
    credential = (CredentialRef(keys=(f"sha256/16:{fp}",), kind="access")
                  if fp.__class__ is str and _HEX16.fullmatch(fp) else _fp_credential(fp))
    if "?" in uri:
        if credential is None:
            credential = _query_credential(uri)
        uri = _redact_query(uri)
    action, outcome = _action(status, credential, None)
    extra: dict[str, Any] = {}
    for key in ("upstream_status", "token_active"):
        v = rec.get(key)
        if v not in (None, "", "-"):
            extra[key] = v
    rt = rec.get("request_time")
    if rt.__class__ in (int, float):
        extra["request_time"] = rt
    request_id = rec.get("request_id")
    request_id = request_id if request_id.__class__ is str and request_id not in ("", "-") else None
    ua = rec.get("user_agent")
    nbytes = rec.get("bytes")
    event = Event(
        time=when, vendor=VENDOR, action=action, raw=rec, vendor_type="access", vendor_id=request_id,
        outcome=outcome, credential=credential, src_ip=ip if ip not in ("", "-") else None,
        user_agent=ua if ua.__class__ is str and ua not in ("", "-") else None, method=method.upper(),
        resource=uri, status=status, bytes=nbytes if nbytes.__class__ is int else None, request_id=request_id,
        extra=extra,
    )
    return Parsed(lineno, event, id_text=None if request_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode())


def _json_line(lineno: int, line: str) -> Parsed | Problem:
    rec, why = _load(line.strip())
    if rec is None:
        return Problem(lineno, "malformed", why)
    if rec.keys() <= _IR_KEYS:
        fast = _ir_line(lineno, rec)
        if fast is not None:
            return fast
    t = _first(rec, _TIME_KEYS)
    if t is None:
        return Problem(lineno, "malformed", f"no time (expected one of: {', '.join(_TIME_KEYS)})")
    when = _time(t) if isinstance(t, str | int | float) else None
    if when is None:
        return Problem(lineno, "malformed", f"unreadable time {str(t)[:40]!r}")

    method = _first(rec, ("method", "request_method"))
    target = _first(rec, _URI_KEYS)
    proto = None
    request = _first(rec, ("request",))
    if isinstance(request, str) and (method is None or target is None):
        m2, t2, proto = _split_request(request)
        method, target = method or m2, target or t2
    method = method.upper() if isinstance(method, str) else None
    target = target if isinstance(target, str) else None

    credential = _fp_credential(rec.get("token_fp"))
    extra: dict[str, Any] = {}
    for key in _RAW_AUTH_KEYS:
        raw_auth = _dash(rec.get(key)) if isinstance(rec.get(key), str) else None
        if raw_auth and normalise(raw_auth):
            raw_cred = _raw_credential(raw_auth)
            if credential is None:
                credential = raw_cred
            else:  # the gateway's fingerprint and the raw value name one secret: keep every key
                credential.keys = tuple(dict.fromkeys(credential.keys + raw_cred.keys))
                credential.preview = raw_cred.preview
            extra["warning"] = f"raw credential logged in `{key}`; rotate it and stop logging that field"
            break
    if credential is None and target:
        credential = _query_credential(target)

    status = _int(rec.get("status"))
    principal = _dash(rec.get("remote_user"))
    action, outcome = _action(status, credential, principal)

    xff = _first(rec, _XFF_KEYS)
    if xff is not None:
        extra["xff"] = str(xff)
    rt = _first(rec, _RT_KEYS)
    if isinstance(rt, int | float) and not isinstance(rt, bool):
        extra["request_time"] = rt
    referer = _first(rec, _REFERER_KEYS)
    if isinstance(referer, str):
        extra["referer"] = _redact_query(referer)
    for key, name in _EXTRA_KEYS.items():
        v = _dash(rec.get(key))
        if v is not None and name not in extra:
            extra[name] = v
    if proto and "protocol" not in extra:
        extra["protocol"] = proto

    request_id = _dash(rec.get("request_id"))
    ua = _first(rec, _UA_KEYS)
    ip = _first(rec, _IP_KEYS)
    event = Event(
        time=when,
        vendor=VENDOR,
        action=action,
        raw=rec,
        vendor_type="access",
        vendor_id=request_id,
        outcome=outcome,
        credential=credential,
        principal=principal,
        src_ip=str(ip) if ip is not None else None,
        user_agent=ua if isinstance(ua, str) else None,
        method=method,
        resource=_redact_query(target) if target else None,
        status=status,
        bytes=_int(_first(rec, _BYTES_KEYS)),
        request_id=request_id,
        extra=extra,
    )
    id_text = None if request_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(lineno, event, id_text=id_text)


register(
    Format(
        name="nginx-combined",
        vendor=VENDOR,
        description="nginx/Apache combined access log ($remote_addr - $remote_user [$time_local] \"$request\" ...)",
        parse=parse_combined,
        sniff=sniff_combined,
        version="1",
        splittable=always,
    )
)
register(
    Format(
        name="nginx-json",
        vendor=VENDOR,
        description="nginx JSON access log (log_format escape=json; the gateway peer's ir_json with token_fp)",
        parse=parse_json,
        sniff=sniff_json,
        version="1",
        splittable=json_lines,
    )
)
