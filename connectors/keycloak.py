"""Keycloak connector: login and admin events (format `keycloak-events`, parsers registered on import), and the
live Admin REST API (events pull, containment verbs, probes: see the section "live API" at the end).

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

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import ijson
import orjson

from casefile.formats import Format, SourceStream, chunk_of_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import as_dict, stream_json_items, text_reader, unreadable
from connectors.act import SnapshotFn, take
from connectors.config import ConnectorSettings
from connectors.http import (
    ConnectorClient,
    ConnectorError,
    InvalidCredentialError,
    JournalEntry,
    NotFoundError,
)
from connectors.oauth import client_auth
from connectors.pull import Page
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict

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
    if not chunk_of_lines(src) and _first_byte(src) == b"[":
        yield from _parse_array(src)
        return
    for lineno, text in src.lines():
        try:
            yield _line(lineno, text)
        except (ValueError, TypeError, AttributeError, KeyError) as e:  # never raise on a line
            yield Problem(lineno, "malformed", unreadable("Keycloak record", e))


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



# ---------------------------------------------------------------------------------------------- live API
#
# Keycloak Admin REST API (26.x), live: whoami, clients, client-secret rotation, sessions, logout, not-before,
# the events pull, and probes, through `ConnectorClient`.
#
# Connector URL = the realm: `https://kc.example.com/realms/acme` (the issuer URL, as the realm's discovery
# document names it) or `https://kc.example.com/admin/realms/acme`; a legacy `/auth` prefix is kept
# (`https://kc.example.com/auth/realms/acme`). `realm_of` splits it into the server base (the client's base URL)
# and the realm name; every admin path is `admin/realms/<realm>/…` under that base.
#
# Auth: `settings.client_id` + the connector secret (client secret) get an access token from the realm's token
# endpoint `realms/<realm>/protocol/openid-connect/token` (`grant_type=client_credentials`, HTTP Basic as
# `connectors.oauth.client_auth` builds it). Admin calls send `Authorization: Bearer <access token>`. The token
# is fetched on first use, refreshed when it is within 30 s of `expires_in`, and once on a 401 (a single call is
# retried; a listing restarts and skips what it already yielded). The token lives in memory only; the client
# scrubs it from its journal and errors. The service account needs realm-management roles: `view-events`,
# `view-clients`/`manage-clients`, `view-users`/`manage-users`, `manage-realm` for not-before [K].
#
# Secrets: `regenerate_secret` never returns, logs or snapshots a client secret (old or new): the snapshot is
# the ClientRepresentation without `secret` and without secret-named attributes; the answer says only that
# the secret rotated.
#
# Verdicts: `probe_old_secret` sends the old client secret to the token endpoint: 400/401 `invalid_client` is
# `revoked-verified`, a token (200) is `still-live` (the token is dropped unread), anything else unverified.
# It needs a real Keycloak (the token endpoint is not in the Admin API spec). `probe_session` is
# `revoked-verified` when the session list call succeeded and no longer lists the session.

TOKEN_PATH = "realms/{realm}/protocol/openid-connect/token"  # noqa: S105  (a path, not a secret)
ADMIN = "admin/realms/{realm}"
PULL_PAGE = 100  # Keycloak's default `max`
#: user-event types an investigation of stolen tokens needs stored (connectors.md §3.3)
NEEDED_EVENT_TYPES = ("CODE_TO_TOKEN", "REFRESH_TOKEN", "CLIENT_LOGIN", "TOKEN_EXCHANGE", "REVOKE_GRANT")
#: of those, the ones Keycloak does not store when `enabledEventTypes` is empty (its default set)
NOT_STORED_BY_DEFAULT = frozenset({"REFRESH_TOKEN"})
_REALM_URL = re.compile(r"^(?P<base>https?://[^?#]*?)/(?:admin/)?realms/(?P<realm>[^/?#]+)/?$")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~@:+-]{0,254}")
_REFRESH_MARGIN_S = 30.0


def realm_of(url: str) -> tuple[str, str]:
    """(server base URL, realm name) of a connector URL `…/realms/<realm>` or `…/admin/realms/<realm>`."""
    m = _REALM_URL.match(url.strip())
    if m is None:
        raise ValueError(f"Keycloak connector URL {url!r} must name the realm: https://HOST/realms/REALM "
                         "(or https://HOST/admin/realms/REALM)")
    return m.group("base") + "/", m.group("realm")


def _seg(value: str, what: str) -> str:
    text = value.strip()
    if not _SEGMENT.fullmatch(text):
        raise ValueError(f"{what} {value!r} is not a Keycloak id (letters, digits, '._~@:+-')")
    return quote(text, safe="")


class KeycloakAdmin:
    """A `ConnectorClient` on the server base plus the realm and the client-credentials access token."""

    def __init__(self, client: ConnectorClient, realm: str, client_id: str, secret: str) -> None:
        self.client = client
        self.realm = realm
        self.client_id = client_id
        self._basic = client_auth(client_id, secret)
        self._secret = secret
        self._token: str | None = None
        self._expires_at = 0.0
        self.token_facts: dict[str, Any] = {}

    async def __aenter__(self) -> KeycloakAdmin:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    @property
    def admin(self) -> str:
        return ADMIN.format(realm=quote(self.realm, safe=""))

    @property
    def token_path(self) -> str:
        return TOKEN_PATH.format(realm=quote(self.realm, safe=""))

    def bearer(self) -> dict[str, str]:
        """The `auth_header` of the client: the current access token (none before the first fetch)."""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def refresh(self) -> None:
        """Get a new access token (client credentials). Raises `InvalidCredentialError` when refused."""
        r = await self.client.request("POST", self.token_path, data={"grant_type": "client_credentials"},
                                      auth=self._basic(), idempotent=True, accept_status=(400, 401),
                                      secrets=[self._secret])
        body = _json_body(r)
        token = body.get("access_token") if isinstance(body, dict) else None
        if r.status_code != 200 or not isinstance(token, str) or not token:
            code = body.get("error") if isinstance(body, dict) else None
            shown = code if isinstance(code, str) and code.isascii() and len(code) < 64 else "no access_token"
            raise InvalidCredentialError(
                f"{r.status_code} from {self.client.name}: the token endpoint refused client {self.client_id} "
                f"({shown}); check the client secret and that the client has a service account "
                f"(`stanch connector add {self.client.name}`)",
                connector=self.client.name, status=r.status_code, method="POST", path=self.token_path)
        self._token = token
        expires = body.get("expires_in")
        lifetime = float(expires) if isinstance(expires, int | float) and not isinstance(expires, bool) else 60.0
        self._expires_at = self.client._clock() + lifetime
        self.token_facts = {"expires_in": body.get("expires_in"), "scope": body.get("scope"),
                            "token_type": body.get("token_type")}

    async def fresh(self) -> None:
        """Fetch a token when there is none or it expires within 30 s."""
        if self._token is None or self.client._clock() >= self._expires_at - _REFRESH_MARGIN_S:
            await self.refresh()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`ConnectorClient.request` with a fresh token; on 401 the token is refreshed and the call sent once more."""
        await self.fresh()
        try:
            return await self.client.request(method, path, **kwargs)
        except InvalidCredentialError:
            await self.refresh()
            return await self.client.request(method, path, **kwargs)

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.client._json(await self.request("GET", path, **kwargs))

    async def pages(self, path: str, params: Mapping[str, Any] | None = None,
                    page_size: int = PULL_PAGE) -> AsyncIterator[list[Any]]:
        """The listing's records, one list per vendor page (`first`/`max` through `paginate_offset`).

        Before each page the token is refreshed if it is about to expire; on a 401 it is refreshed once and
        the listing restarts from `first=0`, skipping the records already yielded."""
        done = 0
        retried = False
        while True:
            await self.fresh()
            seen = 0
            chunk: list[Any] = []
            try:
                async for item in self.client.paginate_offset(path, page_size=page_size, params=params):
                    seen += 1
                    if seen <= done:
                        continue
                    chunk.append(item)
                    if (seen % page_size) == 0:
                        done = seen
                        yield chunk
                        chunk = []
                        await self.fresh()
                if chunk:
                    yield chunk
                return
            except InvalidCredentialError:
                if retried:
                    raise
                retried = True
                await self.refresh()


