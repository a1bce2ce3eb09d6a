"""Salesforce Event Monitoring connector (parsers registered on import). Reference: connectors.md §6.6,
incidents.md §1.4/§1.9.

Two formats, one record model:

* `salesforce-eventlogfile`: the CSV an `EventLogFile.LogFile` download gives, for every EventType (Login,
  Logout, API, RestApi, BulkApi, BulkApi2, UniqueQuery, URI, LoginAs, ApiTotalUsage, ...). Columns are read
  by the header's names, never by position (Salesforce changes column sets between releases). Streamed with
  the csv module; provenance "line" = the physical CSV line where the row starts (a quoted QUERY may span
  lines). Header rows are reported as `skipped`; a header met again mid-file starts a new column set, so the
  files of several EventTypes concatenated with `cat` parse too. The same reader takes a CSV export of
  `LoginHistory` or `SetupAuditTrail` (its header is the object's field names). Not splittable: the header
  must stay with its rows.
* `salesforce-eventlog-json`: JSON records, one format with per-record detection, because real exports mix
  shapes in one file (the AppOmni sample holds EventLogFile rows, Real-Time Event Monitoring stream messages
  and Setup Audit Trail records side by side) while detection is per file. Each record is one of
  - an EventLogFile row as JSON (`EVENT_TYPE` + the CSV column names; camelCase/lowercase names of SIEM
    exports are mapped back to the column names);
  - a Real-Time Event Monitoring object (`LoginEvent`, `ApiEvent`, `LogoutEvent`, `BulkApiResultEvent`,
    `ReportEvent`, `LightningUriEvent`, `IdentityVerificationEvent`, ...), bare (`attributes.type`) or in
    its streaming envelope (`{"channel": "/event/LoginEventStream", "data": {"payload": {...}}}`);
  - a `LoginHistory` record (LoginTime, UserId, SourceIp, Status, Application, Browser, LoginType, ApiType);
  - a `SetupAuditTrail` record (CreatedDate, CreatedById/CreatedBy.Username, Action, Section, Display,
    DelegateUser; also AppOmni's `sfdc_created_*` snake_case rendering) → `admin.change`.
  Read as JSON lines (splittable), as a JSON array, or as a SOQL/REST query response
  (`{"totalSize":…, "records": […]}`, also `sf data query --json`'s `result.records`); in the two document
  shapes provenance "line" = the 1-based index of the record.

Identity choices. principal = the 18-character user id (`USER_ID_DERIVED`, else the 15-character `USER_ID`
extended with its case-checksum, so a Login row and an API row of the same user agree); the user name goes to
`extra.user_name`. client = the connected app id (also 15 → 18 characters), else the app's name. session_id =
`LOGIN_KEY`: it starts at the Login row and is carried by every later row of that login (Login rows have an
empty SESSION_KEY, so SESSION_KEY cannot join a login to its API calls); SESSION_KEY goes to
`extra.session_key`. Neither is a credential key: both are session identifiers, not the OAuth token. Event
Monitoring never logs the token itself, so events carry no credential unless a raw token (`00D…!…`) shows up in
a field, in which case it is fingerprinted and redacted, never copied.

vendor_id = `<EVENT_TYPE>:<REQUEST_ID>:<time>` for EventLogFile rows (Daily and Hourly files hold the same rows,
so both dedupe; rows without REQUEST_ID fall back on the case file's hash of the normalised record),
`<type>:<EventIdentifier>` for real-time objects, `<type>:<Id>` for LoginHistory/SetupAuditTrail records.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import re
import sys
from collections.abc import Iterator
from functools import lru_cache
from typing import IO, Any

import ijson
import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import find_secrets, fingerprint, may_contain_secret, redaction_marker
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import JSON_STREAM_ERRORS, PrefixedStream, stream_error_reason, text_reader

VENDOR = "salesforce"
_MISSING = frozenset({"", "null", "none", "n/a", "unknown"})

with contextlib.suppress(OverflowError):  # a QUERY column can exceed csv's 128 KiB default
    csv.field_size_limit(min(sys.maxsize, 64 << 20))

# ---------------------------------------------------------------------------------------------- values

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@lru_cache(maxsize=8192)
def _col(name: str) -> str:
    """A field name in EventLogFile column spelling: `userIdDerived`/`UserId`/`user_id` → `USER_ID_DERIVED`/`USER_ID`."""
    return _CAMEL.sub("_", name.strip().lstrip("\ufeff")).upper()


def _columns(rec: dict[str, Any]) -> dict[str, Any]:
    if "EVENT_TYPE" in rec:  # fast path: already EventLogFile column names
        return rec
    return {_col(k): v for k, v in rec.items() if isinstance(k, str)}


# A usable string: None for absent, empty and placeholder values (`null`, `none`, `n/a`, `unknown`).
_str = text_reader(_MISSING, fold_case=True)


def _first(rec: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = _str(rec.get(name))
        if value is not None:
            return value
    return None


def _int(value: Any) -> int | None:
    text = _str(value)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except (ValueError, OverflowError):
            return None


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID15 = re.compile(r"^[A-Za-z0-9]{15}$")


@lru_cache(maxsize=65536)
def sfid18(value: str) -> str:
    """A 15-character case-sensitive Salesforce id with its 3-character case checksum (the 18-character form).

    Any other value is returned unchanged.
    """
    if not _ID15.match(value):
        return value
    suffix = ""
    for i in range(0, 15, 5):
        bits = sum(1 << j for j, ch in enumerate(value[i : i + 5]) if "A" <= ch <= "Z")
        suffix += _B32[bits]
    return value + suffix


def _sf_id(value: str | None) -> str | None:
    return sfid18(value) if value else None


@lru_cache(maxsize=65536)
def _ip(value: str) -> str | None:
    """The value when it is an IP address (ELF writes `Salesforce.com IP` for internal callers)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _src_ip(rec: dict[str, Any], extra: dict[str, Any]) -> str | None:
    client = _str(rec.get("CLIENT_IP"))
    source = _str(rec.get("SOURCE_IP"))
    ip = _ip(client) if client else None
    sip = _ip(source) if source else None
    if ip is None:
        if client:
            extra["client_ip"] = client
        return sip
    if sip and sip != ip:
        extra["source_ip"] = sip
    return ip


