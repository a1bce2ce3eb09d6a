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
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import IO, Any

import ijson
import orjson

from casefile.formats import Format, SourceStream, chunk_of_lines, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import find_secrets, fingerprint, may_contain_secret, redaction_marker
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import JSON_STREAM_ERRORS, PrefixedStream, stream_error_reason, text_reader, too_deep

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


def _parse_lines(lines: Iterable[tuple[int, str]]) -> Iterator[Parsed | Problem]:
    # The source's own numbered lines: a chunk of a file (parallel ingest) keeps the file's line numbers.
    for n, raw_line in lines:
        line = raw_line.strip().lstrip("\ufeff")
        if not line:
            yield Problem(n, "skipped", "blank line")
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            yield Problem(n, "malformed", f"not JSON: {e}"[:200])
            continue
        try:
            yield from _json_item(obj, n)
        except orjson.JSONEncodeError as e:  # orjson reads 1024 levels of nesting and writes 255 (the id text)
            yield too_deep(n, e)


def _parse_document(stream: PrefixedStream, prefix: str) -> Iterator[Parsed | Problem]:
    index = 0
    try:
        for item in ijson.items(io.BufferedReader(stream), prefix, use_float=True):
            index += 1
            if isinstance(item, dict):
                try:
                    yield _record(item, index)
                except orjson.JSONEncodeError as e:  # ijson reads any depth; orjson writes 255 levels (the id text)
                    yield too_deep(index, e)
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
    if chunk_of_lines(src):
        yield from _parse_lines(src.lines())
        return
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
            yield from _parse_lines(src.lines())
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


# ================================================================================================ live
#
# Salesforce, live: who am I, the OauthToken inventory (with the object's 2,500-row cap), revoke by DeleteToken,
# probes, connected-app OAuth usage, and the pull (EventLogFile downloads straight into `salesforce-eventlogfile`,
# LoginHistory and SetupAuditTrail records into `salesforce-eventlog-json`), all through `ConnectorClient`
# (connectors/http.py: retries, rate limits, `nextRecordsUrl` pager, redacted journal).
#
# Settings: `url` = the My Domain instance URL (`https://acme.my.salesforce.com`); the secret = an access token
# (session id), e.g. `sf org display --target-org acme` → "Access Token", sent as `Authorization: Bearer …`.
# API version: `API_VERSION` (v62.0, Winter '25: every object and field used here exists since v37.0 or earlier,
# and a v62.0 path keeps working on later releases; bump it here only).
#
# No offline contract exists for Salesforce (test-peers-saas.md §5): the tests serve a hand-written OpenAPI
# fragment (tests/fixtures/salesforce/spec/salesforce-fragment.yaml, each path naming the Salesforce page it comes
# from) through Prism.
#
# | function / verb        | requests                                                                   | undo  |
# |------------------------|----------------------------------------------------------------------------|-------|
# | `whoami` / `me`        | GET /services/oauth2/userinfo                                              |       |
# | `list_tokens`          | GET …/query?q=SELECT COUNT() FROM OauthToken…, then SELECT … (partitioned) |       |
# | `oauth_usage`          | `list_tokens`, grouped by AppName on this side                             |       |
# | `revoke_token`         | GET …/query (the row and its DeleteToken), POST /services/oauth2/revoke    | none  |
# | `revoke_app_tokens`    | `list_tokens(app_name=…)`, then `revoke_token` for each                    | none  |
# | `probe_token`          | GET …/query (still listed?), GET …/limits as the leaked token (optional)   |       |
# | `pull`                 | EventLogFile list + GET …/sobjects/EventLogFile/{id}/LogFile; LoginHistory; |       |
# |                        | SetupAuditTrail                                                            |       |
#
# Secrets. OauthToken's `AccessToken` (in fact the refresh token), `RequestToken` and `DeleteToken` are
# credentials. The inventory never selects them; `revoke_token` selects `DeleteToken` for the one row it revokes,
# hands it to the client as a secret (scrubbed from the journal and errors), never puts it in a snapshot, a
# return value or a log, and drops it after the POST. `_without_secrets` strips all three from any row returned.
#
# Token identity. The Object Reference lists `Id` (OAuth Token ID) on OauthToken, but some versions of the page
# describe it as "reserved for future use; currently always null". So a token is named by its `Id` when the org
# returns one, else by (UserId, AppName, CreatedDate): `TokenKey`.

import asyncio  # noqa: E402
import codecs  # noqa: E402
import hashlib  # noqa: E402
from collections.abc import AsyncIterator, Callable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import httpx  # noqa: E402

from casefile.ingest import OCCURRENCE_WINDOW  # noqa: E402
from connectors.act import SnapshotFn, take  # noqa: E402
from connectors.config import ConfigError, ConnectorSettings  # noqa: E402
from connectors.http import (  # noqa: E402
    REQUEST_ID_HEADER,
    ConnectorClient,
    ConnectorError,
    JournalEntry,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnexpectedResponseError,
)
from connectors.pull import Page  # noqa: E402
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict  # noqa: E402

#: The REST API version of every data path (see the note above).
API_VERSION = "v62.0"
DATA = f"/services/data/{API_VERSION}"
QUERY_PATH = f"{DATA}/query"
USERINFO_PATH = "/services/oauth2/userinfo"
REVOKE_PATH = "/services/oauth2/revoke"
LIMITS_PATH = f"{DATA}/limits"