def _json_body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def open_admin(settings: ConnectorSettings, secret: str, **kwargs: Any) -> KeycloakAdmin:
    """A `KeycloakAdmin` for a `keycloak` connector (`kwargs` override the settings' client options)."""
    if not settings.client_id:
        raise ValueError(f"connector {settings.name}: kind keycloak needs a client_id (a confidential client "
                         f"with a service account); run `stanch connector add {settings.name} --client-id ID`")
    base, realm = realm_of(settings.url)
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
    }
    options.update(kwargs)
    holder: list[KeycloakAdmin] = []
    client = ConnectorClient(settings.name, base, auth_header=lambda: holder[0].bearer(), **options)
    admin = KeycloakAdmin(client, realm, settings.client_id, secret)
    holder.append(admin)
    return admin


# ------------------------------------------------------------------------------------------- reads


async def list_clients(kc: KeycloakAdmin, client_id: str | None = None) -> list[dict[str, Any]]:
    """`GET clients` (every page; `clientId=` filters by exact clientId)."""
    params = {"clientId": client_id} if client_id else None
    out: list[dict[str, Any]] = []
    async for page in kc.pages(f"{kc.admin}/clients", params):
        out.extend(_without_secrets(c) for c in page if isinstance(c, dict))
    return out


async def find_client(kc: KeycloakAdmin, client_id: str) -> dict[str, Any]:
    """The client whose `clientId` is `client_id` (its `id` is the uuid the admin paths take)."""
    for c in await list_clients(kc, client_id):
        if c.get("clientId") == client_id:
            return c
    raise NotFoundError(f"no client {client_id!r} in realm {kc.realm} of {kc.client.name}; check the clientId",
                        connector=kc.client.name, status=404, method="GET", path=f"{kc.admin}/clients")


