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

from casefile.formats import Format, SourceStream, chunk_of_lines, json_lines, register
from casefile.records import Event, Parsed, Problem
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import (
    JSON_STREAM_ERRORS,
    LineStream,
    first_nonblank_line,
    parse_json_lines,
    stream_error_reason,
    too_deep,
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
            try:
                yield from _record(value, index, f"{what} {index}")
            except orjson.JSONEncodeError as e:  # ijson reads any depth; orjson writes 255 levels (the id base)
                yield too_deep(index, e)
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
    head = first[1].lstrip("\ufeff").strip() if first and not chunk_of_lines(src) else ""
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


# ============================================================================================== live
#
# Live Google Workspace (Admin SDK): third-party OAuth tokens (Directory API `tokens`), the users they belong to
# (Directory API `users.list`) and the Reports API `activities.list` pull, all through `ConnectorClient`
# (connectors/http.py: retries, rate limits, redacted journal, pagers).
#
# Contract: the Admin SDK discovery documents google-api-python-client 2.202.0 ships (`admin.directory_v1`
# revision 20261104, `admin.reports_v1` revision 20260929). tests/connectors/test_google_live.py checks every
# request below against them offline (method, path template, parameter location, type, enum, pattern, required,
# and the OAuth scope of the token it carries), and against googleapiclient's own request building.
#
# Auth: a service account with domain-wide delegation. The connector secret is the service account's **JSON
# key** (`{"type": "service_account", "client_email", "private_key", "private_key_id", "token_uri", ...}`), and
# `client_id` in the connector settings is the **Workspace admin to impersonate** (`admin@acme.com`; the JWT's
# `sub`). The URL is the API root, `https://admin.googleapis.com` (settings URLs carry no query, so the subject
# cannot ride on it). stanch signs an RS256 JWT with PyJWT (RFC 7523 JWT bearer grant, as Google's "Using OAuth
# 2.0 for Server to Server Applications" describes: `iss` = client_email, `sub` = the admin, `scope`,
# `aud` = token_uri, `iat`, `exp` = iat + 1 h, header `kid` = private_key_id), POSTs it to the key's
# `token_uri` (`https://oauth2.googleapis.com/token`, https only) through its own `ConnectorClient`, and caches
# the access token per scope until 5 minutes before `expires_in` runs out. Each call asks for the narrowest
# scope its method declares in the discovery document:
#
# | calls                                   | scope                                                             |
# |-----------------------------------------|-------------------------------------------------------------------|
# | `users/{userKey}/tokens…`               | `https://www.googleapis.com/auth/admin.directory.user.security`   |
# | `users`, `users/{userKey}`              | `https://www.googleapis.com/auth/admin.directory.user.readonly`   |
# | `admin/reports/v1/activity/…`           | `https://www.googleapis.com/auth/admin.reports.audit.readonly`    |
#
# So the Admin console's domain-wide delegation entry for the service account's client id lists these three
# (the pull alone needs only the last). The private key, the signed assertion and every access token are
# scrubbed from the journal and errors (`secrets=` / `auth=`) and never stored.
#
# Errors: Google answers throttling as 429, or as 403 with `error.errors[].reason` `rateLimitExceeded`,
# `userRateLimitExceeded` or `quotaExceeded` (Admin SDK "Limits and quotas"): both are retried with backoff,
# up to the client's `max_retries`; any other 403 is a `PermissionDeniedError` naming Google's message. A 401
# drops the cached access token and retries once with a fresh one.
#
# Verbs (destructive ones snapshot first, `act.take`, then return `{"snapshot": ..., "status_code": ...}`):
#
# | verb                       | request                                                                    | undo |
# |----------------------------|----------------------------------------------------------------------------|------|
# | `delete_token`             | DELETE admin/directory/v1/users/{userKey}/tokens/{clientId} (204)          | none (the user consents again) |
# | `delete_token_all_users`   | users.list (customer=my_customer, all pages), then tokens.get and DELETE   | none |
# |                            | for each user holding a token for the client; bounded by the client's      |      |
# |                            | concurrency                                                                |      |
#
# `tokens.delete` "deletes all access tokens issued by a user for an application": the grant and its refresh
# tokens go with it. Snapshot: `google.oauth_token`, target `<userKey>:<clientId>`, body = the tokens.get answer.
#
# Probe `probe_token(user, clientId)`: tokens.get 200 = `still-live`; 404 is read as death only when the same
# user's tokens.list answers 200 without that client (so a misspelled user is not a proof) =
# `revoked-verified`; anything else (403, 429, 5xx, timeout, the user unknown) = `revoked-unverified`.
#
# Pull (`pull`, connectors/pull.py): Reports API `activities.list` with `userKey=all` for the streams `token`,
# `login` and `admin` (applicationName), `startTime`/`endTime`, `maxResults=1000`, following `nextPageToken` as
# `pageToken`. Pages are serialised one activity per line, read by `google-reports` (the same parser and the
# same event ids as an exported activities file). Cursor: the newest `id.time` stored for the stream. The Reports
# API lists newest first, so within one pull the pages run backwards in time: only the **last** page of a
# stream carries the cursor (the newest time of the whole run); earlier pages carry none, so a pull that dies
# mid-way resumes from the previous cursor and re-fetches (dedupes) instead of skipping older events. The next
# pull starts `RESUME_OVERLAP_S` before the cursor, because Google delivers some audit events late (Admin help
# "Data retention and lag times"); re-read events dedupe by id. Filters (`stanch pull --filter`):
# `application=token|login|admin` (pull that stream only) and `user=<email or profile id>` (userKey instead of
# `all`; streams are then named `<application>:user=<value>` and keep their own cursors).

import asyncio  # noqa: E402
from collections.abc import AsyncIterator, Callable, Collection, Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from urllib.parse import quote  # noqa: E402

import httpx  # noqa: E402

from casefile.timeutil import to_micros  # noqa: E402
from connectors.act import SnapshotFn, take  # noqa: E402
from connectors.config import ConfigError, ConnectorSettings  # noqa: E402
from connectors.http import (  # noqa: E402
    REQUEST_ID_HEADER,
    ConfigurationError,
    ConnectorClient,
    ConnectorError,
    InvalidCredentialError,
    JournalEntry,
    PermissionDeniedError,
    RateLimitedError,
    UnexpectedResponseError,
)
from connectors.pull import Page  # noqa: E402
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict  # noqa: E402

API_ROOT = "https://admin.googleapis.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105  (a URL, not a secret)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE_TOKENS = "https://www.googleapis.com/auth/admin.directory.user.security"
SCOPE_USERS = "https://www.googleapis.com/auth/admin.directory.user.readonly"
SCOPE_REPORTS = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
#: Google accepts an assertion for at most one hour.
ASSERTION_LIFETIME_S = 3600
#: An access token is replaced this long before Google says it expires.
TOKEN_REFRESH_MARGIN_S = 300
#: 403 reasons that mean "slow down" rather than "not allowed" (Admin SDK limits and quotas).
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
#: The pull's streams (Reports API applicationName) and the parser their pages go through.
PULL_APPLICATIONS = ("token", "login", "admin")
PULL_FORMAT = "google-reports"
#: activities.list `maxResults`: the discovery document says 1..1000 (default 1000).
REPORTS_PAGE_SIZE = 1000
#: users.list `maxResults`: 1..500 (default 100).
USERS_PAGE_SIZE = 500
#: How far before the stored cursor the next pull starts again (late audit events; re-reads dedupe).
RESUME_OVERLAP_S = 3600
_PULL_FILTERS = frozenset({"application", "user"})
_DIRECTORY = "admin/directory/v1"
_REPORTS = "admin/reports/v1"


def _segment(value: str, what: str) -> str:
    """A path parameter as one URL segment: non-empty, no control characters, `/` and friends escaped."""
    text = str(value).strip()
    if not text or len(text) > 512 or any(ord(ch) < 0x20 for ch in text):
        raise ValueError(f"{what} {value!r} is not a usable Google id (empty, too long or with control characters)")
    return quote(text, safe="")  # as googleapiclient escapes path parameters (`@` → %40)


def scope_for(path: str) -> str:
    """The narrowest scope the discovery document allows for a request path (see the table above)."""
    p = "/" + path.lstrip("/")
    if p.startswith(f"/{_REPORTS}/"):
        return SCOPE_REPORTS
    if p.startswith(f"/{_DIRECTORY}/users/") and "/tokens" in p:
        return SCOPE_TOKENS
    return SCOPE_USERS


# ------------------------------------------------------------------------------------------- auth


@dataclass
class ServiceAccountKey:
    """The parts of a service-account JSON key stanch uses. `private_key` stays in memory only."""

    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str
    project_id: str | None = None

    @classmethod
    def parse(cls, secret: str, name: str) -> ServiceAccountKey:
        """Read the connector secret (a service-account JSON key); a one-line `ConfigurationError` otherwise."""
        def bad(why: str) -> ConfigurationError:
            return ConfigurationError(f"connector {name}: the secret must be a Google service-account JSON key "
                                      f"({why}); run `stanch connector add {name}` with the key file's text",
                                      connector=name)
        try:
            info = orjson.loads(secret.strip())
        except orjson.JSONDecodeError:
            raise bad("not JSON") from None
        if not isinstance(info, dict):
            raise bad("not a JSON object")
        if info.get("type") != "service_account":
            raise bad(f"type is {str(info.get('type'))[:40]!r}, not 'service_account'")
        email, key = info.get("client_email"), info.get("private_key")
        if not isinstance(email, str) or "@" not in email:
            raise bad("no client_email")
        if not isinstance(key, str) or "PRIVATE KEY-----" not in key:
            raise bad("no private_key PEM")
        token_uri = info.get("token_uri") or TOKEN_URI
        if not isinstance(token_uri, str) or not token_uri.startswith("https://"):
            raise bad("token_uri is not an https:// URL")
        kid = info.get("private_key_id")
        project = info.get("project_id")
        return cls(email, key, kid if isinstance(kid, str) and kid else None, token_uri,
                   project if isinstance(project, str) else None)

    def assertion(self, subject: str, scope: str, now: float) -> str:
        """The signed JWT (RS256) Google's token endpoint trades for an access token."""
        try:
            import jwt as pyjwt  # PyJWT[crypto]
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ImportError("Google service-account auth needs PyJWT with cryptography: "
                              "pip install 'PyJWT[crypto]'") from exc
        issued = int(now)
        claims = {"iss": self.client_email, "sub": subject, "scope": scope, "aud": self.token_uri,
                  "iat": issued, "exp": issued + ASSERTION_LIFETIME_S}
        headers = {"kid": self.private_key_id} if self.private_key_id else None
        try:
            return str(pyjwt.encode(claims, self.private_key, algorithm="RS256", headers=headers))
        except (ValueError, TypeError) as exc:  # an unreadable PEM: never echo it
            raise ConfigurationError(f"the service-account private key of {self.client_email} cannot sign "
                                     f"({type(exc).__name__}); download a new JSON key", connector="google") from None


_TOKEN_ERROR_FIX = {
    "unauthorized_client": "in the Admin console (Security → API controls → Domain-wide delegation), give the "
                           "service account's client id the scope",
    "access_denied": "in the Admin console (Security → API controls → Domain-wide delegation), give the "
                     "service account's client id the scope",
    "invalid_grant": "check that client_id names an existing Workspace admin, that the key is not deleted or "
                     "disabled, and that this machine's clock is right",
    "invalid_scope": "the scope is unknown to Google; report this as a stanch bug",
}


class GoogleClient(ConnectorClient):
    """A `ConnectorClient` that authenticates as a service account impersonating a Workspace admin, with a
    per-scope access token, and reads Google's 403 `rateLimitExceeded` as a wait."""

    def __init__(self, name: str, base_url: str, *, key: ServiceAccountKey, subject: str,
                 token_client: ConnectorClient, **options: Any) -> None:
        super().__init__(name, base_url, **options)
        self.key = key
        self.subject = subject
        self.token_client = token_client
        self._tokens: dict[str, tuple[str, float]] = {}  # scope → (access token, expires at, epoch s)
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> GoogleClient:
        return self

    async def aclose(self) -> None:
        """Close both connection pools and forget the access tokens."""
        self._tokens.clear()
        await self.token_client.aclose()
        await super().aclose()

    async def access_token(self, scope: str) -> str:
        """An access token for `scope`: the cached one, or a new one from the token endpoint."""
        async with self._token_lock:
            cached = self._tokens.get(scope)
            if cached is not None and self._clock() < cached[1] - TOKEN_REFRESH_MARGIN_S:
                return cached[0]
            now = self._clock()
            assertion = self.key.assertion(self.subject, scope, now)
            path = httpx.URL(self.key.token_uri).path or "/token"
            r = await self.token_client.request(
                "POST", path, data={"grant_type": JWT_BEARER, "assertion": assertion}, idempotent=True,
                accept_status=(400, 401, 403), secrets=(assertion, self.key.private_key),
                headers={"Accept": "application/json"})
            body = _json_body(r)
            token = body.get("access_token") if body else None
            if r.status_code >= 400 or not isinstance(token, str) or not token:
                raise self._token_error(r, body, scope)
            self._remember_secrets([token, f"Bearer {token}"])
            self.token_client._remember_secrets([token])
            expires_in = body.get("expires_in") if body else None
            life = float(expires_in) if isinstance(expires_in, int | float) and not isinstance(
                expires_in, bool) else 3600.0
            self._tokens[scope] = (token, now + life)
            return token

    def _token_error(self, r: httpx.Response, body: dict[str, Any] | None, scope: str) -> ConnectorError:
        code = str((body or {}).get("error") or "")[:60]
        desc = self._scrub(" ".join(str((body or {}).get("error_description") or "").split()))[:160]
        fix = _TOKEN_ERROR_FIX.get(code, "check the service-account key and the domain-wide delegation")
        if code in ("unauthorized_client", "access_denied"):
            fix = f"{fix} {scope}"
        what = f"{code}: {desc}" if code and desc else code or desc or "no access token in the answer"
        info: dict[str, Any] = {"connector": self.name, "status": r.status_code, "method": "POST",
                                "path": r.request.url.path,
                                "request_id": r.request.headers.get(REQUEST_ID_HEADER, "")}
        message = (f"{r.status_code} from {self.name}'s token endpoint for {self.key.client_email} as "
                   f"{self.subject} ({what}): {fix}")
        if r.status_code < 400:
            return UnexpectedResponseError(message, **info)
        return InvalidCredentialError(message, **info)

    async def request(self, method: str, path: str | httpx.URL, *, accept_status: Collection[int] = (),
                      auth: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """`ConnectorClient.request` with the service account's access token for the path's scope; retries
        Google's 403 rate limits with backoff and a 401 once with a fresh token."""
        scope = scope_for(httpx.URL(path).path if isinstance(path, httpx.URL) else str(path).split("?")[0])
        refreshed = False
        limited = 0
        while True:
            header = dict(auth) if auth is not None else {
                "Authorization": f"Bearer {await self.access_token(scope)}"}
            r = await super().request(method, path, accept_status={*accept_status, 401, 403}, auth=header, **kwargs)
            status = r.status_code
            if status == 401 and 401 not in accept_status and auth is None and not refreshed:
                refreshed = True
                self._tokens.pop(scope, None)
                continue
            if status == 403 and _error_reasons(r) & RATE_LIMIT_REASONS:
                if limited < self.max_retries:
                    limited += 1
                    await self._sleep(self._backoff(limited))
                    continue
                raise RateLimitedError(
                    f"403 from {self.name}: Google's rate limit ({', '.join(sorted(_error_reasons(r)))}) for "
                    f"{method} {self._show_path(r.request.url)} after {limited} retries; try again in a minute",
                    connector=self.name, status=403, method=method, path=self._show_path(r.request.url),
                    request_id=r.request.headers.get(REQUEST_ID_HEADER, ""))
            if status in (401, 403) and status not in accept_status:
                raise self._google_status_error(r)
            return r

    def _google_status_error(self, r: httpx.Response) -> ConnectorError:
        request_id = r.request.headers.get(REQUEST_ID_HEADER, "")
        if r.status_code != 403:
            return self._status_error(r, request_id, 0, None)
        path = self._show_path(r.request.url)
        detail = self._error_detail(r)
        return PermissionDeniedError(
            f"403 from {self.name}: Google refused {r.request.method} {path}{detail}; {self.subject} must be a "
            f"Workspace admin with that privilege and the scope {scope_for(r.request.url.path)} must be delegated "
            "to the service account", connector=self.name, status=403, method=r.request.method, path=path,
            request_id=request_id)


def _json_body(r: httpx.Response) -> dict[str, Any] | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_reasons(r: httpx.Response) -> set[str]:
    """`error.errors[].reason` of a Google error answer (`{"error": {"code", "message", "errors": [...]}}`)."""
    body = _json_body(r)
    err = body.get("error") if body else None
    errors = err.get("errors") if isinstance(err, dict) else None
    return {str(e["reason"]) for e in errors or [] if isinstance(e, dict) and isinstance(e.get("reason"), str)}


def client_for(settings: ConnectorSettings, secret: str, **kwargs: Any) -> GoogleClient:
    """A `GoogleClient` for a `google` connector: `settings.url` the API root (`https://admin.googleapis.com`),
    `settings.client_id` the admin to impersonate, `secret` the service-account JSON key. `kwargs` are
    `ConnectorClient` options that override the settings' (tests pass `transport`, `sleep`, `clock`); both the
    API client and the token endpoint's client get them."""
    subject = (settings.client_id or "").strip()
    if "@" not in subject:
        raise ConfigError(f"connector {settings.name}: set client_id to the Workspace admin the service account "
                          "impersonates (admin@your-domain); domain-wide delegation needs a subject")
    key = ServiceAccountKey.parse(secret, settings.name)
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
        "headers": {"Accept": "application/json"},
    }
    options.update(kwargs)
    token_url = httpx.URL(key.token_uri)
    token_options = {k: v for k, v in options.items() if k not in ("rate_limit_per_s", "headers")}
    token_client = ConnectorClient(f"{settings.name}", f"{token_url.scheme}://{token_url.netloc.decode()}",
                                   **token_options)
    token_client._remember_secrets([key.private_key])
    return GoogleClient(settings.name, settings.url, key=key, subject=subject, token_client=token_client, **options)


def _obj(client: ConnectorClient, response: httpx.Response) -> dict[str, Any]:
    body = client._json(response)
    if not isinstance(body, dict):
        req = response.request
        raise UnexpectedResponseError(
            f"{response.status_code} from {client.name}: {req.method} {req.url.path} is not a JSON object; check "
            "that the URL is https://admin.googleapis.com", connector=client.name, status=response.status_code,
            method=req.method, path=req.url.path)
    return body


# ------------------------------------------------------------------------------------------- whoami


async def me(client: GoogleClient) -> dict[str, Any]:
    """Who the connector acts as: the service account, the impersonated admin (users.get, basic projection),
    and which of the connector's scopes Google grants it (a token request per scope; nothing changes)."""
    scopes: dict[str, str] = {}
    for scope in (SCOPE_TOKENS, SCOPE_USERS, SCOPE_REPORTS):
        try:
            await client.access_token(scope)
            scopes[scope] = "granted"
        except InvalidCredentialError as e:
            scopes[scope] = f"refused ({e.status})"
    out: dict[str, Any] = {"service_account": client.key.client_email, "key_id": client.key.private_key_id,
                           "project_id": client.key.project_id, "subject": client.subject, "scopes": scopes}
    if scopes[SCOPE_USERS] == "granted":
        user = _obj(client, await client.request(
            "GET", f"{_DIRECTORY}/users/{_segment(client.subject, 'admin')}",
            params={"projection": "basic", "viewType": "admin_view"}))
        out["admin"] = {k: user.get(k) for k in ("primaryEmail", "id", "customerId", "isAdmin", "isDelegatedAdmin",
                                                   "suspended")}
    elif all(v != "granted" for v in scopes.values()):
        raise InvalidCredentialError(f"{client.name}: Google granted none of the connector's scopes to "
                                     f"{client.key.client_email} as {client.subject}: {scopes}", connector=client.name)
    return out


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: the service account, the admin it impersonates, the scopes it holds."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret) as client:
            return await me(client)

    return asyncio.run(ask())


# ------------------------------------------------------------------------------------------- tokens


def _tokens_path(user_key: str, client_id: str | None = None) -> str:
    path = f"{_DIRECTORY}/users/{_segment(user_key, 'userKey')}/tokens"
    return f"{path}/{_segment(client_id, 'clientId')}" if client_id is not None else path


async def list_tokens(client: ConnectorClient, user_key: str) -> list[dict[str, Any]]:
    """tokens.list: the third-party OAuth tokens a user has issued (`clientId`, `displayText`, `scopes`,
    `anonymous`, `nativeApp`, `userKey`). The method does not page."""
    body = _obj(client, await client.request("GET", _tokens_path(user_key)))
    items = body.get("items")
    return [t for t in items if isinstance(t, dict)] if isinstance(items, list) else []


async def get_token(client: ConnectorClient, user_key: str, client_id: str) -> dict[str, Any] | None:
    """tokens.get: the user's token for one client, or None when Google answers 404."""
    r = await client.request("GET", _tokens_path(user_key, client_id), accept_status=(404,))
    return None if r.status_code == 404 else _obj(client, r)


async def delete_token(client: ConnectorClient, user_key: str, client_id: str,
                       snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """tokens.delete: every token `user_key` issued to `client_id` (204). Snapshot first (`google.oauth_token`,
    target `<userKey>:<clientId>`). When tokens.get already answers 404 nothing is sent and `status_code` is
    404 (`snapshot` None). No undo. Follow with `probe_token`."""
    body = await get_token(client, user_key, client_id)
    if body is None:
        return {"snapshot": None, "status_code": 404}
    take(snapshot, "google.oauth_token", f"{user_key}:{client_id}", body)
    r = await client.request("DELETE", _tokens_path(user_key, client_id))
    return {"snapshot": body, "status_code": r.status_code}


async def list_users(client: ConnectorClient, *, customer: str = "my_customer",
                     domain: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """users.list, every page (`maxResults=500`, `nextPageToken` → `pageToken`): `id` and `primaryEmail` of
    each user of the customer (or of one `domain`)."""
    params: dict[str, Any] = {"maxResults": USERS_PAGE_SIZE, "projection": "basic",
                              "fields": "nextPageToken,users(id,primaryEmail)"}
    if domain:
        params["domain"] = domain
    else:
        params["customer"] = customer
    async for user in client.paginate_cursor(f"{_DIRECTORY}/users", cursor_path="nextPageToken",
                                             cursor_param="pageToken", items_path="users", params=params):
        if isinstance(user, dict):
            yield user


async def delete_token_all_users(client: ConnectorClient, client_id: str, snapshot: SnapshotFn | None = None,
                                 *, customer: str = "my_customer", domain: str | None = None) -> dict[str, Any]:
    """Delete `client_id`'s tokens from every user: users.list page by page, then for each user tokens.get and,
    where a token exists, a snapshot (`google.oauth_token`) and tokens.delete. Requests run concurrently up to
    the client's concurrency. A user whose check or delete fails is listed in `failed` and the rest go on.

    Returns `{"snapshot": [token, ...], "status_code": 204 when every delete succeeded (also when none was
    needed), else the first failure's status or None, "users_checked", "deleted": [userKey, ...], "failed":
    [{"user", "status", "error"}]}`."""
    _segment(client_id, "clientId")
    snapshots: list[dict[str, Any]] = []
    deleted: list[str] = []
    failed: list[dict[str, Any]] = []
    checked = 0

    async def one(user: dict[str, Any]) -> None:
        key = str(user.get("primaryEmail") or user.get("id") or "")
        if not key:
            return
        try:
            result = await delete_token(client, key, client_id, snapshot)
        except ConnectorError as e:
            failed.append({"user": key, "status": e.status, "error": str(e)})
            return
        if result["snapshot"] is not None:
            snapshots.append(result["snapshot"])
            deleted.append(key)

    batch: list[dict[str, Any]] = []
    async for user in list_users(client, customer=customer, domain=domain):
        batch.append(user)
        if len(batch) >= USERS_PAGE_SIZE:
            checked += len(batch)
            await asyncio.gather(*(one(u) for u in batch))
            batch = []
    checked += len(batch)
    await asyncio.gather(*(one(u) for u in batch))
    status = 204 if not failed else failed[0]["status"]
    return {"snapshot": snapshots, "status_code": status, "users_checked": checked, "deleted": sorted(deleted),
            "failed": failed}


async def probe_token(client: ConnectorClient, user_key: str, client_id: str) -> Verdict:
    """Is `user_key`'s grant to `client_id` gone? tokens.get 200 = `still-live`; 404 while tokens.list for the
    same user answers 200 without that client = `revoked-verified`; anything else proves nothing."""
    what = f"GET {_tokens_path(user_key, client_id)}"
    try:
        r = await client.request("GET", _tokens_path(user_key, client_id), accept_status=(404,))
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what} failed, nothing proven: {e}", http_status=e.status)
    if r.status_code == 404:
        try:
            tokens = await list_tokens(client, user_key)
        except ConnectorError as e:
            return Verdict(REVOKED_UNVERIFIED, f"{what} answered 404, but listing the user's tokens failed: {e}",
                           http_status=404)
        if any(t.get("clientId") == client_id for t in tokens):
            return Verdict(STILL_LIVE, f"{what} answered 404 but tokens.list still holds client {client_id}",
                           http_status=404)
        return Verdict(REVOKED_VERIFIED, f"{what} refused: 404, and the user's tokens ({len(tokens)}) hold none "
                       f"for client {client_id}", http_status=404)
    try:
        body = _obj(client, r)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without a token: {e}",
                       http_status=r.status_code)
    if body.get("clientId") not in (None, client_id):
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} for another client",
                       http_status=r.status_code)
    scopes = body.get("scopes")
    n = len(scopes) if isinstance(scopes, list) else 0
    return Verdict(STILL_LIVE, f"{what} answered {r.status_code}: {body.get('displayText')!r} still holds "
                   f"{n} scope(s)", http_status=r.status_code)