#: Object Reference, OauthToken, Usage: "A query() call returns up to 500 rows. A queryMore() call returns 500
#: more, up to 2500 total. No more records are returned after 2500." (API 34.0+). So COUNT() first.
OAUTH_TOKEN_CAP = 2500
TOKEN_FIELDS = ("Id", "AppName", "UserId", "CreatedDate", "LastUsedDate", "UseCount", "AppMenuItemId")
SECRET_FIELDS = frozenset({"AccessToken", "RequestToken", "DeleteToken"})

#: Streams of the pull and the parsers their pages go through.
ELF_STREAM, ELF_FORMAT = "eventlogfile", "salesforce-eventlogfile"
LOGIN_STREAM, AUDIT_STREAM, JSON_FORMAT = "loginhistory", "setupaudittrail", "salesforce-eventlog-json"
#: EventLogFile types pulled by default: logins, API use, exports, and UniqueQuery (the Drift recon pattern:
#: which objects and fields were queried, incidents.md §1.8).
DEFAULT_EVENT_TYPES = ("Login", "LoginAs", "Logout", "API", "RestApi", "BulkApi", "BulkApi2", "UniqueQuery", "URI",
                       "ApiTotalUsage", "ReportExport")
#: Most bytes of CSV rows per pulled page: a large log file is streamed and cut into pages of about this size,
#: each starting with the file's header (see `elf_pages`).
ELF_PAGE_BYTES = 4 << 20
LOGIN_FIELDS = ("Id", "UserId", "LoginTime", "LoginType", "SourceIp", "LoginUrl", "Browser", "Platform", "Status",
                "Application", "ClientVersion", "ApiType", "ApiVersion", "CountryIso")
AUDIT_FIELDS = ("Id", "Action", "Section", "CreatedDate", "CreatedById", "CreatedBy.Username", "Display",
                "DelegateUser", "ResponsibleNamespacePrefix", "CreatedByContext", "CreatedByIssuer")
#: `stanch pull --filter` names this module takes (they narrow the eventlogfile stream only).
FILTERS = frozenset({"EventType", "Interval"})

_SFID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,79}")


def client_for(settings: ConnectorSettings, secret: str, **kwargs: Any) -> ConnectorClient:
    """A `ConnectorClient` for a `salesforce` connector: the access token as `Authorization: Bearer <token>`.

    `settings.url` is the My Domain URL. `kwargs` override the options taken from the settings (tests pass
    `transport`, `sleep`, `clock`)."""
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
        "headers": {"Accept": "application/json"},
    }
    options.update(kwargs)
    token = _bare(secret)
    return ConnectorClient(settings.name, settings.url, auth_header=lambda: {"Authorization": f"Bearer {token}"},
                           **options)


def _bare(token: str) -> str:
    text = token.strip()
    return text[7:].strip() if text[:7].lower() == "bearer " else text


# ------------------------------------------------------------------------------------------- SOQL


def soql_str(value: str) -> str:
    """A SOQL string literal (quotes and backslashes escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_datetime(value: str) -> str:
    """A SOQL dateTime literal (unquoted UTC, whole seconds: `2025-08-08T00:00:00Z`) from any ISO 8601 time."""
    return _dt(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dt(value: str) -> datetime:
    iso = to_utc_iso(value)
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)


def _sfid(value: str, what: str) -> str:
    text = str(value).strip()
    if not _SFID.fullmatch(text):
        raise ValueError(f"{what} {value!r} is not a Salesforce id (15 or 18 letters and digits)")
    return text


def _without_secrets(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in SECRET_FIELDS}


def _sf_errors(response: httpx.Response) -> str:
    """`ERROR_CODE: message` of a REST error array (REST API Developer Guide, Status Codes and Error Responses)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    items = body if isinstance(body, list) else [body]
    out = []
    for item in items:
        if isinstance(item, dict):
            code = item.get("errorCode") or item.get("error")
            msg = item.get("message") or item.get("error_description")
            out.append(": ".join(str(x) for x in (code, msg) if isinstance(x, str) and x))
    return " ".join("; ".join(o for o in out if o).split())[:200]


def _error_code(response: httpx.Response) -> str:
    text = _sf_errors(response)
    return text.split(":", 1)[0] if text else ""


async def _get(client: ConnectorClient, path: str | httpx.URL, params: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """GET a JSON object, reading Salesforce's 403 body: `REQUEST_LIMIT_EXCEEDED` (the org's API request limit,
    documented as 403, not 429) becomes a `RateLimitedError` saying so; any other 403 a `PermissionDeniedError`
    naming the errorCode."""
    response = await client.request("GET", path, params=params, accept_status=(403,))
    req = response.request
    if response.status_code == 403:
        code, rid = _error_code(response), req.headers.get(REQUEST_ID_HEADER)
        if code == "REQUEST_LIMIT_EXCEEDED":
            raise RateLimitedError(
                f"403 REQUEST_LIMIT_EXCEEDED from {client.name}: the org's API request limit is used up "
                f"({_sf_errors(response)}); see Setup > Company Information or GET {LIMITS_PATH} (DailyApiRequests) "
                "and try again when the rolling 24-hour window allows", connector=client.name, status=403,
                method="GET", path=req.url.path, request_id=rid)
        raise PermissionDeniedError(
            f"403 from {client.name}: {_sf_errors(response) or 'refused'} for GET {req.url.path}; the user needs API "
            "Enabled, and View Event Log Files / View Setup and Configuration / Customize Application for these "
            "objects", connector=client.name, status=403, method="GET", path=req.url.path, request_id=rid)
    body = client._json(response)
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            f"{response.status_code} from {client.name}: GET {req.url.path} is not a JSON object; check that the "
            "base URL is the My Domain URL", connector=client.name, status=response.status_code, method="GET",
            path=req.url.path)
    return body