async def service_account(kc: KeycloakAdmin, client_uuid: str) -> dict[str, Any]:
    """`GET clients/{uuid}/service-account-user`."""
    body = await kc.get_json(f"{kc.admin}/clients/{_seg(client_uuid, 'client uuid')}/service-account-user")
    return body if isinstance(body, dict) else {}


def whoami(settings: ConnectorSettings, secret: str, **client_options: Any) -> dict[str, Any]:
    """`stanch connector test` hook: the token's service account and the realm's event configuration."""

    async def ask() -> dict[str, Any]:
        async with open_admin(settings, secret, **client_options) as kc:
            await kc.refresh()
            me = await find_client(kc, kc.client_id)
            user = await service_account(kc, str(me.get("id")))
            try:
                events = await event_config(kc)
            except ConnectorError as e:
                events = {"warnings": [f"cannot read the realm's event configuration: {e}"]}
            return {"realm": kc.realm, "client_id": kc.client_id, "client_uuid": me.get("id"),
                    "service_account": user.get("username"), "service_account_id": user.get("id"),
                    "token_expires_in": kc.token_facts.get("expires_in"), "scope": kc.token_facts.get("scope"),
                    "event_warnings": events.get("warnings", [])}

    return asyncio.run(ask())


async def user_sessions(kc: KeycloakAdmin, user_id: str, *, offline_client_uuid: str | None = None
                        ) -> list[dict[str, Any]]:
    """`GET users/{id}/sessions` (online), or `users/{id}/offline-sessions/{clientUuid}`."""
    path = f"{kc.admin}/users/{_seg(user_id, 'user id')}/sessions"
    if offline_client_uuid:
        path = (f"{kc.admin}/users/{_seg(user_id, 'user id')}/offline-sessions/"
                f"{_seg(offline_client_uuid, 'client uuid')}")
    body = await kc.get_json(path)
    return [s for s in body if isinstance(s, dict)] if isinstance(body, list) else []