def _safe(text: str | None) -> tuple[str | None, CredentialRef | None]:
    """(text with any raw credential redacted, a ref fingerprinting the first credential found)."""
    if text is None or not may_contain_secret(text):
        return text, None
    found = find_secrets(text)
    if not found:
        return text, None
    start, end, _ = found[0]
    fp = fingerprint(text[start:end])
    ref = CredentialRef(keys=fp.keys, kind=fp.kind, preview=fp.preview or None)
    for s, e, _ in reversed(found):
        text = text[:s] + redaction_marker(text[s:e]) + text[e:]
    return text, ref


def _time(rec: dict[str, Any], names: tuple[str, ...]) -> str | None | TimeError:
    """The first readable time among `names`: None when none is present, a TimeError when unreadable."""
    value = _first(rec, *names)
    if value is None:
        return None
    try:
        return to_utc_iso(value)
    except TimeError as e:
        return e


# ---------------------------------------------------------------------------------------------- actions

_LOGIN_OK = "LOGIN_NO_ERROR"
_API_CALL_TYPES = frozenset(
    {"API", "RestApi", "URI", "UniqueQuery", "ApiTotalUsage", "AuraRequest", "LightningInteraction",
     "LightningPageView", "VisualforceRequest", "ApexRestApi", "ApexSoap", "Search", "Report", "ListViewEvent",
     "Dashboard", "MetadataApiOperation", "QueuedExecution", "Sites"})
_EXPORT_TYPES = frozenset({"BulkApi", "BulkApi2", "BulkApiRequest", "ReportExport", "DocumentAttachmentDownloads"})
# Bulk operations that write, not read: an ingest job is an API call, a query job is an export.
_BULK_WRITES = frozenset({"insert", "update", "upsert", "delete", "harddelete"})

