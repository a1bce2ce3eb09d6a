"""Keycloak connector: login and admin events (format `keycloak-events`, parsers registered on import).

One format reads every shape Keycloak events come in, chosen per line:

* **Event JSON**: `EventRepresentation` objects (`time` epoch ms, `type`, `realmId`, `clientId`, `userId`,
  `sessionId`, `ipAddress`, `error`, `details{…}`; `id` in recent versions) and `AdminEventRepresentation`
  objects (`time`, `realmId`, `authDetails{realmId, clientId, userId, ipAddress}`, `operationType`,
  `resourceType`, `resourcePath`, `representation`, `error`), one per line (an event-listener or export
  file), or the raw `GET /admin/realms/{realm}/events` / `admin-events` response: one JSON array, streamed;
  provenance "line" is then the 1-based index of the item in the array.
* **Server-log text** written by the `jboss-logging` event listener through the `org.keycloak.events`
  logger: `2021-10-22 22:11:31,257 DEBUG [org.keycloak.events] (default task-2) type=LOGIN, realmId=test,
  clientId=…, userId=…, ipAddress=…, key=value, …` (values are `"quoted"` since Keycloak 24), and admin
  events `operationType=CREATE, realmId=…, clientId=…, userId=…, ipAddress=…, resourceType=…,
  resourcePath=…`. Lines of every other logger (boot messages, stack traces) are `skipped`.
* **JSON log records** wrapping those text events: Quarkus/ECS JSON console logs (`log.logger` or
  `loggerName` = `org.keycloak.events`, the event in `message`, the time in `@timestamp`/`timestamp`) and
  Docker/Kubernetes `{"log": "<text line>", "time": …}` wrappers.

Times. Server-log lines carry the server's local time without an offset; like every offset-less time in stanch
they are read as UTC. WildFly's default pattern writes the time of day only (`21:01:45,403`): such a line
has no date, so it is reported `malformed` rather than placed on a guessed day (inside a Docker wrapper the
wrapper's `time` is used instead).

Credential keys. Keycloak names tokens by their `jti`: `details.token_id` (access token) and
`details.refresh_token_id` / `updated_refresh_token_id` (refresh token) become
`jti:keycloak/<realmId>:<id>`. The user session becomes `session:keycloak/<realmId>:<sessionId>`, and only as
the subject of LOGIN / IMPERSONATE (a session is minted), LOGOUT (a session ended) and an admin
`DELETE sessions/<id>`: on every other event the session id is kept in `Event.session_id` only, so that a
session is not confused with the tokens presented inside it. Event subjects:

* token-minting events (CODE_TO_TOKEN, CLIENT_LOGIN, TOKEN_EXCHANGE, device / CIBA / JWT-bearer grants, and a
  LOGIN that minted tokens: the password grant) → the refresh token when one was minted, else the access
  token; the other token's keys go to `extra["other_tokens"]`;
* REFRESH_TOKEN → credential = the refresh token presented (`refresh_token_id`), subject = the rotated one
  (`updated_refresh_token_id`) or, without rotation, the presented one;
* `*_ERROR` → the token presented, if the event names one, as the credential.

Client, user and realm are facts, never keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import ijson
import orjson

from casefile.formats import Format, SourceStream, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import as_dict, stream_json_items, text_reader

VENDOR = "keycloak"
EVENTS_LOGGER = "org.keycloak.events"
_NULLS = (None, "", "null")

# ---------------------------------------------------------------------------------------------- actions

_ISSUE = frozenset({
    "CODE_TO_TOKEN", "CLIENT_LOGIN", "TOKEN_EXCHANGE", "OAUTH2_DEVICE_CODE_TO_TOKEN", "AUTHREQID_TO_TOKEN",
    "PERMISSION_TOKEN", "JWT_BEARER", "OAUTH2_EXTENSION_GRANT",
})
_USE = frozenset({"INTROSPECT_TOKEN", "USER_INFO_REQUEST", "VALIDATE_ACCESS_TOKEN"})
_LOGIN = frozenset({"LOGIN", "IMPERSONATE", "IDENTITY_PROVIDER_LOGIN", "IDENTITY_PROVIDER_FIRST_LOGIN",
                    "IDENTITY_PROVIDER_POST_LOGIN"})
_ADMIN = frozenset({
    "CLIENT_REGISTER", "CLIENT_UPDATE", "CLIENT_DELETE", "UPDATE_PASSWORD", "RESET_PASSWORD", "UPDATE_TOTP",
    "REMOVE_TOTP", "UPDATE_CREDENTIAL", "REMOVE_CREDENTIAL", "UPDATE_EMAIL", "DELETE_ACCOUNT",
    "FEDERATED_IDENTITY_LINK", "REMOVE_FEDERATED_IDENTITY", "USER_DISABLED_BY_PERMANENT_LOCKOUT",
    "USER_DISABLED_BY_TEMPORARY_LOCKOUT",
})


def action_of(event_type: str) -> str:
    """Keycloak user-event `type` → canonical action (admin events are `admin.change`, see `_admin`)."""
    if event_type.endswith("_ERROR"):
        return "auth.fail"
    if event_type in _ISSUE:
        return "token.issue"
    if event_type == "REFRESH_TOKEN":
        return "token.refresh"
    if event_type == "REVOKE_GRANT":
        return "token.revoke"
    if event_type == "LOGOUT":
        return "logout"
    if event_type in _LOGIN:
        return "login"
    if event_type in _USE:
        return "token.use"
    if event_type in _ADMIN:
        return "admin.change"
    return "other"


# ---------------------------------------------------------------------------------------------- helpers


# A usable string: None for absent, empty and `null`.
_s = text_reader(_NULLS)
_dict = as_dict


def _jti(realm: str, value: str | None, kind: str, base: dict[str, Any]) -> CredentialRef | None:
    if not value:
        return None
    return CredentialRef(keys=(f"jti:keycloak/{realm}:{value}",), kind=kind, **base)


def _session(realm: str, sid: str | None, base: dict[str, Any]) -> CredentialRef | None:
    if not sid:
        return None
    return CredentialRef(keys=(f"session:keycloak/{realm}:{sid}",), kind="session", **base)


_EXTRA_DETAILS = ("username", "grant_type", "auth_method", "auth_type", "client_auth_method", "scope",
                  "refresh_token_type", "reason", "impersonator", "impersonator_realm", "revoked_client",
                  "identity_provider", "requested_subject", "audience", "redirect_uri")


# ---------------------------------------------------------------------------------------------- one record


def _user_event(rec: dict[str, Any], time: str, line: int, raw: dict[str, Any] | str,
                id_text: str | None) -> Parsed | Problem:
    et = _s(rec.get("type")) or ""
    details = _dict(rec.get("details"))
    realm = _s(rec.get("realmId")) or _s(rec.get("realmName")) or "unknown"
    error = _s(rec.get("error"))
    action = action_of(et)
    outcome = "failure" if (error or et.endswith("_ERROR")) else "success"
    user = _s(rec.get("userId"))
    username = _s(details.get("username"))
    principal = user or username
    client = _s(rec.get("clientId"))
    sid = _s(rec.get("sessionId"))
    base: dict[str, Any] = {"issuer": f"keycloak/{realm}", "client": client, "principal": principal}
    scopes = _s(details.get("scope"))

    access = _jti(realm, _s(details.get("token_id")), "access", base)
    refresh = _jti(realm, _s(details.get("refresh_token_id")), "refresh", base)
    rotated = _jti(realm, _s(details.get("updated_refresh_token_id")), "refresh", base)
    for ref in (access, refresh, rotated):
        if ref is not None and scopes:
            ref.scopes = scopes

    credential: CredentialRef | None = None
    subject: CredentialRef | None = None
    extra: dict[str, Any] = {"realm": realm}
    others: list[CredentialRef] = []
    if outcome == "failure":
        credential = refresh or access
    elif et == "REFRESH_TOKEN":
        credential = refresh
        if rotated is not None:
            rotated.issued_at = time
            subject = rotated
        elif refresh is not None:
            subject = CredentialRef(keys=refresh.keys, kind="refresh", scopes=refresh.scopes, **base)
        if access is not None:
            access.issued_at = time
            others.append(access)
    elif action == "token.issue" or (action == "login" and (refresh or access)):
        minted = [r for r in (refresh, access) if r is not None]
        for ref in minted:
            ref.issued_at = time
        if minted:
            subject, others = minted[0], minted[1:]
        if action == "login" and sid:
            extra["session_key"] = f"session:keycloak/{realm}:{sid}"
    elif action == "login":
        subject = _session(realm, sid, base)
        if subject is not None:
            subject.issued_at = time
    elif action == "logout":
        subject = _session(realm, sid, base)
    elif action == "token.revoke":
        subject = refresh or access
    elif action == "token.use":
        credential = access or refresh
    if others:
        extra["other_tokens"] = [list(r.keys) for r in others]
    if error:
        extra["error"] = error
    for key in _EXTRA_DETAILS:
        value = _s(details.get(key))
        if value and key not in extra:
            extra[key] = value
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=raw,
        vendor_type=et,
        vendor_id=_s(rec.get("id")),
        outcome=outcome,
        credential=credential,
        subject=subject,
        principal=principal,
        client=client,
        src_ip=_s(rec.get("ipAddress")),
        session_id=sid,
        extra=extra,
    )
    return Parsed(line, event, None if event.vendor_id else id_text)


_SESSION_PATH = re.compile(r"^sessions/([^/]+)$")
_LOGOUT_PATH = re.compile(r"^users/[^/]+/logout$")


def _admin(rec: dict[str, Any], time: str, line: int, raw: dict[str, Any] | str,
           id_text: str | None) -> Parsed | Problem:
    op = _s(rec.get("operationType")) or ""
    rtype = _s(rec.get("resourceType")) or ""
    path = _s(rec.get("resourcePath"))
    auth = _dict(rec.get("authDetails"))
    realm = _s(rec.get("realmId")) or _s(auth.get("realmId")) or "unknown"
    error = _s(rec.get("error"))
    principal = _s(auth.get("userId"))
    client = _s(auth.get("clientId"))
    action = "admin.change"
    subject = None
    m = _SESSION_PATH.match(path or "")
    if op == "DELETE" and m:
        action = "token.revoke"  # an admin removed one user session
        subject = _session(realm, m.group(1), {"issuer": f"keycloak/{realm}"})
    elif op == "ACTION" and _LOGOUT_PATH.match(path or ""):
        action = "token.revoke"  # an admin logged a user out of every session (no single key to name)
    extra: dict[str, Any] = {"realm": realm}
    auth_realm = _s(auth.get("realmId"))
    if auth_realm and auth_realm != realm:
        extra["auth_realm"] = auth_realm
    if error:
        extra["error"] = error
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=raw,
        vendor_type=f"{op}:{rtype}" if rtype else op,
        vendor_id=_s(rec.get("id")),
        outcome="failure" if error else "success",
        subject=subject,
        principal=principal,
        client=client,
        src_ip=_s(auth.get("ipAddress")),
        resource=path,
        extra=extra,
    )
    return Parsed(line, event, None if event.vendor_id else id_text)


def _record(rec: dict[str, Any], time: str, line: int, raw: dict[str, Any] | str,
            id_text: str | None) -> Parsed | Problem:
    if _s(rec.get("operationType")):
        return _admin(rec, time, line, raw, id_text)
    return _user_event(rec, time, line, raw, id_text)


# ---------------------------------------------------------------------------------------------- text lines

# `[date ]time[,ms] LEVEL [logger] (thread) message`. The thread name may hold spaces and dashes.
_TEXT = re.compile(
    r"^(?P<ts>(?:\d{4}-\d{2}-\d{2}[ T])?\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?)\s+"
    r"(?P<level>[A-Z]+)\s+\[(?P<logger>[^\]]+)\]\s+\((?P<thread>.*?)\)\s(?P<msg>.*)$"
)
# key=value pairs separated by ", "; a value is "quoted" (Keycloak 24+) or runs to the next ", key=".
_KV = re.compile(
    r'(?:^|,\s)([A-Za-z_][\w.-]*)=(\\?"(?:[^"\\]|\\.)*?\\?"(?=,\s[A-Za-z_][\w.-]*=|\s*$)'
    r"|.*?(?=,\s[A-Za-z_][\w.-]*=|\s*$))"
)
_USER_TOP = ("type", "realmId", "realmName", "clientId", "userId", "sessionId", "ipAddress", "error", "id")
_ADMIN_AUTH = ("clientId", "userId", "ipAddress")


def _kv(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _KV.finditer(message):
        value = m.group(2).strip()
        if value.startswith('\\"') and value.endswith('\\"') and len(value) >= 4:
            value = value[2:-2]
        elif value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"')
        out[m.group(1)] = value
    return out


def _from_kv(pairs: dict[str, str]) -> dict[str, Any]:
    """A text event's key=value pairs → the JSON representation's shape (top fields + details/authDetails)."""
    if "operationType" in pairs:
        rec: dict[str, Any] = {k: pairs[k] for k in ("operationType", "realmId", "resourceType",
                                                      "resourcePath", "error", "id") if k in pairs}
        rec["authDetails"] = {k: pairs[k] for k in _ADMIN_AUTH if k in pairs}
        return rec
    rec = {k: pairs[k] for k in _USER_TOP if k in pairs}
    rec["details"] = {k: v for k, v in pairs.items() if k not in _USER_TOP}
    return rec


def _event_message(msg: str, ts_text: str | None, fallback: str | None, line: int,
                   raw: dict[str, Any] | str, id_text: str) -> Parsed | Problem:
    """One `org.keycloak.events` message (`type=…, realmId=…, …`) with its log time."""
    pairs = _kv(msg.strip())
    if "type" not in pairs and "operationType" not in pairs:
        return Problem(line, "skipped", "org.keycloak.events message without type= or operationType=")
    name = pairs.get("type") or pairs.get("operationType") or "?"
    time = None
    if ts_text and re.match(r"^\d{4}-\d{2}-\d{2}", ts_text):
        try:
            time = to_utc_iso(ts_text.replace(",", "."))
        except TimeError:
            return Problem(line, "malformed", f"{name}: unreadable time {ts_text[:40]!r}")
    elif fallback:
        try:
            time = to_utc_iso(fallback)
        except TimeError:
            return Problem(line, "malformed", f"{name}: unreadable time {fallback[:40]!r}")
    if time is None:
        return Problem(line, "malformed", f"{name}: time of day only ({(ts_text or '')[:20]!r}), no date in the line")
    return _record(_from_kv(pairs), time, line, raw, id_text)


def _text_line(text: str, line: int, fallback: str | None = None,
               raw: dict[str, Any] | str | None = None) -> Parsed | Problem:
    stripped = text.rstrip()
    m = _TEXT.match(stripped)
    if m is None:
        return Problem(line, "skipped", "not a Keycloak server-log line (continuation or other output)")
    if m.group("logger") != EVENTS_LOGGER:
        return Problem(line, "skipped", f"not an org.keycloak.events record ({m.group('logger')[:60]})")
    return _event_message(m.group("msg"), m.group("ts"), fallback, line,
                          stripped if raw is None else raw, stripped)


# ---------------------------------------------------------------------------------------------- JSON lines

_LOGGER_KEYS = ("log.logger", "loggerName", "logger_name", "logger")
_LOG_TIME_KEYS = ("@timestamp", "timestamp", "time")


def _logger(obj: dict[str, Any]) -> str | None:
    for key in _LOGGER_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            return value
    log = obj.get("log")
    if isinstance(log, dict) and isinstance(log.get("logger"), str):
        return str(log["logger"])
    return None


def _json_obj(obj: dict[str, Any], line: int) -> Parsed | Problem:
    id_text = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()
    # A Keycloak event representation.
    named = isinstance(obj.get("type"), str) or isinstance(obj.get("operationType"), str)
    if named and ("realmId" in obj or "authDetails" in obj or "details" in obj):
        name = _s(obj.get("type")) or _s(obj.get("operationType")) or "?"
        when = obj.get("time")
        if when in _NULLS:
            return Problem(line, "malformed", f"{name}: no time")
        try:
            time = to_utc_iso(when)  # epoch milliseconds
        except (TimeError, ValueError, OverflowError, OSError):
            return Problem(line, "malformed", f"{name}: unreadable time {str(when)[:40]!r}")
        return _record(obj, time, line, obj, id_text)
    # A Docker / Kubernetes wrapper around a text line.
    log = obj.get("log")
    if isinstance(log, str):
        return _text_line(log.rstrip("\n"), line, fallback=_s(obj.get("time")), raw=obj)
    # A JSON log record (Quarkus / ECS console format).
    logger = _logger(obj)
    if logger is not None:
        if logger != EVENTS_LOGGER:
            return Problem(line, "skipped", f"not an org.keycloak.events record ({logger[:60]})")
        msg = obj.get("message")
        if not isinstance(msg, str):
            return Problem(line, "malformed", "org.keycloak.events record without a message")
        ts = next((_s(obj.get(k)) for k in _LOG_TIME_KEYS if _s(obj.get(k))), None)
        if ts is None:
            return Problem(line, "malformed", "org.keycloak.events record without a time")
        return _event_message(msg, ts, None, line, obj, id_text)
    return Problem(line, "malformed", "JSON object is not a Keycloak event or log record")


def _line(lineno: int, text: str) -> Parsed | Problem:
    if not text.strip():
        return Problem(lineno, "skipped", "blank line")
    body = text.lstrip("\ufeff").strip()
    if body.startswith("{"):
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return Problem(lineno, "malformed", f"not JSON: {e}")
        if not isinstance(obj, dict):
            return Problem(lineno, "malformed", "not a JSON object")
        return _json_obj(obj, lineno)
    return _text_line(text.lstrip("\ufeff"), lineno)


def _parse_array(src: SourceStream) -> Iterator[Parsed | Problem]:
    with src.binary() as fh:
        yield from stream_json_items(
            ijson.items(fh, "item", use_float=True),
            _json_obj,
            "JSON array truncated or broken after item {index}: {reason}",
            non_object="array item",
        )


def _first_byte(src: SourceStream) -> bytes:
    with src.binary() as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
        while not head:
            chunk = fh.read(4096)
            if not chunk:
                return b""
            head = chunk.lstrip()
    return head[:1]


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Keycloak events from JSON lines, a REST JSON array, server-log text or JSON log records."""
    if _first_byte(src) == b"[":
        yield from _parse_array(src)
        return
    for lineno, text in src.lines():
        try:
            yield _line(lineno, text)
        except (ValueError, TypeError, AttributeError, KeyError) as e:  # never raise on a line
            yield Problem(lineno, "malformed", f"unreadable Keycloak record ({type(e).__name__})")