async def client_sessions(kc: KeycloakAdmin, client_uuid: str, *, offline: bool = False) -> list[dict[str, Any]]:
    """`GET clients/{uuid}/user-sessions` (or `offline-sessions`), every page."""
    kind = "offline-sessions" if offline else "user-sessions"
    out: list[dict[str, Any]] = []
    async for page in kc.pages(f"{kc.admin}/clients/{_seg(client_uuid, 'client uuid')}/{kind}"):
        out.extend(s for s in page if isinstance(s, dict))
    return out


async def event_config(kc: KeycloakAdmin) -> dict[str, Any]:
    """`GET events/config`, read for what an investigation will miss: returns `events_enabled`,
    `admin_events_enabled`, `admin_events_details_enabled`, `missing_event_types` (needed types that are not
    stored) and `warnings` (one line each, for the CLI). An empty `enabledEventTypes` means Keycloak's default
    set, which leaves out REFRESH_TOKEN."""
    body = await kc.get_json(f"{kc.admin}/events/config")
    cfg = body if isinstance(body, dict) else {}
    enabled = cfg.get("enabledEventTypes")
    types = {t for t in enabled if isinstance(t, str)} if isinstance(enabled, list) else set()
    if types:
        missing = [t for t in NEEDED_EVENT_TYPES if t not in types]
    else:
        missing = [t for t in NEEDED_EVENT_TYPES if t in NOT_STORED_BY_DEFAULT]
    warnings: list[str] = []
    if cfg.get("eventsEnabled") is not True:
        warnings.append(f"realm {kc.realm}: user events are not stored (eventsEnabled false): no token issue, "
                        "refresh or revoke will be found")
        missing = list(NEEDED_EVENT_TYPES)
    elif missing:
        warnings.append(f"realm {kc.realm}: event types not stored: {', '.join(missing)}")
    if cfg.get("adminEventsEnabled") is not True:
        warnings.append(f"realm {kc.realm}: admin events are not stored (adminEventsEnabled false): client "
                        "secret changes and admin logouts will not be found")
    return {"events_enabled": cfg.get("eventsEnabled") is True,
            "admin_events_enabled": cfg.get("adminEventsEnabled") is True,
            "admin_events_details_enabled": cfg.get("adminEventsDetailsEnabled") is True,
            "events_expiration_s": cfg.get("eventsExpiration"),
            "missing_event_types": missing, "warnings": warnings}


# ------------------------------------------------------------------------------------------- acts

_SECRET_ATTRIBUTE = re.compile(r"secret|password|private|key\b", re.IGNORECASE)


def _without_secrets(client_rep: dict[str, Any]) -> dict[str, Any]:
    """A ClientRepresentation without `secret` and without secret-bearing attributes (the rotated secret);
    the secret's creation/expiration times are kept."""
    out = {k: v for k, v in client_rep.items() if k not in ("secret", "registrationAccessToken")}
    attrs = out.get("attributes")
    if isinstance(attrs, dict):
        out["attributes"] = {k: v for k, v in attrs.items()
                             if not _SECRET_ATTRIBUTE.search(k) or k.endswith((".time", "time"))}
    return out


async def regenerate_secret(kc: KeycloakAdmin, client_uuid: str, *, snapshot: SnapshotFn | None = None
                            ) -> dict[str, Any]:
    """Rotate a client's secret: `POST clients/{uuid}/client-secret`. Snapshot first (`keycloak.client`, the
    client without its secret). The new secret in Keycloak's answer is dropped at once: the result says only
    `rotated`. With a client-secret rotation policy the old secret stays valid until
    `invalidate_rotated_secret`; follow with `probe_old_secret`."""
    path = f"{kc.admin}/clients/{_seg(client_uuid, 'client uuid')}"
    found = await kc.get_json(path)
    before = _without_secrets(found if isinstance(found, dict) else {})
    take(snapshot, "keycloak.client", client_uuid, before)
    r = await kc.request("POST", f"{path}/client-secret")
    body = _json_body(r)
    rotated = isinstance(body, dict) and isinstance(body.get("value"), str) and bool(body.get("value"))
    kind = body.get("type") if isinstance(body, dict) else None
    del body  # the new secret: never kept
    return {"snapshot": before, "status_code": r.status_code, "rotated": rotated, "credential_type": kind}


