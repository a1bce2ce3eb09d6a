"""haproxy connector: JSON access logs written by a hand-made `log-format` (parser registered on import).

Format `haproxy-json`: one JSON object per line, as set up in test-peers.md §5b (haproxy 2.6 has no native JSON
log, so the object is written by hand with the `json(utf8s)` converter):

    {"time":"%[date,ltime(%Y-%m-%dT%H:%M:%S%z)]","remote_addr":"%ci","method":"%HM",
     "uri":"%[capture.req.uri,json(utf8s)]","status":%ST,"user_agent":"%[var(txn.ua),json(utf8s)]",
     "token_fp":"%[var(txn.token_fp)]","bytes":%B,"tt_ms":%Tt}

`token_fp` is haproxy's native `req.hdr(authorization),word(2,' '),sha2(256),bytes(0,8),hex,lower`: the first
16 hex of the SHA-256 of the word after the scheme, which is stanch's `sha256/16:` key of the token (the same
function `casefile.secrets.fingerprint` applies after stripping `Bearer `/`DPoP `). A 64-hex value (a format
that keeps the whole digest) becomes a `sha256:` key. `-` means no Authorization header. A header with no
scheme word makes `word(2)` empty, and haproxy then logs the fingerprint of the empty string
(`e3b0c44298fc1c14`): that names no token, so it gives no credential and a warning in `extra`.

Other haproxy-named keys a site may add are read too: `frontend`/`backend`/`server` (`%f`/`%b`/`%s`),
`termination_state` (`%ts`), `request_id`/`unique_id` (`%ID`, then the vendor id), `xff`, and the timers
`tr_ms`/`tw_ms`/`tc_ms`. haproxy logs a connection that sent no request as method `<BADREQ>` with uri `-`:
that is kept as an event without method or resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, is_secret_field, normalise
from connectors._common import dash_none, http_outcome, json_line_share, unreadable, utc_time_or_none

VENDOR = "haproxy"
REDACTED = "[redacted]"
# sha256("")[:16] and in full: what `word(2,' ')` hashes when the header has no scheme word.
EMPTY_FP16 = "e3b0c44298fc1c14"
EMPTY_FP64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# Keys only a haproxy log-format uses (timers named after %Tt/%Tr/%Tw/%Tc, %ts, %f/%b).
_HAPROXY_KEYS = frozenset({"tt_ms", "tr_ms", "tw_ms", "tc_ms", "ta_ms", "termination_state", "frontend",
                           "backend", "frontend_name", "backend_name"})
_HEX = re.compile(r"[0-9a-f]{16}|[0-9a-f]{64}")
# `%Y-%m-%dT%H:%M:%S%z`: strftime's offset has no colon (nginx's $time_iso8601 has one).
_STRFTIME_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d{4}$")
_EXTRA_KEYS = ("frontend", "backend", "server", "termination_state", "tt_ms", "tr_ms", "tw_ms", "tc_ms", "ta_ms",
               "xff", "host", "protocol")


_dash = dash_none


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _redact_query(target: str) -> tuple[str, CredentialRef | None]:
    """(target with secret-named query values replaced by `[redacted]`, the first such value fingerprinted)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target, None
    parts, cred = [], None
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and is_secret_field(unquote_plus(name)):
            raw = unquote_plus(value)
            if cred is None and normalise(raw) and raw != REDACTED:
                fp = fingerprint(raw)
                cred = CredentialRef(keys=fp.keys, kind=fp.kind if fp.kind != "unknown" else "access",
                                     preview=fp.preview or None)
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}", cred