_RT_API = frozenset({"ApiEvent", "LightningUriEvent", "UriEvent", "ListViewEvent", "LightningPageViewEvent"})
_RT_EXPORT = frozenset({"BulkApiResultEvent", "FileEvent"})


def _rt_base(type_name: str) -> str:
    """`LoginEventStream` / `BulkApiResultEventStore` → `LoginEvent` / `BulkApiResultEvent`."""
    for suffix in ("Stream", "Store"):
        if type_name.endswith(suffix) and len(type_name) > len(suffix):
            return type_name[: -len(suffix)]
    return type_name


def _elf_action(event_type: str, rec: dict[str, Any]) -> str:
    if event_type == "Login":
        status = _str(rec.get("LOGIN_STATUS"))
        return "auth.fail" if status and status != _LOGIN_OK else "login"
    if event_type == "LoginAs":
        return "login"
    if event_type == "Logout":
        return "logout"
    if event_type in _EXPORT_TYPES:
        op = (_first(rec, "OPERATION_TYPE", "OPERATION", "METHOD_NAME") or "").replace("_", "").lower()
        return "api.call" if op in _BULK_WRITES else "data.export"
    if event_type in _API_CALL_TYPES:
        return "api.call"
    return "other"


def _rt_action(base: str, rec: dict[str, Any]) -> str:
    status = _str(rec.get("STATUS")) or ""
    if base == "LoginEvent":
        return "login" if status.lower() == "success" else "auth.fail"
    if base == "LoginAsEvent":
        return "login"
    if base == "LogoutEvent":
        return "logout"
    if base == "IdentityVerificationEvent":
        return "auth.fail" if status.lower().startswith("failed") else "other"
    if base == "ReportEvent":
        return "data.export" if (_str(rec.get("OPERATION")) or "").lower() == "reportexported" else "api.call"
    if base in _RT_EXPORT:
        return "data.export"
    if base in _RT_API:
        return "api.call"
    return "other"


def _outcome(rec: dict[str, Any]) -> str:
    login = _str(rec.get("LOGIN_STATUS"))
    if login:
        return "success" if login == _LOGIN_OK else "failure"
    status = _int(rec.get("STATUS_CODE"))
    if status is not None and status >= 100:
        return "failure" if status >= 400 else "success"
    req = (_str(rec.get("REQUEST_STATUS")) or "").lower()
    if req in ("s", "success"):
        return "success"
    if req in ("f", "a", "failed", "failure", "authorization error"):
        return "failure"
    status_text = (_str(rec.get("STATUS")) or "").lower()
    if status_text in ("success", "succeeded"):
        return "success"
    if status_text.startswith("failed") or status_text in ("failure", "password lockout"):
        return "failure"
    if status_text and _str(rec.get("LOGIN_TIME")) is not None:  # LoginHistory: anything but Success failed
        return "failure"
    return "unknown"


def _refused(rec: dict[str, Any]) -> bool:
    """An API request refused for its credential or rights (401/403, REQUEST_STATUS `A`)."""
    status = _int(rec.get("STATUS_CODE"))
    return status in (401, 403) or (_str(rec.get("REQUEST_STATUS")) or "").upper() == "A"


# ---------------------------------------------------------------------------------------------- records

_RESOURCE = ("QUERY", "QUERY_IDENTIFIER")
_RESOURCE_AFTER_URI = ("PAGE_URL", "ENTITY_NAME", "ENTITY_TYPE", "REPORT_ID", "QUERIED_ENTITIES", "URI",
                       "URI_ID_DERIVED")
