"""google connector (parsers registered on import).

Format `google-reports`: Google Workspace Admin SDK Reports API activities (`kind: admin#reports#activity`;
reference: connectors.md §6.9 and the Reports API activity resource), read from

* JSON lines, one activity per line (what collectors and SIEM exports write). A line may also hold a whole
  `activities.list` page (`{"kind": "admin#reports#activities", "items": [...]}`): its activities all get that
  line's number. Provenance "line" = the 1-based line number.
* one JSON array of activities, or pretty-printed list responses / activities one after another (the saved
  output of `activities.list`, page after page). Streamed with ijson, so a large page costs no more memory than
  one activity. Provenance "line" = the **1-based index of the activity in the file**.

The shape is chosen from the first non-blank line: `[` = array; a line that is just `{` = pretty-printed.

One activity holds one or more `events[]` (collectors that split them give `events` as one object: accepted).
Each event becomes one Event with `vendor_id` = `<applicationName>:<id.time>:<id.uniqueQualifier>:<event index>`:
Google documents `uniqueQualifier` only as unique among activities *of the same time*, so the time and application
are part of the id. Parameters are read from `value`, `intValue`, `boolValue`, `multiValue` and `multiIntValue`.

Applications: `token` (OAuth token audit: `authorize`, `revoke`, `activity`, `request`) and `login` (`login_success`,
`login_failure`, `logout`, challenges and account warnings) are mapped in detail; an `admin` activity is an
`admin.change`; any other application's events are kept as `other`.

Credential keys: none. The token audit names the OAuth grant by user × `client_id` and logs no token id or hash,
and a client id is a fact, never a key (it would fold every user's grant to an app into one credential). So these
events carry `client` (= `client_id`), `principal` (= `actor.email`) and, in `extra`, the granted `scopes`
(the `scope` multiValue, else the `scope_name`s of `scope_data`), `app_name` and `client_type`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from itertools import chain
from typing import Any

import ijson
import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import Event, Parsed, Problem
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import (
    JSON_STREAM_ERRORS,
    LineStream,
    first_nonblank_line,
    parse_json_lines,
    stream_error_reason,
)

VENDOR = "google"
ACTIVITY = "admin#reports#activity"
ACTIVITIES = "admin#reports#activities"

# ---------------------------------------------------------------------------------------------- actions

_TOKEN = {"authorize": "token.issue", "revoke": "token.revoke", "activity": "api.call", "request": "api.call"}
_LOGIN = {"login_success": "login", "login_failure": "auth.fail", "logout": "logout"}
# Login events of these `type`s change how an account authenticates (password, 2-step verification, recovery).
_LOGIN_ADMIN_TYPES = frozenset({"password_change", "2sv_change", "recovery_info_change", "titanium_change"})


def action_for(application: str, name: str, event_type: str | None = None, params: dict[str, Any] | None = None) -> str:
    """(applicationName, event name, event type, parameters) → canonical action."""
    app = application.lower()
    if app == "token":
        return _TOKEN.get(name, "other")
    if app == "login":
        mapped = _LOGIN.get(name)
        if mapped:
            return mapped
        if name in ("login_challenge", "login_verification"):
            # A challenge step inside a sign-in: only a refused one is an event of its own.
            return "auth.fail" if _challenge_failed(params or {}) else "other"
        if event_type in _LOGIN_ADMIN_TYPES:
            return "admin.change"
        return "other"
    if app == "admin":
        return "admin.change"
    return "other"


def _challenge_failed(params: dict[str, Any]) -> bool:
    status = params.get("login_challenge_status")
    return isinstance(status, str) and "fail" in status.lower()


def _outcome(application: str, name: str, params: dict[str, Any]) -> str:
    app = application.lower()
    if app == "login":
        if name == "login_failure":
            return "failure"
        if name in ("login_success", "logout"):
            return "success"
        status = params.get("login_challenge_status")
        if isinstance(status, str):
            low = status.lower()
            return "failure" if "fail" in low else "success" if "pass" in low else "unknown"
        return "unknown"
    if app == "token" and name in _TOKEN:
        return "success"
    return "unknown"


# ---------------------------------------------------------------------------------------------- fields


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _params(event: dict[str, Any]) -> dict[str, Any]:
    """name → value for an event's `parameters[]` (`value`, `intValue`, `boolValue`, `multiValue`, …)."""
    out: dict[str, Any] = {}
    raw = event.get("parameters")
    if not isinstance(raw, list):
        return out
    for p in raw:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            continue
        for field in ("value", "intValue", "boolValue", "multiValue", "multiIntValue"):
            if field in p:
                value = p[field]
                if field in ("intValue",) and isinstance(value, str) and value.lstrip("-").isdigit():
                    value = int(value)  # int64 values are JSON strings in the API
                out[p["name"]] = value
                break
        else:
            if "multiMessageValue" in p:
                out[p["name"]] = p["multiMessageValue"]
            elif "messageValue" in p:
                out[p["name"]] = p["messageValue"]
    return out