async def query_pages(client: ConnectorClient, soql: str, *, max_pages: int | None = None
                      ) -> AsyncIterator[tuple[httpx.URL, dict[str, Any]]]:
    """Each batch of a SOQL query as (request URL, body), following `nextRecordsUrl` until `done` (REST API
    Developer Guide, Query / Query More Results). Next links are followed on the base URL's origin only."""
    url: str | httpx.URL = QUERY_PATH
    params: Mapping[str, Any] | None = {"q": soql}
    seen: set[str] = set()
    pages = 0
    while True:
        body = await _get(client, url, params)
        records = body.get("records")
        if not isinstance(records, list):
            raise UnexpectedResponseError(
                f"200 from {client.name}: a query answer without `records`; check the API version",
                connector=client.name, status=200, method="GET", path=QUERY_PATH)
        sent = httpx.URL(str(client.base_url)).join(url) if params is None else httpx.URL(
            str(client.base_url).rstrip("/") + QUERY_PATH, params=params)
        yield sent, body
        pages += 1
        nxt = body.get("nextRecordsUrl")
        if body.get("done", True) is True or not nxt or (max_pages is not None and pages >= max_pages):
            return
        target = httpx.URL(str(client.base_url)).join(str(nxt))
        if str(target) in seen:
            raise UnexpectedResponseError(
                f"pagination loop from {client.name}: the same nextRecordsUrl twice; stop and report it",
                connector=client.name, status=200, method="GET", path=target.path)
        seen.add(str(target))
        client._on_origin(target, "GET")
        url, params = target, None


async def query(client: ConnectorClient, soql: str) -> list[dict[str, Any]]:
    """Every record of a SOQL query (all batches)."""
    return [r async for _, body in query_pages(client, soql) for r in body["records"] if isinstance(r, dict)]


async def count(client: ConnectorClient, sobject: str, where: str = "") -> int:
    """`SELECT COUNT() FROM <sobject> [WHERE …]`: the answer's `totalSize`."""
    soql = f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where}" if where else "")
    body = await _get(client, QUERY_PATH, {"q": soql})
    total = body.get("totalSize")
    if isinstance(total, bool) or not isinstance(total, int):
        raise UnexpectedResponseError(f"200 from {client.name}: COUNT() answered without totalSize",
                                      connector=client.name, status=200, method="GET", path=QUERY_PATH)
    return total


# ------------------------------------------------------------------------------------------- whoami


async def me(client: ConnectorClient) -> dict[str, Any]:
    """`GET /services/oauth2/userinfo`: the user and org the access token acts for."""
    body = await _get(client, USERINFO_PATH)
    return {"user_id": body.get("user_id"), "organization_id": body.get("organization_id"),
            "preferred_username": body.get("preferred_username")}


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: who the access token acts as (never the token)."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret) as client:
            return await me(client)

    return asyncio.run(ask())


# ------------------------------------------------------------------------------------------- OauthToken


@dataclass(frozen=True)
class TokenKey:
    """Names one OauthToken row without its secrets: its Id when the org returns one, else (user, app, created)."""

    id: str | None = None
    user_id: str | None = None
    app_name: str | None = None
    created: str | None = None  # ISO 8601

    @staticmethod
    def of(row: Mapping[str, Any]) -> TokenKey:
        tid = row.get("Id")
        if isinstance(tid, str) and tid:
            return TokenKey(id=tid)
        return TokenKey(user_id=row.get("UserId"), app_name=row.get("AppName"), created=row.get("CreatedDate"))

    def where(self) -> str:
        if self.id:
            return f"Id = {soql_str(_sfid(self.id, 'token id'))}"
        if not (self.user_id and self.app_name and self.created):
            raise ValueError("a token is named by its Id, or by its UserId, AppName and CreatedDate together")
        return (f"UserId = {soql_str(_sfid(self.user_id, 'user id'))} AND AppName = {soql_str(self.app_name)} "
                f"AND CreatedDate = {soql_datetime(self.created)}")

    def target(self) -> str:
        """What a snapshot and a verdict call this token (never a secret)."""
        if self.id:
            return self.id
        try:
            created = soql_datetime(self.created or "")
        except (TimeError, ValueError):
            created = str(self.created)
        return f"{self.user_id}/{self.app_name}/{created}"


def _token_where(app_name: str | None, user_id: str | None) -> list[str]:
    clauses = []
    if app_name:
        clauses.append(f"AppName = {soql_str(app_name)}")
    if user_id:
        clauses.append(f"UserId = {soql_str(_sfid(user_id, 'user id'))}")
    return clauses