async def invalidate_rotated_secret(kc: KeycloakAdmin, client_uuid: str, *, snapshot: SnapshotFn | None = None
                                    ) -> dict[str, Any]:
    """End the grace period of the previous secret under a client-secret rotation policy:
    `DELETE clients/{uuid}/client-secret/rotated`. Snapshot first (`keycloak.rotated_secret`: the rotated
    CredentialRepresentation's `type`, `createdDate` and `id`; never its `value` or `secretData`)."""
    path = f"{kc.admin}/clients/{_seg(client_uuid, 'client uuid')}/client-secret/rotated"
    found = await kc.get_json(path)
    before = {k: v for k, v in found.items() if k not in ("value", "secretData", "credentialData")} \
        if isinstance(found, dict) else {}
    del found
    take(snapshot, "keycloak.rotated_secret", client_uuid, before)
    r = await kc.request("DELETE", path)
    return {"snapshot": before, "status_code": r.status_code}


async def logout_user(kc: KeycloakAdmin, user_id: str, *, snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """`POST users/{id}/logout`: end every session of the user. Snapshot first (`keycloak.user_sessions`: the
    user's online sessions). Follow with `probe_session`."""
    before = await user_sessions(kc, user_id)
    take(snapshot, "keycloak.user_sessions", user_id, before)
    r = await kc.request("POST", f"{kc.admin}/users/{_seg(user_id, 'user id')}/logout")
    return {"snapshot": before, "status_code": r.status_code}


async def delete_session(kc: KeycloakAdmin, user_id: str, session_id: str, *, offline_client_uuid: str | None = None,
                         snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """`DELETE sessions/{id}` (`isOffline=true` with `offline_client_uuid`). Snapshot first
    (`keycloak.session`: the session as the user's session list shows it; `{"id": …, "listed": false}` when the
    list does not show it). Keycloak has no GET for one session, so the user is needed."""
    listed = await user_sessions(kc, user_id, offline_client_uuid=offline_client_uuid)
    before = next((s for s in listed if s.get("id") == session_id), {"id": session_id, "listed": False})
    take(snapshot, "keycloak.session", session_id, before)
    r = await kc.request("DELETE", f"{kc.admin}/sessions/{_seg(session_id, 'session id')}",
                         params={"isOffline": "true" if offline_client_uuid else "false"})
    return {"snapshot": before, "status_code": r.status_code}


async def revoke_not_before(kc: KeycloakAdmin, *, push: bool = True, snapshot: SnapshotFn | None = None
                            ) -> dict[str, Any]:
    """Invalidate every token issued in the realm until now: `PUT /admin/realms/{realm}` `{"notBefore": now}`
    (epoch seconds), then (with `push`) `POST push-revocation` to clients that have an admin URL. Snapshot
    first (`keycloak.realm`: `GET` of the realm). Keycloak applies a partial realm body [K]."""
    before = await kc.get_json(kc.admin)
    take(snapshot, "keycloak.realm", kc.realm, before)
    now = int(kc.client._clock())
    r = await kc.request("PUT", kc.admin, json={"realm": kc.realm, "notBefore": now})
    out: dict[str, Any] = {"snapshot": before, "status_code": r.status_code, "not_before": now}
    if push:
        p = await kc.request("POST", f"{kc.admin}/push-revocation", idempotent=True)
        out["push"] = _json_body(p)
        out["push_status_code"] = p.status_code
    return out


# ------------------------------------------------------------------------------------------- pull


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    text = to_utc_iso(iso).replace("Z", "+00:00")
    return int(datetime.fromisoformat(text).timestamp() * 1000)


async def _event_stream(kc: KeycloakAdmin, stream: str, path: str, *, start_ms: int | None, until_ms: int | None,
                        page_size: int) -> AsyncIterator[Page]:
    """One stream's pages. Asks `direction=asc` and `dateFrom=<cursor ms>` (inclusive: the boundary events
    come again and dedupe by id). Cursor = the newest event time (ms) stored so far, but only while the
    answer runs oldest-first: a server that answers newest-first (one without `direction`) gets the old cursor
    on every page but the last, so a pull that dies mid-way loses nothing. One page is held back to know which
    is last."""
    params: dict[str, Any] = {"direction": "asc"}
    if start_ms is not None:
        params["dateFrom"] = str(start_ms)
    if until_ms is not None:
        params["dateTo"] = str(until_ms)
    start_cursor = str(start_ms) if start_ms is not None else None
    newest: int | None = start_ms
    last: int | None = None
    ascending = True
    held: tuple[list[Any], int | None] | None = None
    n = 0
    query = urlencode(params)

    def page(records: list[Any], cursor: str | None, number: int) -> Page:
        return Page.json_lines(stream, "keycloak-events", records, cursor,
                               f"GET {path}?{query} (page {number}, first={(number - 1) * page_size} max={page_size})")

    async for chunk in kc.pages(path, params, page_size):
        for ev in chunk:
            t = ev.get("time") if isinstance(ev, dict) else None
            if isinstance(t, int) and not isinstance(t, bool):
                if last is not None and t < last:
                    ascending = False
                last = t
                newest = t if newest is None else max(newest, t)
        if held is not None:
            n += 1
            yield page(held[0], str(held[1]) if ascending and held[1] is not None else start_cursor, n)
        held = (chunk, newest)
    if held is not None:
        n += 1
        yield page(held[0], str(newest) if newest is not None else start_cursor, n)


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str], on_journal: Callable[[JournalEntry], None] | None = None,
               page_size: int = PULL_PAGE, **client_options: Any) -> AsyncIterator[Page]:
    """Keycloak's stored events: stream `events` (`GET events`, login/token events) then stream `admin-events`
    (`GET admin-events`), format `keycloak-events` (each record is the REST representation, one JSON object per
    line, exactly what the parser reads from an export). Resumes from each stream's cursor (epoch ms of the
    newest stored event) else from `since`; `until` is `dateTo`. Check `event_config` for what is not stored."""
    until_ms = _ms(until)
    async with open_admin(settings, secret, on_journal=on_journal, **client_options) as kc:
        for stream, rel in (("events", "events"), ("admin-events", "admin-events")):
            saved = cursors.get(stream)
            start = int(saved) if saved and saved.isdigit() else _ms(since)
            async for p in _event_stream(kc, stream, f"{kc.admin}/{rel}", start_ms=start, until_ms=until_ms,
                                         page_size=page_size):
                yield p