def _scopes(params: dict[str, Any]) -> str | None:
    scope = params.get("scope")
    names: list[str] = []
    if isinstance(scope, list):
        names = [s for s in scope if isinstance(s, str) and s]
    elif isinstance(scope, str) and scope:
        names = scope.split()
    if not names and isinstance(params.get("scope_data"), list):
        for message in params["scope_data"]:
            inner = message.get("parameter") if isinstance(message, dict) else None
            for p in inner if isinstance(inner, list) else []:
                if isinstance(p, dict) and p.get("name") == "scope_name" and isinstance(p.get("value"), str):
                    names.append(p["value"])
    return " ".join(names) or None


_EXTRA_PARAMS = ("app_name", "client_type", "api_name", "method_name", "product_bucket", "login_type",
                 "login_challenge_method", "login_challenge_status", "login_failure_type", "is_suspicious",
                 "is_second_factor", "affected_email_address")


def _events(activity: dict[str, Any], line: int) -> Iterator[Parsed | Problem]:
    ident = activity.get("id")
    if not isinstance(ident, dict):
        kind = _str(activity.get("kind"))
        if kind == ACTIVITY:
            yield Problem(line, "malformed", "activity has no `id` object (time, applicationName)")
        else:
            yield Problem(line, "malformed", f"not a Reports API activity: kind {kind!r}, no `id` object")
        return
    application = _str(ident.get("applicationName")) or ""
    raw_time = ident.get("time")
    if not isinstance(raw_time, str | int | float) or _str(raw_time) is None:
        yield Problem(line, "malformed", f"{application or 'activity'}: no id.time")
        return
    try:
        time = to_utc_iso(raw_time)
    except (TimeError, ValueError, OverflowError, OSError):
        yield Problem(line, "malformed", f"{application or 'activity'}: unreadable id.time {str(raw_time)[:40]!r}")
        return
    events = activity.get("events")
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list) or not events:
        yield Problem(line, "malformed", f"{application or 'activity'} activity at {time} has no events")
        return

    actor_value = activity.get("actor")
    actor: dict[str, Any] = actor_value if isinstance(actor_value, dict) else {}
    principal = _str(actor.get("email")) or _str(actor.get("profileId")) or _str(actor.get("key"))
    qualifier = _str(ident.get("uniqueQualifier"))
    base_extra: dict[str, Any] = {"application": application} if application else {}
    for key, value in (("customer_id", ident.get("customerId")), ("caller_type", actor.get("callerType")),
                       ("owner_domain", activity.get("ownerDomain")), ("profile_id", actor.get("profileId"))):
        if _str(value):
            base_extra[key] = value
    id_base = None
    for index, ev in enumerate(events):
        if not isinstance(ev, dict) or not _str(ev.get("name")):
            yield Problem(line, "malformed", f"{application or 'activity'} event {index} has no name")
            continue
        name = str(ev["name"]).strip()
        event_type = _str(ev.get("type"))
        params = _params(ev)
        extra = dict(base_extra)
        if event_type:
            extra["event_type"] = event_type
        for key in _EXTRA_PARAMS:
            if key in params:
                extra[key] = params[key]
        scopes = _scopes(params)
        if scopes:
            extra["scopes"] = scopes
        nbytes = params.get("num_response_bytes")
        if isinstance(nbytes, str) and nbytes.isdigit():
            nbytes = int(nbytes)
        vendor_id = f"{application}:{_str(raw_time)}:{qualifier}:{index}" if qualifier else None
        id_text = None
        if vendor_id is None:
            if id_base is None:
                id_base = orjson.dumps(activity, option=orjson.OPT_SORT_KEYS).decode()
            id_text = f"{id_base}#{index}"
        resource = _str(params.get("method_name")) or _str(params.get("api_name"))
        event = Event(
            time=time,
            vendor=VENDOR,
            action=action_for(application, name, event_type, params),
            raw=activity,
            vendor_type=f"{application}.{name}" if application else name,
            vendor_id=vendor_id,
            outcome=_outcome(application, name, params),
            principal=principal,
            client=_str(params.get("client_id")),
            src_ip=_str(activity.get("ipAddress")),
            resource=resource,
            bytes=nbytes if isinstance(nbytes, int) and not isinstance(nbytes, bool) else None,
            extra=extra,
        )
        yield Parsed(line, event, id_text)