async def count_tokens(client: ConnectorClient, *, app_name: str | None = None, user_id: str | None = None) -> int:
    """How many OauthToken rows the responder can see (all users' only with Customize Application)."""
    return await count(client, "OauthToken", " AND ".join(_token_where(app_name, user_id)))


async def _edge(client: ConnectorClient, where: list[str], order: str) -> datetime | None:
    soql = (f"SELECT CreatedDate FROM OauthToken{' WHERE ' + ' AND '.join(where) if where else ''} "
            f"ORDER BY CreatedDate {order} LIMIT 1")
    rows = await query(client, soql)
    value = rows[0].get("CreatedDate") if rows else None
    return _dt(value).replace(microsecond=0) if isinstance(value, str) and value else None


async def _fetch_tokens(client: ConnectorClient, where: list[str], expected: int) -> list[dict[str, Any]]:
    soql = (f"SELECT {', '.join(TOKEN_FIELDS)} FROM OauthToken{' WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY CreatedDate")
    rows = [_without_secrets(r) for r in await query(client, soql)]
    if len(rows) < expected:
        raise UnexpectedResponseError(
            f"OauthToken from {client.name}: {len(rows)} rows of the {expected} COUNT() promised for one partition "
            "(the object stops at 2,500); report it", connector=client.name, status=200, method="GET",
            path=QUERY_PATH)
    return rows