_EXTRA = (
    ("ORGANIZATION_ID", "org_id"), ("API_TYPE", "api_type"), ("API_VERSION", "api_version"),
    ("API_FAMILY", "api_family"), ("API_RESOURCE", "api_resource"), ("LOGIN_TYPE", "login_type"),
    ("LOGIN_SUB_TYPE", "login_sub_type"), ("LOGIN_STATUS", "login_status"), ("METHOD_NAME", "operation"),
    ("OPERATION", "operation"), ("OPERATION_TYPE", "operation"), ("ENTITY_NAME", "entity"),
    ("CLIENT_NAME", "client_name"), ("CONNECTED_APP_NAME", "connected_app_name"), ("JOB_ID", "job_id"), ("JOB_STATUS", "job_status"),
    ("QUERY_TYPE", "query_type"), ("AUTHENTICATION_METHOD_REFERENCE", "amr"), ("LOGIN_URL", "login_url"),
    ("LOGIN_HISTORY_ID", "login_history_id"), ("SESSION_LEVEL", "session_level"), ("USER_TYPE", "user_type"),
    ("CONNECTION_TYPE", "connection_type"), ("OAUTH_SCOPES", "oauth_scopes"), ("POLICY_OUTCOME", "policy_outcome"),
    ("EXCEPTION_MESSAGE", "exception"), ("SUMMARY", "summary"), ("SCORE", "score"), ("PLATFORM", "platform"),
    ("VERIFICATION_METHOD", "verification_method"), ("STATUS", "status"),
)