# ------------------------------------------------------------------------------------------- Reports pull


def _rfc3339(value: str, what: str) -> str:
    try:
        return to_utc_iso(value)
    except (TimeError, ValueError) as e:
        raise ConfigError(f"{what} {value!r} is not a time (ISO 8601 / RFC 3339)") from e


def _minus(iso: str, seconds: int) -> str:
    micros = to_micros(iso) - seconds * 1_000_000
    return to_utc_iso(f"{micros // 1_000_000}.{micros % 1_000_000:06d}")


def _activity_time(activity: Any) -> str | None:
    ident = activity.get("id") if isinstance(activity, dict) else None
    raw = ident.get("time") if isinstance(ident, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return to_utc_iso(raw)
    except (TimeError, ValueError):
        return None


async def pull_activities(client: ConnectorClient, application: str, *, since: str | None, until: str | None,
                          cursor: str | None = None, user_key: str = "all", stream: str | None = None
                          ) -> AsyncIterator[Page]:
    """One application's activities as `Page`s (activities.list, newest first, every page): from
    `cursor` − `RESUME_OVERLAP_S` when given, else `since`, to `until`. Only the last page carries the new
    cursor (the newest `id.time` of the run); see the section comment for why."""
    if application not in PULL_APPLICATIONS:
        raise ConfigError(f"google pull: application {application!r} is not one of {', '.join(PULL_APPLICATIONS)}")
    stream = stream or application
    path = f"{_REPORTS}/activity/users/{_segment(user_key, 'userKey')}/applications/{application}"
    query: dict[str, Any] = {"maxResults": REPORTS_PAGE_SIZE}
    if cursor:
        query["startTime"] = _minus(_rfc3339(cursor, "cursor"), RESUME_OVERLAP_S)
    elif since:
        query["startTime"] = _rfc3339(since, "since")
    if until:
        query["endTime"] = _rfc3339(until, "until")
    endpoint = f"GET /{path}?" + "&".join(f"{k}={v}" for k, v in query.items())
    newest: str | None = None
    newest_us = -1
    seen: set[str] = set()
    pending: list[Any] | None = None
    while True:
        r = await client.request("GET", path, params=query)
        body = _obj(client, r)
        items = body.get("items")
        items = [a for a in items if isinstance(a, dict)] if isinstance(items, list) else []
        for activity in items:
            t = _activity_time(activity)
            if t is not None and to_micros(t) > newest_us:
                newest, newest_us = t, to_micros(t)
        token = body.get("nextPageToken")
        last = not isinstance(token, str) or not token
        # Hold each non-empty page back one round, so the last one yielded can carry the cursor.
        if items:
            if pending is not None:
                yield Page.json_lines(stream, PULL_FORMAT, pending, None, endpoint)
            pending = items
        if last:
            break
        if token in seen:
            raise client._loop_error(r)
        seen.add(str(token))
        query["pageToken"] = token
    if pending is not None:
        yield Page.json_lines(stream, PULL_FORMAT, pending, newest, endpoint)


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str], on_journal: Callable[[JournalEntry], None] | None = None,
               filters: Mapping[str, str] | None = None) -> AsyncIterator[Page]:
    """connectors/pull.py hook: Reports API activities for the streams `token`, `login` and `admin` (format
    `google-reports`), resuming each from its cursor. Filters: `application`, `user` (section comment)."""
    filters = dict(filters or {})
    unknown = set(filters) - _PULL_FILTERS
    if unknown:
        raise ConfigError(f"google pull: unknown filter {', '.join(sorted(unknown))}; this kind takes "
                          f"{', '.join(sorted(_PULL_FILTERS))}")
    apps: tuple[str, ...] = PULL_APPLICATIONS
    if "application" in filters:
        if filters["application"] not in PULL_APPLICATIONS:
            raise ConfigError(f"google pull: --filter application={filters['application']!r}: choose one of "
                              f"{', '.join(PULL_APPLICATIONS)}")
        apps = (filters["application"],)
    user = filters.get("user")
    async with client_for(settings, secret, on_journal=on_journal) as client:
        for app in apps:
            stream = f"{app}:user={user}" if user else app
            async for page in pull_activities(client, app, since=since, until=until, cursor=cursors.get(stream),
                                              user_key=user or "all", stream=stream):
                yield page


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                         | target              | raw | act                      | probe         |
# |------------------------------|---------------------|-----|--------------------------|---------------|
# | `delete-oauth-token`         | `<userKey>:<clientId>` | no | `delete_token`          | `probe_token` |
# | `delete-oauth-token-all-users` | `<clientId>`      | no  | `delete_token_all_users` | none          |
#
# `<userKey>` is the user's primary email or id (neither holds `:`), `<clientId>` the OAuth client id.

from connectors import verbs as _verbs  # noqa: E402


def _token_target(target: str) -> tuple[str, str]:
    user, sep, client_id = target.strip().partition(":")
    if not sep or not user or not client_id:
        raise ValueError(f"google delete-oauth-token target {target!r} must be <userKey>:<clientId>")
    return user, client_id


async def _act_delete_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                            snapshot: SnapshotFn) -> dict[str, Any]:
    user, client_id = _token_target(target)
    async with client_for(settings, secret) as client:
        return _verbs.answer(await delete_token(client, user, client_id, snapshot))


async def _probe_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    user, client_id = _token_target(target)
    async with client_for(settings, secret) as client:
        return await probe_token(client, user, client_id)


async def _act_delete_token_all_users(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                      snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await delete_token_all_users(client, target.strip(), snapshot))


_verbs.register(VENDOR, "delete-oauth-token", act=_act_delete_token, probe=_verbs.guarded(_probe_token),
                description="delete every token a user issued to one OAuth client (tokens.delete)")
_verbs.register(VENDOR, "delete-oauth-token-all-users", act=_act_delete_token_all_users, probe=None,
                description="delete one OAuth client's tokens from every user of the customer")