async def list_tokens(client: ConnectorClient, *, app_name: str | None = None, user_id: str | None = None,
                      cap: int = OAUTH_TOKEN_CAP) -> list[dict[str, Any]]:
    """Every OauthToken row (optionally of one app and/or user), without secret fields, past the object's cap.

    `COUNT()` first. When the count is above `cap` (2,500: the Object Reference's limit for this object), the
    rows are fetched in CreatedDate ranges: the span from the oldest to the newest token is halved until each
    range counts at most `cap`, so nothing is missed; a range's fetch must return what its COUNT() said. A
    single second holding more than `cap` tokens is split by UserId. Ranges are half-open, so no row is fetched
    twice.
    """
    base = _token_where(app_name, user_id)
    total = await count(client, "OauthToken", " AND ".join(base))
    if total <= cap:
        return await _fetch_tokens(client, base, total) if total else []
    first, last = await _edge(client, base, "ASC"), await _edge(client, base, "DESC")
    if first is None or last is None:
        raise UnexpectedResponseError(f"OauthToken from {client.name}: COUNT() says {total} but no CreatedDate",
                                      connector=client.name, status=200, method="GET", path=QUERY_PATH)
    out: list[dict[str, Any]] = []
    ranges = [(first, last + timedelta(seconds=1))]
    while ranges:
        lo, hi = ranges.pop(0)
        where = [*base, f"CreatedDate >= {lo:%Y-%m-%dT%H:%M:%SZ}", f"CreatedDate < {hi:%Y-%m-%dT%H:%M:%SZ}"]
        n = await count(client, "OauthToken", " AND ".join(where))
        if n == 0:
            continue
        if n <= cap:
            out.extend(await _fetch_tokens(client, where, n))
            continue
        if hi - lo > timedelta(seconds=1):
            mid = lo + timedelta(seconds=int((hi - lo).total_seconds()) // 2)
            ranges[:0] = [(lo, mid), (mid, hi)]
            continue
        if user_id:
            raise UnexpectedResponseError(
                f"OauthToken from {client.name}: more than {cap} tokens of one user created in one second",
                connector=client.name, status=200, method="GET", path=QUERY_PATH)
        users = {r.get("UserId") for r in await query(
            client, f"SELECT UserId FROM OauthToken WHERE {' AND '.join(where)} GROUP BY UserId")}
        for uid in sorted(u for u in users if isinstance(u, str) and u):
            part = [*where, f"UserId = {soql_str(_sfid(uid, 'user id'))}"]
            out.extend(await _fetch_tokens(client, part, await count(client, "OauthToken", " AND ".join(part))))
    return out


async def oauth_usage(client: ConnectorClient) -> list[dict[str, Any]]:
    """Connected-app OAuth usage from the token inventory, one entry per AppName: tokens, users, total
    UseCount, newest LastUsedDate (the Setup page "Connected Apps OAuth Usage", computed from OauthToken)."""
    apps: dict[str, dict[str, Any]] = {}
    for row in await list_tokens(client):
        name = str(row.get("AppName") or "")
        app = apps.setdefault(name, {"app_name": name, "tokens": 0, "users": set(), "use_count": 0,
                                     "last_used": None})
        app["tokens"] += 1
        if row.get("UserId"):
            app["users"].add(row["UserId"])
        uses = row.get("UseCount")
        app["use_count"] += uses if isinstance(uses, int) and not isinstance(uses, bool) else 0
        last = row.get("LastUsedDate")
        if isinstance(last, str) and last and (app["last_used"] is None or _dt(last) > _dt(app["last_used"])):
            app["last_used"] = last
    return [{**a, "users": len(a["users"])} for a in sorted(apps.values(), key=lambda a: -a["tokens"])]


async def get_token(client: ConnectorClient, key: TokenKey) -> dict[str, Any]:
    """The one OauthToken row `key` names, without secrets (NotFoundError when gone, ValueError if ambiguous)."""
    rows = await query(client, f"SELECT {', '.join(TOKEN_FIELDS)} FROM OauthToken WHERE {key.where()}")
    return _one(client, key, [_without_secrets(r) for r in rows])


def _one(client: ConnectorClient, key: TokenKey, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        raise NotFoundError(f"no OauthToken {key.target()} in {client.name} (already revoked, or not visible to "
                            "this user: seeing other users' tokens needs Customize Application)",
                            connector=client.name, status=200, method="GET", path=QUERY_PATH)
    if len(rows) > 1:
        raise ValueError(f"{len(rows)} OauthToken rows match {key.target()}; name the token by its Id")
    return rows[0]


async def revoke_token(client: ConnectorClient, key: TokenKey, snapshot: SnapshotFn | None = None
                       ) -> dict[str, Any]:
    """Revoke one OauthToken (its refresh token and the access tokens minted from it).

    Fetches the row with its `DeleteToken` live, snapshots the row without it (`salesforce.oauth_token`: Id,
    AppName, UserId, CreatedDate, LastUsedDate, UseCount, AppMenuItemId), then `POST /services/oauth2/revoke`
    `token=<DeleteToken>` (form). 200 proves nothing (a revoke of a dead token also answers 200): follow with
    `probe_token`. Not retried automatically. No undo: the user authorises the app again."""
    rows = await query(client, f"SELECT {', '.join(TOKEN_FIELDS)}, DeleteToken FROM OauthToken WHERE {key.where()}")
    body = _one(client, key, [_without_secrets(r) for r in rows])
    delete_token = rows[0].get("DeleteToken")
    rows.clear()
    if not isinstance(delete_token, str) or not delete_token:
        raise UnexpectedResponseError(
            f"OauthToken {key.target()} in {client.name} has no DeleteToken for this user (revoking another user's "
            "token needs Customize Application)", connector=client.name, status=200, method="GET", path=QUERY_PATH)
    take(snapshot, "salesforce.oauth_token", key.target(), body)
    try:
        r = await client.request("POST", REVOKE_PATH, data={"token": delete_token}, secrets=(delete_token,))
    finally:
        del delete_token
    return {"snapshot": body, "status_code": r.status_code}


async def revoke_app_tokens(client: ConnectorClient, app_name: str, snapshot: SnapshotFn | None = None
                            ) -> list[dict[str, Any]]:
    """Revoke every OauthToken of a connected app (e.g. "Drift"): the full inventory of the app first (past the
    cap), then `revoke_token` for each, each with its own snapshot. Stops at the first failure; what was revoked
    before it is in the returned list only if the call returns, so callers record snapshots as they come."""
    results = []
    for row in await list_tokens(client, app_name=app_name):
        results.append(await revoke_token(client, TokenKey.of(row), snapshot))
    return results


async def probe_token(client: ConnectorClient, key: TokenKey, leaked_access_token: str | None = None) -> Verdict:
    """Is the token dead? Only positive evidence counts:

    - the OauthToken query for it succeeds and returns no row (it is no longer listed), and
    - when the responder holds the leaked access token, a read-only call made *with it* (`GET …/limits`) is
      refused with 401 (`INVALID_SESSION_ID`).

    A row still listed, or the leaked token accepted, is `still-live`; a failed query or any other answer is
    `revoked-unverified`. The leaked token is sent once, as this request's auth, and scrubbed from the journal.
    """
    where = key.where()
    what = f"OauthToken {key.target()}"
    try:
        rows = await query(client, f"SELECT {', '.join(TOKEN_FIELDS)} FROM OauthToken WHERE {where}")
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what}: the listing failed, nothing proven: {e}", http_status=e.status)
    listed = bool(rows)
    listing = f"{what} still listed (UseCount {rows[0].get('UseCount')}, last used " \
              f"{rows[0].get('LastUsedDate')})" if listed else f"{what} no longer listed"
    if leaked_access_token is None:
        if listed:
            return Verdict(STILL_LIVE, listing, http_status=200)
        return Verdict(REVOKED_VERIFIED, f"{listing} (the query succeeded and returned 0 rows; other users' tokens "
                       "are visible only with Customize Application)", http_status=200)
    token = _bare(leaked_access_token)
    try:
        r = await client.request("GET", LIMITS_PATH, auth={"Authorization": f"Bearer {token}"},
                                 accept_status=(401, 403))
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{listing}; GET {LIMITS_PATH} with the leaked token failed, nothing "
                       f"proven: {e}", http_status=e.status)
    finally:
        del token
    if r.status_code == 401:
        if listed:
            return Verdict(STILL_LIVE, f"the leaked access token is refused (401 {_error_code(r)}), but {listing}: "
                           "its refresh token can mint new ones", http_status=401)
        return Verdict(REVOKED_VERIFIED, f"{listing}, and GET {LIMITS_PATH} with the leaked access token refused: "
                       f"401 {_sf_errors(r) or 'unauthorized'}", http_status=401)
    if r.status_code < 300:
        return Verdict(STILL_LIVE, f"GET {LIMITS_PATH} with the leaked access token answered {r.status_code}: it "
                       f"still works ({listing})", http_status=r.status_code)
    return Verdict(REVOKED_UNVERIFIED, f"{listing}; GET {LIMITS_PATH} with the leaked access token answered "
                   f"{r.status_code} {_sf_errors(r)}: authenticated or not, unproven", http_status=r.status_code)