# ------------------------------------------------------------------------------------------- probes


async def probe_old_secret(kc: KeycloakAdmin, client_id: str, old_secret: str) -> Verdict:
    """Does the realm's token endpoint still accept `old_secret` for `client_id`? `invalid_client` (400/401)
    proves it is refused; a token (200) proves it works (the token is not read further); else unverified."""
    try:
        r = await kc.client.request("POST", kc.token_path, data={"grant_type": "client_credentials"},
                                    auth=client_auth(client_id, old_secret)(), idempotent=True,
                                    accept_status=(400, 401, 403), secrets=[old_secret])
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"token endpoint failed, nothing proven: {e}", http_status=e.status)
    body = _json_body(r)
    code = body.get("error") if isinstance(body, dict) else None
    where = f"token endpoint of realm {kc.realm}"
    if r.status_code in (400, 401) and code == "invalid_client":
        return Verdict(REVOKED_VERIFIED, f"{where} refused the old secret of {client_id}: {r.status_code} "
                       "invalid_client", http_status=r.status_code)
    if r.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
        return Verdict(STILL_LIVE, f"{where} issued a token for {client_id} with the old secret: it still works "
                       "(a rotation policy may keep it; DELETE client-secret/rotated)", http_status=200)
    shown = code if isinstance(code, str) and code.isascii() and len(code) < 64 else "no error code"
    return Verdict(REVOKED_UNVERIFIED, f"{where} answered {r.status_code} ({shown}): not about the secret; nothing "
                   "proven", http_status=r.status_code)