def _fp_credential(value: Any, extra: dict[str, Any]) -> CredentialRef | None:
    """haproxy's `token_fp`: 16 hex → `sha256/16:`, 64 hex → `sha256:`; `-`/empty → none; sha256("") → warning."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if not _HEX.fullmatch(v):
        return None
    if v in (EMPTY_FP16, EMPTY_FP64):
        extra["warning"] = "token_fp is the SHA-256 of an empty string: Authorization had no scheme word"
        return None
    return CredentialRef(keys=(f"sha256:{v}" if len(v) == 64 else f"sha256/16:{v}",), kind="access")


def _action(status: int | None, credential: CredentialRef | None) -> tuple[str, str]:
    if status in (401, 403):
        return "auth.fail", "failure"
    return ("api.call" if credential else "other"), http_outcome(status)


_time = utc_time_or_none


def _event(lineno: int, rec: dict[str, Any]) -> Parsed | Problem:
    raw_time = _dash(rec.get("time"))
    if raw_time is None:
        return Problem(lineno, "malformed", "no time (expected key `time`)")
    when = _time(raw_time)
    if when is None:
        return Problem(lineno, "malformed", f"unreadable time {str(raw_time)[:40]!r}")
    extra: dict[str, Any] = {}
    method = _dash(rec.get("method"))
    if not isinstance(method, str) or method.startswith("<"):  # <BADREQ>, <NOSRV>: no request line
        if isinstance(method, str):
            extra["request"] = method
        method = None
    uri = _dash(rec.get("uri"))
    resource, query_cred = _redact_query(uri) if isinstance(uri, str) else (None, None)
    credential = _fp_credential(rec.get("token_fp"), extra)
    if credential is None:
        credential = query_cred
    status = _int(rec.get("status"))
    action, outcome = _action(status, credential)
    for key in _EXTRA_KEYS:
        v = _dash(rec.get(key))
        if v is not None:
            extra[key] = v
    request_id = _dash(rec.get("request_id")) or _dash(rec.get("unique_id"))
    request_id = str(request_id) if request_id is not None else None
    ua, ip = _dash(rec.get("user_agent")), _dash(rec.get("remote_addr"))
    event = Event(
        time=when,
        vendor=VENDOR,
        action=action,
        raw=rec,
        vendor_type="access",
        vendor_id=request_id,
        outcome=outcome,
        credential=credential,
        src_ip=str(ip) if ip is not None else None,
        user_agent=ua if isinstance(ua, str) else None,
        method=method.upper() if method else None,
        resource=resource,
        status=status,
        bytes=_int(rec.get("bytes")),
        request_id=request_id,
        extra=extra,
    )
    id_text = None if request_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(lineno, event, id_text=id_text)


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """haproxy JSON log lines → `Event`s; `raw` is the record (the case file redacts it)."""
    for lineno, line in src.lines():
        text = line.strip()
        if not text:
            yield Problem(lineno, "skipped", "blank line")
            continue
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            yield Problem(lineno, "malformed", f"invalid JSON ({str(e).split(':')[0]})")
            continue
        if not isinstance(rec, dict):
            yield Problem(lineno, "malformed", f"a JSON {type(rec).__name__}, not an object")
            continue
        try:
            yield _event(lineno, rec)
        except (ValueError, TypeError, AttributeError) as e:  # defence in depth: never raise on a line
            yield Problem(lineno, "malformed", unreadable("haproxy record", e))


def looks_haproxy(rec: dict[str, Any]) -> bool:
    """A haproxy log-format record: a haproxy-only key (`tt_ms`, `termination_state`, `frontend`...), or the
    §5b key set (`remote_addr` + `token_fp`) with strftime's colon-less offset in `time`."""
    if not isinstance(rec.get("remote_addr", rec.get("client_ip")), str):
        return False
    if any(k in rec for k in _HAPROXY_KEYS):
        return True
    t = rec.get("time")
    return "token_fp" in rec and isinstance(t, str) and bool(_STRFTIME_ISO.match(t))


def sniff(first_lines: list[str]) -> float:
    """Share of lines that are haproxy log-format JSON objects (see `looks_haproxy`)."""
    lines = [x for x in first_lines if x.strip()]
    if not lines:
        return 0.0
    share = json_line_share(
        lines, lambda rec: isinstance(rec, dict) and looks_haproxy(rec) and rec.get("time") is not None
    )
    return 0.95 * share if share >= 0.6 else 0.0


register(
    Format(
        name="haproxy-json",
        vendor=VENDOR,
        description="haproxy JSON access log (hand-made log-format with a native sha2(256) token_fp; test-peers §5b)",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=json_lines,
    )
)