# ------------------------------------------------------------------------------------------- EventLogFile


def _elf_soql(since: str | None, until: str | None, created_from: str | None, event_types: Sequence[str],
              interval: str | None) -> str:
    where = []
    if since:
        where.append(f"LogDate >= {soql_datetime(since)}")
    if until:
        where.append(f"LogDate < {soql_datetime(until)}")
    if created_from:
        where.append(f"CreatedDate >= {soql_datetime(created_from)}")
    if event_types:
        where.append(f"EventType IN ({', '.join(soql_str(t) for t in event_types)})")
    if interval:
        where.append(f"Interval = {soql_str(interval)}")
    return ("SELECT Id, EventType, LogDate, Interval, LogFileLength, CreatedDate FROM EventLogFile"
            + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY CreatedDate, Id")


async def list_event_log_files(client: ConnectorClient, *, since: str | None, until: str | None = None,
                               created_from: str | None = None,
                               event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
                               interval: str | None = None) -> list[dict[str, Any]]:
    """EventLogFile rows (metadata, not the CSV) with `LogDate` in [since, until), generated at or after
    `created_from`, of `event_types`, oldest generated first."""
    return await query(client, _elf_soql(since, until, created_from, event_types, interval))


def _row_fields(text: str) -> list[str]:
    try:
        return next(csv.reader([text]))
    except (csv.Error, StopIteration):
        return []


async def _csv_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Whole CSV records (a quoted field may span lines), each with its line end, from a byte stream."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    pending = ""
    record: list[str] = []
    quotes = 0
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        lines = pending.split("\n")  # only LF ends a line (CRLF keeps its CR): no U+2028 or \x0c splits
        pending = lines.pop()
        for line in (ln + "\n" for ln in lines):
            record.append(line)
            quotes += line.count('"')
            if quotes % 2 == 0:
                yield "".join(record)
                record, quotes = [], 0
    pending += decoder.decode(b"", final=True)
    tail = "".join(record) + pending
    if tail:
        yield tail


class _Occurrences:
    """How often each row without a REQUEST_ID was already sent in earlier pages of one file (bounded like the
    case file's own window, casefile.ingest.OCCURRENCE_WINDOW)."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}

    def get(self, key: bytes) -> int:
        return self.seen.get(key, 0)

    def add(self, counts: Mapping[bytes, int]) -> None:
        for key, n in counts.items():
            self.seen[key] = self.seen.get(key, 0) + n
        if len(self.seen) > OCCURRENCE_WINDOW:
            keep = list(self.seen.items())[len(self.seen) // 2:]
            self.seen.clear()
            self.seen.update(keep)


async def elf_pages(rows: AsyncIterator[str], *, stream: str, cursor: str | None, endpoint: str,
                    page_bytes: int = ELF_PAGE_BYTES) -> AsyncIterator[Page]:
    """One file's CSV records as `salesforce-eventlogfile` pages of about `page_bytes`, each starting with the
    file's header line; only the last page carries `cursor` (a pull that dies mid-file fetches the file again).

    Event ids stay those of the whole file ingested from disk. Rows with a REQUEST_ID have a vendor id
    (`<EVENT_TYPE>:<REQUEST_ID>:<time>`) that does not depend on the page. A row without one is identified by
    its content plus its occurrence number *within its source*, and each page is its own source: so a page
    whose row already occurred k times in earlier pages of the file starts (after the header) with k copies of
    that row. The copies take occurrence numbers 0…k-1, the ids already stored, and dedupe; the real row gets k,
    as it would in the whole file. Re-pulling the file builds the same pages (same bytes), which the case skips.
    """
    header: str | None = None
    names: list[str] = []
    body: list[str] = []
    size = 0
    part = 0
    counts: dict[bytes, int] = {}
    firsts: dict[bytes, str] = {}
    earlier = _Occurrences()

    def page(last: bool) -> Page:
        nonlocal body, size, counts, firsts, part
        part += 1
        copies = [text for key, text in firsts.items() for _ in range(earlier.get(key))]
        records = [r.encode("utf-8") for r in ([header] if header else []) + copies + body]
        earlier.add(counts)
        body, size, counts, firsts = [], 0, {}, {}
        return Page(stream, ELF_FORMAT, records, cursor if last else None, f"{endpoint} (part {part})")

    async for text in rows:
        if not text.strip():
            continue
        fields = _row_fields(text)
        if _is_header(fields):
            if body:
                yield page(False)
            header, names = text, [_col(c) for c in fields]
            continue
        if body and size + len(text) > page_bytes:
            yield page(False)
        body.append(text)
        size += len(text)
        if len(fields) == len(names) and _str(dict(zip(names, fields, strict=True)).get("REQUEST_ID")) is None:
            key = hashlib.sha256(orjson.dumps([names, fields])).digest()
            counts[key] = counts.get(key, 0) + 1
            firsts.setdefault(key, text)
    if body or header:
        yield page(True)


async def _stream_get(client: ConnectorClient, path: str) -> AsyncIterator[bytes]:
    """GET `path` and yield its body in chunks without holding it whole (the client's retries, journal and
    errors apply; a redirect is refused)."""
    async with client.stream("GET", path, headers={"Accept": "text/csv"}) as response:
        if response.status_code >= 300:
            await response.aread()
            client._json(response)  # a redirect: raises with the client's message
        async for chunk in response.aiter_bytes():
            yield chunk


def _elf_cursor(row: Mapping[str, Any]) -> str | None:
    created = row.get("CreatedDate")
    return f"created:{to_utc_iso(created)}" if isinstance(created, str) and created else None


async def pull_event_log_files(client: ConnectorClient, *, since: str | None, until: str | None,
                               cursor: str | None = None, stream: str = ELF_STREAM,
                               event_types: Sequence[str] = DEFAULT_EVENT_TYPES, interval: str | None = None,
                               page_bytes: int = ELF_PAGE_BYTES) -> AsyncIterator[Page]:
    """Every EventLogFile of the window, downloaded and streamed into `salesforce-eventlogfile` pages.

    The cursor is the newest `CreatedDate` of a file fully stored (`created:<time>`), not its LogDate: Salesforce
    generates a day's or an hour's file later, sometimes much later, so a LogDate cursor would skip a late file.
    A resumed pull asks for `CreatedDate >= cursor` (the file at the cursor's instant comes again; its pages are
    the same bytes and the case skips them)."""
    created_from = cursor[len("created:"):] if cursor and cursor.startswith("created:") else None
    files = await list_event_log_files(client, since=since, until=until,
                                       created_from=created_from, event_types=event_types, interval=interval)
    for row in files:
        fid = _sfid(str(row.get("Id") or ""), "EventLogFile id")
        path = f"{DATA}/sobjects/EventLogFile/{fid}/LogFile"
        endpoint = f"GET {path} ({row.get('EventType')} {row.get('Interval')} {row.get('LogDate')})"
        async for page in elf_pages(_csv_rows(_stream_get(client, path)), stream=stream, cursor=_elf_cursor(row),
                                    endpoint=endpoint, page_bytes=page_bytes):
            yield page


# ------------------------------------------------------------------------------------------- LoginHistory, audit


async def _pull_records(client: ConnectorClient, stream: str, sobject: str, fields: Sequence[str], time_field: str,
                        *, since: str | None, until: str | None, cursor: str | None) -> AsyncIterator[Page]:
    """One `salesforce-eventlog-json` page per query batch of `sobject` in time order; cursor = the last
    record's `time_field` (`since:<time>`), resent as `>=` (the repeat dedupes on `<type>:<Id>`)."""
    start = cursor[len("since:"):] if cursor and cursor.startswith("since:") else since
    where = []
    if start:
        where.append(f"{time_field} >= {soql_datetime(start)}")
    if until:
        where.append(f"{time_field} < {soql_datetime(until)}")
    soql = (f"SELECT {', '.join(fields)} FROM {sobject}" + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {time_field}, Id")
    async for url, body in query_pages(client, soql):
        records = [r for r in body["records"] if isinstance(r, dict)]
        if not records:
            continue
        last = records[-1].get(time_field)
        page_cursor = f"since:{to_utc_iso(last)}" if isinstance(last, str) and last else None
        endpoint = f"GET {url.path}?{url.query.decode()}" if url.query else f"GET {url.path}"
        yield Page.json_lines(stream, JSON_FORMAT, records, page_cursor, endpoint)


def pull_login_history(client: ConnectorClient, *, since: str | None, until: str | None,
                       cursor: str | None = None) -> AsyncIterator[Page]:
    """LoginHistory (every login, including OAuth token grants of connected apps: `LoginType` Remote Access 2.0,
    `Application` = the app)."""
    return _pull_records(client, LOGIN_STREAM, "LoginHistory", LOGIN_FIELDS, "LoginTime", since=since, until=until,
                         cursor=cursor)


def pull_setup_audit_trail(client: ConnectorClient, *, since: str | None, until: str | None,
                           cursor: str | None = None) -> AsyncIterator[Page]:
    """SetupAuditTrail (connected app and OAuth policy changes among every setup change)."""
    return _pull_records(client, AUDIT_STREAM, "SetupAuditTrail", AUDIT_FIELDS, "CreatedDate", since=since,
                         until=until, cursor=cursor)


def _filters(filters: Mapping[str, str] | None) -> tuple[tuple[str, ...], str | None, str]:
    """(event types, interval, eventlogfile stream name) from `--filter` values."""
    filters = dict(filters or {})
    unknown = sorted(set(filters) - FILTERS)
    if unknown:
        raise ConfigError(f"salesforce takes --filter {' or '.join(sorted(FILTERS))}; not {', '.join(unknown)}")
    types = tuple(t.strip() for t in filters.get("EventType", "").split(",") if t.strip()) or DEFAULT_EVENT_TYPES
    for t in types:
        if not _EVENT_TYPE.fullmatch(t):
            raise ConfigError(f"--filter EventType={t!r}: not an EventLogFile event type (e.g. UniqueQuery)")
    interval = filters.get("Interval")
    if interval is not None and interval not in ("Daily", "Hourly"):
        raise ConfigError(f"--filter Interval={interval!r}: Daily or Hourly")
    stream = ELF_STREAM
    if filters:
        stream += ":" + ",".join(f"{k}={filters[k]}" for k in sorted(filters))
    return types, interval, stream


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str], on_journal: Callable[[JournalEntry], None] | None = None,
               filters: Mapping[str, str] | None = None) -> AsyncIterator[Page]:
    """connectors/pull.py hook. Streams: `eventlogfile` (format `salesforce-eventlogfile`), `loginhistory` and
    `setupaudittrail` (format `salesforce-eventlog-json`, the query records as the parser already reads them).

    `--filter EventType=UniqueQuery,RestApi` / `Interval=Daily|Hourly` narrow the EventLogFile stream (then the
    only stream pulled, named `eventlogfile:EventType=…`, with its own cursor)."""
    types, interval, elf_stream = _filters(filters)
    async with client_for(settings, secret, on_journal=on_journal) as client:
        async for page in pull_event_log_files(client, since=since, until=until, cursor=cursors.get(elf_stream),
                                               stream=elf_stream, event_types=types, interval=interval):
            yield page
        if filters:
            return
        async for page in pull_login_history(client, since=since, until=until, cursor=cursors.get(LOGIN_STREAM)):
            yield page
        async for page in pull_setup_audit_trail(client, since=since, until=until,
                                                 cursor=cursors.get(AUDIT_STREAM)):
            yield page



