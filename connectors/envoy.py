"""envoy connector: Envoy access logs, text and JSON (parser registered on import).

Format `envoy-access` reads, line by line (connectors.md §6.2):

* the **default text format**
  `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%
  %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%"
  "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`, optionally prefixed `ACCESS `
  (Ambassador/Emissary), and Istio's longer text format (response-code details, connection-termination details
  and the transport failure reason after the flags; upstream cluster, local/remote addresses, SNI and route name
  at the end). TCP proxy lines (`"- - -"`, status 0) are events without method or resource.
* **JSON access logs** (`json_format`/`typed_json_format`) keyed after the operators, as Istio's preset does:
  `start_time`, `method`, `path`, `protocol`, `response_code`, `response_flags`, `bytes_received`, `bytes_sent`,
  `duration`, `x_forwarded_for`, `user_agent`, `request_id`, `authority`, `upstream_host`, `upstream_cluster`,
  `downstream_remote_address`, `route_name`... `-` and `null` are unset values.
* either of them **wrapped by container logging**: `{"log": "<line>", "stream": "stdout", "time": ...}` (Docker
  json-file / Kubernetes) or `{"message": "<line>", ...}` (Filebeat/Elastic). `raw` is then the whole wrapper.

Choices: `vendor_id` = `request_id` (x-request-id) when present; otherwise `Parsed.id_text` is the envoy line itself
(the inner line for a wrapped one, so the same line read bare or wrapped names the same event). `src_ip` is
`downstream_remote_address` (port removed) when logged; else the **last** X-Forwarded-For entry, the one the
nearest proxy appended (Envoy at the edge with `use_remote_address` appends the peer it saw); the full header is
kept in `extra["xff"]`. The default format carries no credential. A JSON format that logs a secret-named header
(`authorization`, `x_api_key`...) has it fingerprinted into the credential's keys, with a warning. Actions:
401/403 or the `UAEX` flag (denied by ext_authz) → `auth.fail`; a request with a credential → `api.call`; else
`other`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from casefile.formats import Format, SourceStream, always, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, is_secret_field, normalise
from connectors._common import (
    as_int,
    dash_none,
    host_without_port,
    http_outcome,
    unreadable,
    utc_time_or_none,
)

VENDOR = "envoy"

_TEXT = re.compile(
    r"^(?:ACCESS )?\[(?P<time>[^\]]+)\] "
    r'"(?P<method>\S+) (?P<path>\S+) (?P<proto>[^"]*)" '
    r"(?P<code>\d{1,3}|-) (?P<flags>\S+) "
    r'(?:(?P<details>\S+) (?P<term>\S+) "(?P<utfr>[^"]*)" )?'
    r"(?P<rx>\d+|-) (?P<tx>\d+|-) (?P<dur>\d+|-) (?P<ust>\S+) "
    r'"(?P<xff>[^"]*)" "(?P<ua>.*)" "(?P<rid>[^"]*)" "(?P<authority>[^"]*)" "(?P<upstream>[^"]*)"'
    r"(?: (?P<cluster>\S+) (?P<ulocal>\S+) (?P<dlocal>\S+) (?P<dremote>\S+) (?P<sni>\S+) (?P<route>\S+))?"
    r"\s*$"
)
# Keys of a JSON access log named after Envoy's operators; three of them (with a start time) make one.
_JSON_KEYS = frozenset({"start_time", "response_code", "response_flags", "bytes_received", "bytes_sent",
                        "upstream_host", "upstream_cluster", "downstream_remote_address",
                        "downstream_local_address", "x_forwarded_for", "authority", "upstream_service_time",
                        "response_code_details", "route_name", "requested_server_name", "upstream_local_address",
                        "connection_termination_details", "upstream_transport_failure_reason"})
_EXTRA = {"protocol": "protocol", "response_flags": "response_flags", "response_code_details": "response_code_details",
          "connection_termination_details": "connection_termination_details",
          "upstream_transport_failure_reason": "upstream_transport_failure_reason", "bytes_received": "bytes_received",
          "duration": "duration_ms", "upstream_service_time": "upstream_service_time_ms", "authority": "authority",
          "upstream_host": "upstream_host", "upstream_cluster": "upstream_cluster",
          "upstream_local_address": "upstream_local_address", "downstream_local_address": "downstream_local_address",
          "requested_server_name": "sni", "route_name": "route"}
_TEXT_EXTRA = {"proto": "protocol", "flags": "response_flags", "details": "response_code_details",
               "term": "connection_termination_details", "utfr": "upstream_transport_failure_reason",
               "rx": "bytes_received", "dur": "duration_ms", "ust": "upstream_service_time_ms",
               "authority": "authority", "upstream": "upstream_host", "cluster": "upstream_cluster",
               "ulocal": "upstream_local_address", "dlocal": "downstream_local_address", "sni": "sni",
               "route": "route"}
_NUMERIC = frozenset({"bytes_received", "duration_ms", "upstream_service_time_ms"})
_WRAPPER_KEYS = ("log", "message")


_dash = dash_none
_int = as_int
_strip_port = host_without_port
_time = utc_time_or_none


def _action(status: int | None, flags: str | None, credential: CredentialRef | None) -> tuple[str, str]:
    """(action, outcome): 401/403 or ext_authz's `UAEX` → `auth.fail`; with a credential `api.call`; else `other`."""
    if status in (401, 403) or (flags and "UAEX" in flags.split(",")):
        return "auth.fail", "failure"
    # 0 (TCP, or no response was sent) is `unknown`
    return ("api.call" if credential else "other"), http_outcome(status)