def _common(
    rec: dict[str, Any], raw: dict[str, Any], line: int, *, time: str, record: str, vendor_type: str | None,
    action: str, vendor_id: str | None,
) -> Parsed:
    extra: dict[str, Any] = {"record": record}
    for col, name in _EXTRA:
        value = _str(rec.get(col))
        if value is not None and name not in extra:
            extra[name] = value
    user_name = _first(rec, "USER_NAME", "USERNAME")
    if user_name:
        extra["user_name"] = user_name
    session_key = _str(rec.get("SESSION_KEY"))
    if session_key:
        extra["session_key"] = session_key

    principal = _str(rec.get("USER_ID_DERIVED")) or _sf_id(_str(rec.get("USER_ID")))
    client = _sf_id(_first(rec, "CONNECTED_APP_ID", "CONNECTED_APP_IDENTIFIER")) or _first(
        rec, "CONNECTED_APP_NAME", "APPLICATION")
    uri = _str(rec.get("URI"))
    resource = _first(rec, *_RESOURCE)
    if resource is None and uri and uri.startswith("/"):
        resource = uri
    if resource is None:
        resource = _first(rec, *_RESOURCE_AFTER_URI)
    resource, credential = _safe(resource)
    user_agent, ua_cred = _safe(_first(rec, "USER_AGENT", "BROWSER_TYPE", "BROWSER"))
    credential = credential or ua_cred
    if credential is not None:
        credential.principal, credential.client = principal, client

    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=raw,
        vendor_type=vendor_type,
        vendor_id=vendor_id,
        outcome=_outcome(rec),
        credential=credential,
        principal=principal,
        client=client,
        src_ip=_src_ip(rec, extra),
        user_agent=user_agent,
        country=_first(rec, "COUNTRY", "COUNTRY_ISO"),
        city=_str(rec.get("CITY")),
        method=_first(rec, "METHOD", "REQUEST_METHOD", "HTTP_METHOD"),
        resource=resource,
        status=_int(rec.get("STATUS_CODE")),
        bytes=_int(rec.get("RESPONSE_SIZE")),
        rows=_int(rec.get("ROWS_PROCESSED")),
        request_id=_first(rec, "REQUEST_ID", "REQUEST_IDENTIFIER"),
        session_id=_str(rec.get("LOGIN_KEY")),
        extra=extra,
    )
    id_text = None if vendor_id else orjson.dumps(raw, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return Parsed(line, event, id_text)


def _elf(rec: dict[str, Any], raw: dict[str, Any], line: int) -> Parsed | Problem:
    """One EventLogFile row (CSV row or its JSON rendering), `rec` keyed by column name."""
    event_type = _str(rec.get("EVENT_TYPE"))
    if event_type is None:
        return Problem(line, "malformed", "no EVENT_TYPE: not an EventLogFile row")
    time = _time(rec, ("TIMESTAMP_DERIVED", "TIMESTAMP"))
    if time is None:
        return Problem(line, "malformed", f"{event_type}: no TIMESTAMP")
    if isinstance(time, TimeError):
        return Problem(line, "malformed", f"{event_type}: unreadable TIMESTAMP ({time})"[:200])
    action = _elf_action(event_type, rec)
    if action in ("api.call", "data.export") and _refused(rec):
        action = "auth.fail"
    request_id = _str(rec.get("REQUEST_ID"))
    parsed = _common(rec, raw, line, time=time, record="EventLogFile", vendor_type=event_type, action=action,
                     vendor_id=f"{event_type}:{request_id}:{time}" if request_id else None)
    if event_type == "LoginAs":
        by = _str(rec.get("DELEGATED_USER_ID_DERIVED")) or _sf_id(_str(rec.get("DELEGATED_USER_ID")))
        extra = parsed.event.extra
        extra["login_as"] = True
        if by:
            extra["login_as_by"] = by
        by_name = _str(rec.get("DELEGATED_USER_NAME"))
        if by_name:
            extra["login_as_by_name"] = by_name
    return parsed


def _realtime(rec: dict[str, Any], raw: dict[str, Any], line: int, type_name: str | None) -> Parsed | Problem:
    """One Real-Time Event Monitoring object (LoginEvent, ApiEvent, ...), keyed by column-style names."""
    label = type_name or "real-time event"
    time = _time(rec, ("EVENT_DATE", "CREATED_DATE"))
    if time is None:
        return Problem(line, "malformed", f"{label}: no EventDate")
    if isinstance(time, TimeError):
        return Problem(line, "malformed", f"{label}: unreadable EventDate ({time})"[:200])
    base = _rt_base(type_name) if type_name else ""
    action = _rt_action(base, rec)
    if action in ("api.call", "data.export") and _refused(rec):
        action = "auth.fail"
    ident = _str(rec.get("EVENT_IDENTIFIER"))
    vendor_id = f"{base or 'event'}:{ident}" if ident else None
    parsed = _common(rec, raw, line, time=time, record="RealTimeEvent", vendor_type=type_name, action=action,
                     vendor_id=vendor_id)
    if base == "LoginEvent":
        parsed.event.outcome = "success" if action == "login" else "failure"
    if base == "LoginAsEvent":
        parsed.event.extra["login_as"] = True
        by = _str(rec.get("DELEGATED_USER_ID"))
        if by:
            parsed.event.extra["login_as_by"] = sfid18(by)
    return parsed


def _login_history(rec: dict[str, Any], raw: dict[str, Any], line: int) -> Parsed | Problem:
    time = _time(rec, ("LOGIN_TIME",))
    if time is None:
        return Problem(line, "malformed", "LoginHistory: no LoginTime")
    if isinstance(time, TimeError):
        return Problem(line, "malformed", f"LoginHistory: unreadable LoginTime ({time})"[:200])
    status = _str(rec.get("STATUS")) or ""
    action = "login" if status.lower() == "success" else "auth.fail"
    ident = _str(rec.get("ID"))
    return _common(rec, raw, line, time=time, record="LoginHistory", vendor_type="LoginHistory", action=action,
                   vendor_id=f"LoginHistory:{ident}" if ident else None)


def _audit_trail(rec: dict[str, Any], raw: dict[str, Any], line: int) -> Parsed | Problem:
    action_name = _first(rec, "ACTION") or "SetupAuditTrail"
    time = _time(rec, ("CREATED_DATE", "SFDC_CREATED_DATE"))
    if time is None:
        return Problem(line, "malformed", f"SetupAuditTrail {action_name}: no CreatedDate")
    if isinstance(time, TimeError):
        return Problem(line, "malformed", f"SetupAuditTrail {action_name}: unreadable CreatedDate ({time})"[:200])
    created_by = rec.get("CREATED_BY")
    by_name = _str(created_by.get("Username")) if isinstance(created_by, dict) else None
    by_name = by_name or _first(rec, "CREATED_BY.USERNAME", "SFDC_CREATED_BY_USERNAME")
    by_id = _first(rec, "CREATED_BY_ID", "SFDC_CREATED_BY_ID")
    if by_id is None and isinstance(created_by, dict):
        by_id = _str(created_by.get("Id"))
    ident = _str(rec.get("ID"))
    # Only the fields of the audit trail, so that its `Action`/`Display` are not mistaken for ELF columns.
    view = {"USER_ID": by_id, "USER_NAME": by_name, "SECTION": rec.get("SECTION")}
    parsed = _common(view, raw, line, time=time, record="SetupAuditTrail", vendor_type=action_name,
                     action="admin.change", vendor_id=f"SetupAuditTrail:{ident}" if ident else None)
    ev = parsed.event
    ev.outcome = "success"
    ev.resource = _first(rec, "SECTION")
    for col, name in (("DISPLAY", "display"), ("DELEGATE_USER", "delegate_user"),
                      ("CREATED_BY_CONTEXT", "created_by_context"), ("CREATED_BY_ISSUER", "created_by_issuer"),
                      ("RESPONSIBLE_NAMESPACE_PREFIX", "namespace"), ("RECORD_ID", "record_id")):
        value = _str(rec.get(col))
        if value is not None:
            ev.extra[name] = _safe(value)[0]
    return parsed


def _attr_type(rec: dict[str, Any]) -> str | None:
    attrs = rec.get("ATTRIBUTES")
    return _str(attrs.get("type")) if isinstance(attrs, dict) else None


def _record(obj: dict[str, Any], line: int) -> Parsed | Problem:
    """Any Salesforce JSON record, shape chosen per record."""
    if "EVENT_TYPE" in obj:
        return _elf(obj, obj, line)
    channel = obj.get("channel")
    data = obj.get("data")
    if isinstance(channel, str) and isinstance(data, dict) and isinstance(data.get("payload"), dict):
        rec = _columns(data["payload"])
        type_name = _attr_type(rec) or channel.rsplit("/", 1)[-1] or None
        return _realtime(rec, obj, line, type_name)
    rec = _columns(obj)
    if "EVENT_TYPE" in rec:
        return _elf(rec, obj, line)
    type_name = _attr_type(rec)
    if type_name == "SetupAuditTrail" or (
        type_name is None and "ACTION" in rec and ("CREATED_DATE" in rec or "SFDC_CREATED_DATE" in rec)
    ):
        return _audit_trail(rec, obj, line)
    if type_name == "LoginHistory" or (type_name is None and "LOGIN_TIME" in rec):
        return _login_history(rec, obj, line)
    if type_name is not None or "EVENT_DATE" in rec:
        return _realtime(rec, obj, line, type_name)
    if not obj:
        return Problem(line, "malformed", "empty JSON object: not a Salesforce record")
    return Problem(line, "malformed", "not a Salesforce record (no EVENT_TYPE, attributes.type, EventDate, "
                                      "LoginTime or Action/CreatedDate)")


# ---------------------------------------------------------------------------------------------- CSV


def _is_header(row: list[str]) -> bool:
    cols = {_col(c) for c in row}
    return ("EVENT_TYPE" in cols and bool(cols & {"TIMESTAMP", "TIMESTAMP_DERIVED"})) or (
        "LOGIN_TIME" in cols and bool(cols & {"USER_ID", "SOURCE_IP"})
    ) or ("ACTION" in cols and "SECTION" in cols and "CREATED_DATE" in cols)


def _csv_record(cols: list[str], row: list[str], line: int) -> Parsed | Problem:
    rec = dict(zip(cols, row, strict=True))
    if "EVENT_TYPE" in rec:
        return _elf(rec, rec, line)
    if "LOGIN_TIME" in rec:
        return _login_history(rec, rec, line)
    return _audit_trail(rec, rec, line)


def parse_csv(src: SourceStream) -> Iterator[Parsed | Problem]:
    """EventLogFile CSV rows (and LoginHistory / SetupAuditTrail CSV exports), read by header name."""
    fh = src.binary()
    try:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text)
        cols: list[str] | None = None
        names: list[str] = []
        done = 0  # physical lines consumed so far
        while True:
            start = done + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                done = reader.line_num
                yield Problem(start, "malformed", f"unreadable CSV: {e}"[:200])
                continue
            done = reader.line_num
            if not row or all(not c.strip() for c in row):
                yield Problem(start, "skipped", "blank line")
                continue
            if _is_header(row):
                names = [c.strip().lstrip("\ufeff") for c in row]
                cols = [_col(c) for c in names]
                yield Problem(start, "skipped", f"header ({len(cols)} columns)")
                continue
            if cols is None:
                yield Problem(start, "malformed", "row before any EventLogFile header (no EVENT_TYPE/TIMESTAMP columns)")
                continue
            if len(row) != len(cols):
                yield Problem(start, "malformed", f"{len(row)} fields, the header has {len(cols)}")
                continue
            parsed = _csv_record(cols, row, start)
            if isinstance(parsed, Parsed):
                # raw keeps the file's own column names
                parsed.event.raw = dict(zip(names, row, strict=True))
                if parsed.id_text is not None:
                    parsed.id_text = orjson.dumps(parsed.event.raw, option=orjson.OPT_SORT_KEYS).decode()
            yield parsed
    finally:
        fh.close()