# ------------------------------------------------------------------------------------------- blast radius

from urllib.parse import unquote_plus as _unquote_plus  # noqa: E402

from casefile.blast import RevokeHow, register_object_reader, register_revoker  # noqa: E402

_SOQL_FROM = re.compile(r"(?i)\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)")
_OBJECT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_METADATA = frozenset({"describe", "listviews", "updated", "deleted", "quickActions", "layouts", "compactLayouts"})


@register_object_reader
def objects_read(vendor: str, method: str | None, resource: str) -> list[str]:
    """Salesforce objects a REST call read: `FROM <Object>` of a SOQL query in the URL (`q=`, any gateway in
    front of Salesforce logs it so), or the object of a record read (`GET /sobjects/Case/<id>`)."""
    if "/services/data/" not in resource and vendor != "salesforce":
        return []
    path, _, query = resource.partition("?")
    if query and ("/query" in path or "/queryAll" in path):
        return sorted(set(_SOQL_FROM.findall(_unquote_plus(query))))
    parts = [p for p in path.split("/") if p]
    if (method or "GET").upper() != "GET" or "sobjects" not in parts:
        return []
    i = parts.index("sobjects")
    # /sobjects/<Object>/<id>[/<relation>]: a record (and what hangs off it) was read
    if len(parts) >= i + 3 and _OBJECT_NAME.fullmatch(parts[i + 1]) and parts[i + 2] not in _METADATA:
        return [parts[i + 1]] if len(parts) == i + 3 else [parts[i + 1], parts[i + 3]]
    return []


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """Salesforce OAuth tokens by id (`sf-token:<id>`): revoked with their DeleteToken fetched live (never kept)."""
    for key in credential.get("keys") or []:
        if key.startswith("sf-token:"):
            return RevokeHow("salesforce", "revoke-oauth-token", key.removeprefix("sf-token:"), needs_raw_secret=False,
                             note="revokes the refresh token and the access tokens issued from it")
    return None