# ---------------------------------------------------------------------------------------------- sniff

_EVENT_TEXT = re.compile(r"\[org\.keycloak\.events\]\s+\([^)]*\)\s+\\?\"?(?:type|operationType)=")
_KC_LOGGER_TEXT = re.compile(r"^\S+(?:\s\S+)?\s+[A-Z]+\s+\[org\.keycloak\.")
_EVENT_TYPE = re.compile(r"^[A-Z][A-Z0-9_]+$")


def _looks_event(obj: dict[str, Any]) -> bool:
    t = obj.get("type")
    if isinstance(t, str) and _EVENT_TYPE.match(t) and "realmId" in obj and ("time" in obj or "details" in obj):
        return True
    op = obj.get("operationType")
    return isinstance(op, str) and "resourceType" in obj and ("authDetails" in obj or "realmId" in obj)


def sniff(first_lines: list[str]) -> float:
    """Keycloak event JSON, `org.keycloak.events` server-log lines, or JSON log records of Keycloak."""
    lines = [ln.lstrip("\ufeff") for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    if lines[0].lstrip().startswith("["):
        text = "\n".join(lines)
        if '"realmId"' in text and ('"type"' in text or '"operationType"' in text) and (
            '"clientId"' in text or '"authDetails"' in text
        ):
            return 0.85
        return 0.0
    events = keycloak_logs = 0
    for line in lines:
        body = line.strip()
        if body.startswith("{"):
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            if _looks_event(obj):
                events += 1
                continue
            log = obj.get("log")
            if isinstance(log, str) and _EVENT_TEXT.search(log):
                events += 1
                continue
            logger = _logger(obj)
            if logger == EVENTS_LOGGER and isinstance(obj.get("message"), str):
                events += 1
            elif (logger or "").startswith("org.keycloak.") or obj.get("service.name") == "Keycloak":
                keycloak_logs += 1
        elif _EVENT_TEXT.search(body):
            events += 1
        elif _KC_LOGGER_TEXT.match(body):
            keycloak_logs += 1
    if events:
        return 0.9
    if keycloak_logs:
        return 0.6  # a Keycloak server log whose head holds no event yet
    return 0.0


def _splittable(head: list[str]) -> bool:
    """Every line stands alone, except in a JSON array (the REST response)."""
    first = next((ln.lstrip("\ufeff").strip() for ln in head if ln.strip()), "")
    return not first.startswith("[")


register(
    Format(
        name="keycloak-events",
        vendor=VENDOR,
        description="Keycloak login/admin events: event JSON (lines or REST array), org.keycloak.events "
        "server-log lines, JSON log records",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=_splittable,
    )
)