def _build(lineno: int, raw: dict[str, Any] | str, f: dict[str, Any], id_line: str, extra: dict[str, Any]
           ) -> Parsed | Problem:
    """An event from the fields of one envoy line (`f`: canonical names, unset values already None)."""
    raw_time = f.get("time")
    if raw_time is None:
        return Problem(lineno, "malformed", "no start time (expected `[%START_TIME%]` or key `start_time`)")
    when = _time(raw_time)
    if when is None:
        return Problem(lineno, "malformed", f"unreadable start time {str(raw_time)[:40]!r}")
    method = f.get("method")
    xff = f.get("xff")
    src_ip = f.get("downstream")
    if isinstance(src_ip, str):
        src_ip = _strip_port(src_ip)
    elif isinstance(xff, str):
        src_ip = xff.split(",")[-1].strip() or None
    if isinstance(xff, str):
        extra["xff"] = xff
    status = _int(f.get("status"))
    credential = f.get("credential")
    action, outcome = _action(status, extra.get("response_flags"), credential)
    request_id = f.get("request_id")
    request_id = str(request_id) if request_id is not None else None
    ua = f.get("ua")
    path = f.get("path")
    event = Event(
        time=when,
        vendor=VENDOR,
        action=action,
        raw=raw,
        vendor_type="access",
        vendor_id=request_id,
        outcome=outcome,
        credential=credential,
        src_ip=src_ip,
        user_agent=ua if isinstance(ua, str) else None,
        method=method.upper() if isinstance(method, str) else None,
        resource=path if isinstance(path, str) else None,
        status=status,
        bytes=_int(f.get("bytes")),
        request_id=request_id,
        extra=extra,
    )
    return Parsed(lineno, event, id_text=None if request_id else id_line)