from pathlib import Path as _Path  # noqa: E402

from casefile.findings import register_rules_dir  # noqa: E402

register_rules_dir(_Path(__file__).parent / "rules" / "salesforce")


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                 | target               | raw | act                 | probe                                     |
# |----------------------|----------------------|-----|---------------------|-------------------------------------------|
# | `revoke-oauth-token` | `<OauthToken Id>`    | no  | `revoke_token`      | `probe_token` (the row no longer listed)  |
# | `revoke-app-tokens`  | `<connected app name>` | no | `revoke_app_tokens` | the app's OauthToken COUNT() is 0         |
#
# The probes read OauthToken with the connector's own token: other users' tokens are visible only with Customize
# Application, which the act needs anyway (it reads each token's DeleteToken).

from connectors import verbs as _verbs  # noqa: E402


async def _act_revoke_oauth_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                  snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_token(client, TokenKey(id=target.strip()), snapshot))


async def _probe_oauth_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        return await probe_token(client, TokenKey(id=target.strip()))


async def _act_revoke_app_tokens(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                 snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        results = await revoke_app_tokens(client, target, snapshot)
    statuses = [r.get("status_code") for r in results]
    return _verbs.answer({"status_code": statuses[-1] if statuses else None, "revoked": len(results),
                          "snapshot": [r.get("snapshot") for r in results]})


async def _probe_app_tokens(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        left = await count_tokens(client, app_name=target)
    if left:
        return Verdict(STILL_LIVE, f"connected app {target!r} still has {left} OauthToken row(s)", http_status=200)
    return Verdict(REVOKED_VERIFIED, f"connected app {target!r} has no OauthToken row left (COUNT() answered 0; "
                   "other users' tokens are visible only with Customize Application)", http_status=200)


_verbs.register(VENDOR, "revoke-oauth-token", act=_act_revoke_oauth_token, probe=_verbs.guarded(_probe_oauth_token),
                description="revoke one OAuth token (its refresh token and the access tokens minted from it)")
_verbs.register(VENDOR, "revoke-app-tokens", act=_act_revoke_app_tokens, probe=_verbs.guarded(_probe_app_tokens),
                description="revoke every OAuth token of a connected app")