def sniff_csv(first_lines: list[str]) -> float:
    """A CSV whose first non-blank line is an EventLogFile (or LoginHistory/SetupAuditTrail) header."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    first = lines[0].lstrip("\ufeff").strip()
    if first.startswith(("{", "[")) or "," not in first:
        return 0.0
    try:
        row = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return 0.0
    return 0.9 if _is_header(row) else 0.0


# ---------------------------------------------------------------------------------------------- JSON


def _head(fh: IO[bytes], want: int = 65536) -> bytes:
    """The first bytes of the stream (BOM dropped): at least its first line, up to `want` bytes."""
    buf = b""
    while len(buf) < want:
        chunk = fh.read(want - len(buf))
        if not chunk:
            break
        buf += chunk
        if b"\n" in buf.lstrip() and len(buf) >= 4096:
            break
    return buf[3:] if buf.startswith(b"\xef\xbb\xbf") else buf


def _records_of(obj: dict[str, Any]) -> list[Any] | None:
    """The records of a SOQL/REST query response on one line (`records`, or `result.records`)."""
    result = obj.get("result")
    holder = result if isinstance(result, dict) and "records" in result else obj
    records = holder.get("records")
    if isinstance(records, list) and ("totalSize" in holder or "done" in holder):
        return records
    return None


def _json_item(obj: Any, line: int) -> Iterator[Parsed | Problem]:
    if not isinstance(obj, dict):
        yield Problem(line, "malformed", f"not a JSON object ({type(obj).__name__}): not a Salesforce record")
        return
    records = _records_of(obj)
    if records is None:
        yield _record(obj, line)
        return
    for item in records:  # a query response on one line: each record keeps the line number
        if isinstance(item, dict):
            yield _record(item, line)
        else:
            yield Problem(line, "malformed", "query response record is not a JSON object")


def _parse_lines(stream: PrefixedStream) -> Iterator[Parsed | Problem]:
    text = io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8", errors="replace", newline=None)
    for n, raw_line in enumerate(text, 1):
        line = raw_line.strip()
        if not line:
            yield Problem(n, "skipped", "blank line")
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            yield Problem(n, "malformed", f"not JSON: {e}"[:200])
            continue
        yield from _json_item(obj, n)


def _parse_document(stream: PrefixedStream, prefix: str) -> Iterator[Parsed | Problem]:
    index = 0
    try:
        for item in ijson.items(io.BufferedReader(stream), prefix, use_float=True):
            index += 1
            if isinstance(item, dict):
                yield _record(item, index)
            else:
                yield Problem(index, "malformed", f"record {index} is not a JSON object")
    except JSON_STREAM_ERRORS as e:
        reason = stream_error_reason(e)
        yield Problem(index + 1, "malformed", f"JSON document truncated or broken after record {index}: {reason}"[:200])
        return
    if index == 0:
        yield Problem(1, "malformed", "JSON document with no records (expected JSON lines, an array or a query response)")


_RESULT_RECORDS = re.compile(rb'"result"\s*:\s*\{')


def parse_json(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Salesforce JSON records from JSON lines, a JSON array, or a SOQL/REST query response."""
    fh = src.binary()
    try:
        head = _head(fh)
        stream = PrefixedStream(head, fh)
        body = head.lstrip()
        if not body:
            return
        if body[:1] == b"[":
            yield from _parse_document(stream, "item")
            return
        first_line = body.split(b"\n", 1)[0].strip()
        try:
            orjson.loads(first_line)
            complete = True
        except orjson.JSONDecodeError:
            complete = False
        if complete or body[:1] != b"{":
            yield from _parse_lines(stream)
        elif _RESULT_RECORDS.search(head):
            yield from _parse_document(stream, "result.records.item")
        else:
            yield from _parse_document(stream, "records.item")
    finally:
        fh.close()