async def probe_session(kc: KeycloakAdmin, user_id: str, session_id: str, *,
                        offline_client_uuid: str | None = None) -> Verdict:
    """Is the session gone? The user's session list (online, or offline for one client) must have been read
    and must not list it. The online list does not show offline sessions: probe those with the client."""
    which = "offline sessions" if offline_client_uuid else "sessions"
    try:
        listed = await user_sessions(kc, user_id, offline_client_uuid=offline_client_uuid)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"listing user {user_id}'s {which} failed, nothing proven: {e}",
                       http_status=e.status)
    if any(s.get("id") == session_id for s in listed):
        return Verdict(STILL_LIVE, f"user {user_id}'s {which} still list session {session_id}", http_status=200)
    return Verdict(REVOKED_VERIFIED, f"user {user_id}'s {which} ({len(listed)} listed) no longer include session "
                   f"{session_id}", http_status=200)



# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """Keycloak user sessions (`session:keycloak/<realm>:<id>`): the session is deleted, which ends the tokens
    issued in it at their next refresh; access tokens already issued live until they expire."""
    for key in credential.get("keys") or []:
        if key.startswith("session:keycloak/"):
            # `/<user>`: Keycloak reads (snapshot) and proves a session through its user's session list
            user = credential.get("principal")
            target = key.removeprefix("session:keycloak/") + (f"/{user}" if user else "")
            return RevokeHow("keycloak", "delete-session", target,
                             needs_raw_secret=False,
                             note="access tokens already issued stay valid until they expire; push not-before to "
                                  "end them all")
    return None


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                       | target                          | raw | act                   | probe                  |
# |----------------------------|---------------------------------|-----|-----------------------|------------------------|
# | `delete-session`           | `<realm>:<sessionId>[/<user>]`  | no  | `delete_session`      | `probe_session`        |
# | `logout-user`              | `<user>`                        | no  | `logout_user`         | no session listed      |
# | `regenerate-client-secret` | `<clientId>` (rotation)         | no  | `regenerate_secret`   | `probe_old_secret` with the old secret as raw |
# | `revoke-not-before`        | `<realm>` (the connector's)     | no  | `revoke_not_before`   | none                   |
#
# `<user>` is a user id, or a username (looked up with `GET users?username=…&exact=true`). Keycloak has no GET
# for one session: `delete_session` reads the user's session list for its snapshot and `probe_session` proves
# the deletion by that list, so the revocation set names the session's user when the case knows it
# (`/<user>`, the event's userId). Without a user the session is deleted by id (`DELETE sessions/{id}`, the
# snapshot only its id) and the probe cannot prove anything. The `<realm>` part is the event's `realmId`, which
# may be the realm's internal id rather than its name: the connector's own realm is used.

from connectors import verbs as _verbs  # noqa: E402


async def user_id_of(kc: KeycloakAdmin, user: str) -> str:
    """The id of user `user` (an id, else a username). Raises `NotFoundError`."""
    r = await kc.request("GET", f"{kc.admin}/users/{_seg(user, 'user')}", accept_status=(404,))
    body = _json_body(r) if r.status_code == 200 else None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return body["id"]
    found = await kc.get_json(f"{kc.admin}/users", params={"username": user.strip(), "exact": "true"})
    ids = [u["id"] for u in found or [] if isinstance(u, dict) and isinstance(u.get("id"), str)
           and str(u.get("username", "")).lower() == user.strip().lower()]
    if len(ids) != 1:
        raise NotFoundError(f"no user {user!r} (by id or username) in realm {kc.realm} of {kc.client.name}",
                            connector=kc.client.name, status=404, method="GET", path=f"{kc.admin}/users")
    return str(ids[0])


def _session_target(target: str) -> tuple[str, str | None]:
    realm_sid, _, user = target.strip().partition("/")
    _, sep, sid = realm_sid.rpartition(":")
    if not sep or not sid:
        raise ValueError(f"keycloak delete-session target {target!r} must be <realm>:<sessionId>[/<user>]")
    return sid, (user or None)


async def _act_delete_session(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                              snapshot: SnapshotFn) -> dict[str, Any]:
    sid, user = _session_target(target)
    async with open_admin(settings, secret) as kc:
        if user is not None:
            uid = await user_id_of(kc, user)
            return _verbs.answer(await delete_session(kc, uid, sid, snapshot=snapshot), user_id=uid)
        before = {"id": sid, "listed": None, "note": "no user named: Keycloak has no GET for one session"}
        take(snapshot, "keycloak.session", sid, before)
        r = await kc.request("DELETE", f"{kc.admin}/sessions/{_seg(sid, 'session id')}", params={"isOffline": "false"})
        return {"snapshot": before, "status_code": r.status_code}


async def _probe_delete_session(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None
                                ) -> Verdict:
    sid, user = _session_target(target)
    if user is None:
        return Verdict(REVOKED_UNVERIFIED, f"session {sid}: no user named, and Keycloak lists sessions per user or "
                       "client only; nothing proven (name the user: <realm>:<sessionId>/<user>)")
    async with open_admin(settings, secret) as kc:
        return await probe_session(kc, await user_id_of(kc, user), sid)


async def _act_logout_user(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                           snapshot: SnapshotFn) -> dict[str, Any]:
    async with open_admin(settings, secret) as kc:
        uid = await user_id_of(kc, target)
        return _verbs.answer(await logout_user(kc, uid, snapshot=snapshot), user_id=uid)


async def _probe_logout_user(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with open_admin(settings, secret) as kc:
        uid = await user_id_of(kc, target)
        listed = await user_sessions(kc, uid)
    if listed:
        return Verdict(STILL_LIVE, f"user {target} still has {len(listed)} online session(s)", http_status=200)
    return Verdict(REVOKED_VERIFIED, f"user {target}'s session list is empty", http_status=200)


async def _act_regenerate_secret(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                 snapshot: SnapshotFn) -> dict[str, Any]:
    async with open_admin(settings, secret) as kc:
        found = await find_client(kc, target.strip())
        return _verbs.answer(await regenerate_secret(kc, str(found.get("id")), snapshot=snapshot))


async def _probe_old_secret(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    if not raw:
        return Verdict(REVOKED_UNVERIFIED, f"client {target}: the old secret is needed to prove it refused "
                       "(--secrets-from); nothing proven")
    async with open_admin(settings, secret) as kc:
        return await probe_old_secret(kc, target.strip(), raw)


async def _act_revoke_not_before(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                 snapshot: SnapshotFn) -> dict[str, Any]:
    async with open_admin(settings, secret) as kc:
        if target.strip() and target.strip() != kc.realm:
            raise ValueError(f"keycloak revoke-not-before {target!r}: connector {settings.name} is for realm "
                             f"{kc.realm!r}")
        return _verbs.answer(await revoke_not_before(kc, snapshot=snapshot))


_verbs.register(VENDOR, "delete-session", act=_act_delete_session, probe=_verbs.guarded(_probe_delete_session),
                description="delete a user session (its tokens end at their next refresh)")
_verbs.register(VENDOR, "logout-user", act=_act_logout_user, probe=_verbs.guarded(_probe_logout_user),
                description="end every session of a user")
_verbs.register(VENDOR, "regenerate-client-secret", act=_act_regenerate_secret,
                probe=_verbs.guarded(_probe_old_secret), rotation=True,
                description="rotate a client's secret (the new one is never kept); proven with the old secret")
_verbs.register(VENDOR, "revoke-not-before", act=_act_revoke_not_before, probe=None,
                description="invalidate every token issued in the realm until now, and push it to clients")