def _text_fields(m: re.Match[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    g = m.groupdict()
    method, path = _dash(g["method"]), _dash(g["path"])
    fields = {"time": g["time"], "method": method, "path": path, "status": g["code"], "bytes": g["tx"],
              "xff": _dash(g["xff"]), "ua": _dash(g["ua"]), "request_id": _dash(g["rid"]),
              "downstream": _dash(g["dremote"])}
    extra: dict[str, Any] = {}
    for group, name in _TEXT_EXTRA.items():
        v = _dash(g.get(group))
        if v is not None:
            extra[name] = _int(v) if name in _NUMERIC and _int(v) is not None else v
    return fields, extra


def _secret_credential(rec: dict[str, Any], extra: dict[str, Any]) -> CredentialRef | None:
    """A secret-named key holding a raw credential (a format logging `%REQ(AUTHORIZATION)%`), fingerprinted."""
    for key, value in rec.items():
        if isinstance(value, str) and _dash(value) is not None and is_secret_field(key) and normalise(value):
            fp = fingerprint(value)
            extra["warning"] = f"the access log records the raw `{key}` header; its value was fingerprinted"
            binding = "dpop" if value.strip().lower().startswith("dpop ") else None
            return CredentialRef(keys=fp.keys, kind=fp.kind if fp.kind != "unknown" else "access",
                                 preview=fp.preview or None, binding=binding)
    return None


def _json_fields(rec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    extra: dict[str, Any] = {}
    for key, name in _EXTRA.items():
        v = _dash(rec.get(key))
        if v is not None:
            extra[name] = _int(v) if name in _NUMERIC and _int(v) is not None else v
    fields = {"time": _dash(rec.get("start_time")), "method": _dash(rec.get("method")),
              "path": _dash(rec.get("path")), "status": _dash(rec.get("response_code")),
              "bytes": _dash(rec.get("bytes_sent")), "xff": _dash(rec.get("x_forwarded_for")),
              "ua": _dash(rec.get("user_agent")), "request_id": _dash(rec.get("request_id")),
              "downstream": _dash(rec.get("downstream_remote_address")),
              "credential": _secret_credential(rec, extra)}
    return fields, extra


def _is_envoy_json(rec: dict[str, Any]) -> bool:
    return "start_time" in rec and sum(1 for k in rec if k in _JSON_KEYS) >= 3


def _wrapped(rec: dict[str, Any]) -> str | None:
    """The envoy line inside a container-logging wrapper (`log` or `message`), or None."""
    for key in _WRAPPER_KEYS:
        v = rec.get(key)
        if isinstance(v, str):
            return v.rstrip("\r\n")
    return None


def _wrapper_extra(rec: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(rec.get("stream"), str):
        extra["stream"] = rec["stream"]
    k8s = rec.get("kubernetes")
    if isinstance(k8s, dict):
        pod = k8s.get("pod")
        if isinstance(pod, dict) and isinstance(pod.get("name"), str):
            extra["pod"] = pod["name"]
        if isinstance(k8s.get("namespace"), str):
            extra["namespace"] = k8s["namespace"]
        container = k8s.get("container")
        if isinstance(container, dict) and isinstance(container.get("name"), str):
            extra["container"] = container["name"]
    return extra


def _line(lineno: int, line: str) -> Parsed | Problem:
    text = line.strip()
    if not text.startswith("{"):
        m = _TEXT.match(text)
        if not m:
            return Problem(lineno, "malformed", "not an Envoy access-log line (expected: [start time] \"METHOD path "
                                                "protocol\" code flags ...)")
        fields, extra = _text_fields(m)
        return _build(lineno, line, fields, text, extra)
    try:
        rec = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        return Problem(lineno, "malformed", f"invalid JSON ({str(e).split(':')[0]})")
    if not isinstance(rec, dict):
        return Problem(lineno, "malformed", f"a JSON {type(rec).__name__}, not an object")
    if _is_envoy_json(rec):
        fields, extra = _json_fields(rec)
        return _build(lineno, rec, fields, orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode(), extra)
    inner = _wrapped(rec)
    if inner is None:
        return Problem(lineno, "malformed", "JSON object is neither an Envoy JSON access log nor a wrapped line")
    inner_text = inner.strip()
    wrapper = _wrapper_extra(rec)
    if inner_text.startswith("{"):
        try:
            inner_rec = orjson.loads(inner_text)
        except orjson.JSONDecodeError as e:
            return Problem(lineno, "malformed", f"wrapped line: invalid JSON ({str(e).split(':')[0]})")
        if not isinstance(inner_rec, dict) or not _is_envoy_json(inner_rec):
            return Problem(lineno, "malformed", "wrapped line is not an Envoy JSON access log")
        fields, extra = _json_fields(inner_rec)
        id_line = orjson.dumps(inner_rec, option=orjson.OPT_SORT_KEYS).decode()
    else:
        m = _TEXT.match(inner_text)
        if not m:
            return Problem(lineno, "malformed", "wrapped line is not an Envoy access-log line")
        fields, extra = _text_fields(m)
        id_line = inner_text
    extra.update({k: v for k, v in wrapper.items() if k not in extra})
    return _build(lineno, rec, fields, id_line, extra)


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Envoy access-log lines (text, JSON, or wrapped by container logging) → `Event`s."""
    for lineno, line in src.lines():
        if not line.strip():
            yield Problem(lineno, "skipped", "blank line")
            continue
        try:
            yield _line(lineno, line)
        except (ValueError, TypeError, AttributeError) as e:  # defence in depth: never raise on a line
            yield Problem(lineno, "malformed", unreadable("Envoy access-log line", e))


def _sniff_line(line: str) -> bool:
    text = line.strip()
    if not text.startswith("{"):
        return _TEXT.match(text) is not None
    try:
        rec = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(rec, dict):
        return False
    if _is_envoy_json(rec):
        return True
    inner = _wrapped(rec)
    if inner is None:
        return False
    inner = inner.strip()
    if inner.startswith("{"):
        try:
            inner_rec = orjson.loads(inner)
        except orjson.JSONDecodeError:
            return False
        return isinstance(inner_rec, dict) and _is_envoy_json(inner_rec)
    return _TEXT.match(inner) is not None


def sniff(first_lines: list[str]) -> float:
    """Share of lines that are Envoy access-log lines: the default text shape, operator-named JSON, or either
    wrapped in a container-logging `log`/`message` field."""
    lines = [x for x in first_lines if x.strip()]
    if not lines:
        return 0.0
    share = sum(1 for x in lines if _sniff_line(x)) / len(lines)
    return 0.9 * share if share >= 0.6 else 0.0


register(
    Format(
        name="envoy-access",
        vendor=VENDOR,
        description="Envoy access log: default text format (also Ambassador `ACCESS` and Istio), operator-named "
                    "JSON, or either wrapped by Docker/Kubernetes JSON logging",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=always,
    )
)