def _is_list_page(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == ACTIVITIES or ("items" in obj and "id" not in obj)


def _record(obj: Any, line: int, what: str) -> Iterator[Parsed | Problem]:
    """Events of one JSON value: an activity, or a list page (its items, all numbered `line`)."""
    if not isinstance(obj, dict):
        yield Problem(line, "malformed", f"{what} is not a JSON object ({type(obj).__name__})")
        return
    if not obj:
        yield Problem(line, "malformed", "empty JSON object: not a Reports API activity")
        return
    if _is_list_page(obj):
        items = obj.get("items")
        if items is None or items == []:
            yield Problem(line, "skipped", "activities list page with no items")
            return
        if not isinstance(items, list):
            yield Problem(line, "malformed", "activities list page: `items` is not an array")
            return
        for item in items:
            yield from _record(item, line, "list item")
        return
    yield from _events(obj, line)


# ---------------------------------------------------------------------------------------------- streams


def _values(stream: io.BufferedReader) -> Iterator[tuple[str, Any]]:
    """('activity', value) for each activity in each top-level JSON value; list pages streamed item by item,
    then ('page', page without its items) or ('empty', page) for a page that had none."""
    doc: ijson.ObjectBuilder | None = None
    item: ijson.ObjectBuilder | None = None
    seen_items = 0
    for prefix, event, value in ijson.parse(stream, multiple_values=True, use_float=True):
        if item is not None:
            item.event(event, value)
            if prefix == "items.item" and event == "end_map":
                yield "activity", item.value
                item = None
            continue
        if prefix == "items.item":
            if event == "start_map":
                item = ijson.ObjectBuilder()
                item.event(event, value)
            else:
                yield "activity", value  # not an object: reported by the caller
            seen_items += 1
            continue
        if prefix == "items" or prefix.startswith("items."):
            continue
        if prefix == "" and event == "map_key" and value == "items":
            continue
        if prefix == "" and event in ("start_map", "start_array"):
            doc, seen_items = ijson.ObjectBuilder(), 0
        if doc is None:  # a top-level scalar
            yield "activity", value
            continue
        doc.event(event, value)
        if prefix == "" and event in ("end_map", "end_array"):
            whole = doc.value
            doc = None
            if isinstance(whole, dict) and (whole.get("kind") == ACTIVITIES or seen_items):
                if not seen_items:
                    yield "empty", whole
            else:
                yield "activity", whole


def _stream(values: Iterator[tuple[str, Any]], what: str) -> Iterator[Parsed | Problem]:
    index = 0
    try:
        for tag, value in values:
            if tag == "empty":
                yield Problem(index + 1, "skipped", "activities list page with no items")
                continue
            index += 1
            yield from _record(value, index, f"{what} {index}")
    except JSON_STREAM_ERRORS as e:
        reason = stream_error_reason(e)
        yield Problem(index + 1, "malformed", f"JSON truncated or broken after activity {index}: {reason[:200]}")


def _array(stream: io.BufferedReader) -> Iterator[tuple[str, Any]]:
    for value in ijson.items(stream, "item", use_float=True):
        yield "activity", value


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Reports API activities → one event per activity event (arrays and pretty-printed pages numbered by activity)."""
    lines = iter(src.lines())
    blanks, first = first_nonblank_line(lines)
    head = first[1].lstrip("\ufeff").strip() if first else ""
    if head.startswith("["):
        yield from _stream(_array(io.BufferedReader(LineStream([head], lines))), "array item")
    elif head == "{":
        yield from _stream(_values(io.BufferedReader(LineStream([head], lines))), "activity")
    else:
        for b in blanks:
            yield Problem(b, "skipped", "blank line")
        if first is not None:
            yield from _parse_lines([first], lines)


def _parse_lines(first: list[tuple[int, str]], rest: Iterator[tuple[int, str]]) -> Iterator[Parsed | Problem]:
    yield from parse_json_lines(chain(first, rest), lambda obj, n: _record(obj, n, "line"))


# ---------------------------------------------------------------------------------------------- sniff

_KIND = re.compile(r'"kind"\s*:\s*"admin#reports#activit(?:y|ies)"')
_ID_KEYS = re.compile(r'"(applicationName|uniqueQualifier)"\s*:')


def sniff(first_lines: list[str]) -> float:
    """Reports API activities: `kind` admin#reports#activity/activities, or an `id` with applicationName and
    uniqueQualifier (JSON lines, arrays or pretty-printed pages)."""
    lines = [ln.strip() for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    first = lines[0].lstrip("\ufeff")
    if not first.startswith(("{", "[")):
        return 0.0
    text = "\n".join(lines)
    if _KIND.search(text):
        return 0.95
    if len(set(_ID_KEYS.findall(text))) == 2:
        return 0.85
    return 0.0


register(
    Format(
        name="google-reports",
        vendor=VENDOR,
        description="Google Workspace Admin SDK Reports API activities (token, login…): JSON lines, a JSON array, "
        "or saved activities.list pages (items numbered as lines)",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=json_lines,
    )
)
