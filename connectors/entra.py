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

from casefile.formats import Format, SourceStream, json_lines, register
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


def _parse_lines(stream: PrefixedStream) -> Iterator[Parsed | Problem]:
    lines = ((n, raw_line.rstrip("\r\n")) for n, raw_line in enumerate(_text(stream), 1))
    yield from parse_json_lines(lines, _records)


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
                yield from _parse_lines(stream)
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