_ELF_TYPE = re.compile(r"^[A-Z][A-Za-z0-9]+$")


def looks_salesforce(obj: Any) -> bool:
    """Whether one JSON object has a Salesforce record's distinctive shape (used by sniff)."""
    if not isinstance(obj, dict):
        return False
    channel = obj.get("channel")
    data = obj.get("data")
    if isinstance(channel, str) and channel.startswith("/event/") and isinstance(data, dict):
        return isinstance(data.get("payload"), dict)
    records = _records_of(obj)
    if records:
        return looks_salesforce(records[0])
    rec = _columns(obj)
    attrs = rec.get("ATTRIBUTES")
    if isinstance(attrs, dict) and isinstance(attrs.get("url"), str) and "/sobjects/" in attrs["url"]:
        return True
    et = rec.get("EVENT_TYPE")
    if isinstance(et, str) and _ELF_TYPE.match(et) and ("TIMESTAMP" in rec or "TIMESTAMP_DERIVED" in rec):
        return bool({"ORGANIZATION_ID", "REQUEST_ID", "USER_ID", "LOGIN_KEY", "SESSION_KEY"} & rec.keys())
    if "SFDC_CREATED_DATE" in rec and "ACTION" in rec and "SECTION" in rec:
        return True
    if "ACTION" in rec and "SECTION" in rec and "DISPLAY" in rec and "CREATED_DATE" in rec:
        return True
    return "LOGIN_TIME" in rec and "SOURCE_IP" in rec and "USER_ID" in rec


_DOC_HINT = re.compile(
    r'"(EVENT_TYPE|TIMESTAMP_DERIVED|LoginTime|SourceIp|EventIdentifier|SessionKey|LoginKey|'
    r'CreatedById|DelegateUser|Section)"\s*:'
)


def sniff_json(first_lines: list[str]) -> float:
    """Salesforce JSON records: ELF rows as JSON, Real-Time Event Monitoring objects, LoginHistory, Setup Audit Trail."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    first = lines[0].lstrip("\ufeff").strip()
    if not first.startswith(("{", "[")):
        return 0.0
    total = hits = 0
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        total += 1
        items = obj if isinstance(obj, list) else [obj]
        if items and all(looks_salesforce(x) for x in items):
            hits += 1
    if total:
        return 0.8 + 0.15 * hits / total if hits * 2 >= total else 0.0
    # A pretty-printed array or query response: Salesforce sObject URLs plus Salesforce field names.
    text = "\n".join(lines)
    if '"/services/data/v' in text and "/sobjects/" in text and len(set(_DOC_HINT.findall(text))) >= 2:
        return 0.7
    return 0.0


register(
    Format(
        name="salesforce-eventlogfile",
        vendor=VENDOR,
        description="Salesforce EventLogFile CSV downloads (any EventType; also LoginHistory/SetupAuditTrail CSV "
                    "exports), read by header name",
        parse=parse_csv,
        sniff=sniff_csv,
        version="1",
        splittable=None,
    )
)

register(
    Format(
        name="salesforce-eventlog-json",
        vendor=VENDOR,
        description="Salesforce JSON records (EventLogFile rows as JSON, Real-Time Event Monitoring events, "
                    "LoginHistory, SetupAuditTrail): JSON lines, a JSON array or a SOQL query response",
        parse=parse_json,
        sniff=sniff_json,
        version="1",
        splittable=json_lines,
    )
)
