"""aws connector: CloudTrail records and API Gateway access logs (parsers registered on import).

Format `aws-cloudtrail` (reference: connectors.md §6.4) reads CloudTrail records in either shape

* the files CloudTrail delivers to S3: `{"Records": [ … ]}`, on one line or pretty-printed, several such objects
  one after another allowed (concatenated deliveries). They are streamed with ijson (`Records.item`) so memory
  stays constant. Provenance "line" = the **1-based index of the record** across the file's `Records` arrays.
* JSON lines, one record per line (EventBridge/Lambda exports, SIEM exports, Panther). Provenance "line" = the
  line number. Such a file is splittable when its first line is one record (not a `{"Records"` wrapper); a
  `{"Records": […]}` object met on a line of a JSON-lines file is expanded, its records sharing that line.

The shape is chosen from the first bytes (`{` + `"Records"` key first = wrapper). Keys are matched exactly and
then case-insensitively: Panther-normalised exports lowercase some top-level keys (`eventname`, `useridentity`).

Credentials. `userIdentity.accessKeyId` names the credential presented: keys `aws-key:<id>` and the `sha256:` of
the id (so a key id found in a leaked file, which stanch fingerprints, resolves to the same credential). The
credential kind is `session` for `ASIA…` (temporary STS credentials) and `aws-key` otherwise (`AKIA…` long-term
keys). The principal (`userIdentity.arn`, else `userName`/`principalId`) and the client (`invokedBy`, else the role
`sessionContext.sessionIssuer.arn`) are facts of that credential, never keys.

The credential minted or revoked (`Event.subject`): `iam:CreateAccessKey` → `responseElements.accessKey.accessKeyId`;
`sts:AssumeRole*`/`GetSessionToken`/`GetFederationToken` → `responseElements.credentials.accessKeyId` (plus the
`sha256:` fingerprint of its `sessionToken`, which is a secret and is never copied); `iam:DeleteAccessKey` and
`iam:UpdateAccessKey` with status `Inactive` → `requestParameters.accessKeyId`. A failed call mints or revokes
nothing: it gets no subject and the key it named goes in `extra["target"]`.

Format `aws-apigateway` (connectors.md §6.3) reads API Gateway access logs written with a JSON access-log format,
one object per line: REST APIs (`resourcePath`, `httpMethod`) and HTTP APIs (`routeKey` such as `"GET /pets"`).
Users choose the keys; the parser knows the console's default names and the `$context` variable names, flat
(`sourceIp`, `apiKeyId`) or nested (`identity.sourceIp`, `authorizer.claims.sub`). `-` means absent.
vendor_id = `requestId`. `$context.identity.apiKey` is the plain API key: it is fingerprinted (`sha256:` keys) and
never copied. `apiKeyId` is an id, not a secret, and no key kind names API Gateway key ids: it stays in
`extra["api_key_id"]`. `$context.identity.accessKey` (SigV4 callers) gives `aws-key:<id>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

import httpx
import ijson
import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

from casefile.formats import Format, SourceStream, chunk_of_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, sha256_hex
from casefile.timeutil import TimeError, to_utc_iso
from connectors import act
from connectors._common import (
    UTF8_BOM,
    PrefixedStream,
    get_path,
    get_path_exact,
    json_line_share,
    parse_json_lines,
    stream_json_items,
    text_reader,
    unreadable,
)
from connectors.config import ConfigError, ConnectorSettings
from connectors.http import (
    ConnectorClient,
    ConnectorError,
    InvalidCredentialError,
    JournalEntry,
    NotFoundError,
    PermissionDeniedError,
    RequestRejectedError,
    UnexpectedResponseError,
)
from connectors.pull import Page
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict

VENDOR = "aws"
_MISSING = (None, "", "-", "null", "None")
# What Panther and AWS write in place of a withheld value: never a key.
_PLACEHOLDERS = frozenset({"REDACTED", "redacted", "HIDDEN_DUE_TO_SECURITY_REASONS"})

# ---------------------------------------------------------------------------------------------- lookups

# `_get(obj, *path)`: obj[path...], or None when absent or not a dict. Case-insensitive (Panther-lowercased
# exports) unless the record being parsed has canonical keys: `_cloudtrail_event` rebinds it once per record, since scanning every
# key on each miss of an optional field would triple parse time for the common, canonical records. Parsing is
# single-threaded within a process.
_get = get_path


# A usable string value: None for absent, empty, `-` and `null`.
_str = text_reader(_MISSING)


def _time(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    try:
        return to_utc_iso(value)
    except (TimeError, ValueError, OverflowError, OSError):
        return None


def _sts_time(value: Any) -> str | None:
    """A time as STS writes it in CloudTrail (`Oct 2, 2019 11:12:29 PM`, UTC), or any `to_utc_iso` form."""
    text = _str(value)
    if text is None:
        return None
    iso = _time(text)
    if iso is not None:
        return iso
    for fmt in ("%b %d, %Y %I:%M:%S %p", "%b %d, %Y, %I:%M:%S %p", "%Y%m%dT%H%M%SZ"):
        with contextlib.suppress(ValueError):
            return _time(datetime.strptime(text, fmt).replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return None


def _ip(value: Any) -> str | None:
    text = _str(value)
    if text is None:
        return None
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


# ---------------------------------------------------------------------------------------------- keys


def _key_id(value: Any) -> str | None:
    text = _str(value)
    return None if text is None or text in _PLACEHOLDERS else text


def _key_ref(key_id: str, **facts: Any) -> CredentialRef:
    """An AWS access key id (an identifier, not a secret) as a credential: `aws-key:<id>` plus its `sha256:`."""
    kind = "session" if key_id.startswith("ASIA") else "aws-key"
    return CredentialRef(
        keys=(f"aws-key:{key_id}", f"sha256:{sha256_hex(key_id)}"),
        kind=kind,
        preview=f"{key_id[:4]}…{key_id[-4:]}" if len(key_id) >= 16 else None,  # an id, not a secret
        **facts,
    )


# ---------------------------------------------------------------------------------------------- CloudTrail actions

_STS_ISSUE = frozenset(
    {"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "GetSessionToken", "GetFederationToken",
     "AssumeRoot"}
)
# Other calls that mint a credential whose value CloudTrail does not log (no subject).
_OTHER_ISSUE = frozenset(
    {("sso.amazonaws.com", "GetRoleCredentials"), ("sso.amazonaws.com", "CreateToken"),
     ("sso-oidc.amazonaws.com", "CreateToken"), ("iam.amazonaws.com", "CreateServiceSpecificCredential"),
     ("iam.amazonaws.com", "CreateLoginProfile")}
)
# Sign-ins: the console, role switching, the IAM Identity Center portal (a service event, logged without identity).
_LOGIN = frozenset(
    {("signin.amazonaws.com", "SwitchRole"), ("signin.amazonaws.com", "CheckMfa"),
     ("signin.amazonaws.com", "UserAuthentication"), ("sso.amazonaws.com", "Authenticate")}
)
_SECRET_READ = frozenset({"GetSecretValue", "BatchGetSecretValue"})
_SSM_READ = frozenset({"GetParameter", "GetParameters", "GetParametersByPath", "GetParameterHistory"})
_SECRET_WRITE = frozenset(
    {("secretsmanager.amazonaws.com", "PutSecretValue"), ("secretsmanager.amazonaws.com", "UpdateSecret"),
     ("secretsmanager.amazonaws.com", "CreateSecret"), ("ssm.amazonaws.com", "PutParameter")}
)
# Services whose writes are identity, audit or security configuration.
_ADMIN_SOURCES = frozenset(
    {"iam.amazonaws.com", "sso.amazonaws.com", "sso-directory.amazonaws.com", "identitystore.amazonaws.com",
     "organizations.amazonaws.com", "cloudtrail.amazonaws.com", "config.amazonaws.com", "guardduty.amazonaws.com",
     "securityhub.amazonaws.com", "access-analyzer.amazonaws.com", "kms.amazonaws.com",
     "signin.amazonaws.com"}
)
_WRITE_VERB = re.compile(
    r"^(Create|Delete|Put|Attach|Detach|Update|Add|Remove|Set|Change|Upload|Enable|Disable|Deactivate|Tag|Untag"
    r"|Reset|Resync|Stop|Start|Leave|Invite|Accept|Register|Deregister|Schedule|Cancel|Disassociate|Associate"
    r"|Provision|Password)"
)
# Resource-policy writes in any service (bucket policies, key policies, Lambda permissions, ACLs…).
_POLICY_WRITE = re.compile(r"^(Put|Set|Delete|Attach|Detach|Update|Add|Remove|Create)\w*(Polic|Acl|Permission|Grant)")
_EXPORT = frozenset(
    {"ExportTableToPointInTime", "StartExportTask", "CreateInstanceExportTask", "CreateStoreImageTask",
     "ExportSnapshot"}
)
_SHARE = frozenset({"ModifySnapshotAttribute", "ModifyImageAttribute", "ModifyDBSnapshotAttribute",
                    "ModifyDBClusterSnapshotAttribute"})
# errorCodes that mean the credential was refused (authentication or authorisation), not a bad request.
_AUTH_ERRORS = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation",
     "UnauthorizedAccess", "UnauthorizedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
     "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "AuthFailure", "Client.AuthFailure",
     "InvalidToken", "NotAuthorized", "NotAuthorizedException", "IncompleteSignature", "MissingAuthenticationToken",
     "InvalidIdentityToken", "IDPRejectedClaim", "AccessDeniedForDependency"}
)


def _cloudtrail_action(source: str, name: str, failed: bool, error: str | None, rp: Any, rec: dict[str, Any]) -> str:
    """CloudTrail (eventSource, eventName, outcome, request) → canonical action."""
    if name == "ConsoleLogin" or (source, name) in _LOGIN:
        return "auth.fail" if failed else "login"
    if name in ("ConsoleLogout", "ExitRole", "Logout") and source in ("signin.amazonaws.com", "sso.amazonaws.com"):
        return "logout"
    if _str(_get(rec, "eventType")) in ("AwsServiceEvent", "AwsCloudTrailInsight"):
        return "other"  # done by AWS itself, not by a credential
    if error in _AUTH_ERRORS:
        return "auth.fail"
    if (source == "sts.amazonaws.com" and name in _STS_ISSUE) or (source, name) in _OTHER_ISSUE:
        return "token.issue"
    if source == "iam.amazonaws.com":
        if name == "CreateAccessKey":
            return "token.issue"
        if name == "DeleteAccessKey" or name == "DeleteServiceSpecificCredential":
            return "token.revoke"
        if name == "UpdateAccessKey":
            status = _str(_get(rp, "status")) or ""
            return "token.revoke" if status.lower() == "inactive" else "admin.change"
    if source == "secretsmanager.amazonaws.com" and name in _SECRET_READ:
        return "secret.read"
    if source == "ssm.amazonaws.com" and name in _SSM_READ:
        return "secret.read" if _get(rp, "withDecryption") in (True, "true", "True") else "api.call"
    if (source, name) in _SECRET_WRITE:
        return "secret.write"
    if name in _EXPORT:
        return "data.export"
    if name in _SHARE and (_get(rp, "valuesToAdd") or _get(rp, "createVolumePermission", "add")
                           or _get(rp, "launchPermission", "add")):
        return "data.export"  # a snapshot or image shared with another account
    if (source in _ADMIN_SOURCES and _WRITE_VERB.match(name)) or _POLICY_WRITE.match(name):
        return "admin.change"
    return "api.call"


# The request parameter that names what a call acts on, by priority (the first present wins).
_TARGET_PARAMS = (
    "secretId", "secretIdList", "name", "names", "accessKeyId", "roleArn", "policyArn", "userName", "roleName",
    "groupName", "bucketName", "key", "functionName", "keyId", "trailName", "snapshotId", "dBSnapshotIdentifier",
    "instanceId", "tableName", "path", "filters",
)


def _target(rp: Any) -> tuple[str, Any] | None:
    if not isinstance(rp, dict):
        return None
    for param in _TARGET_PARAMS:
        value = _get(rp, param)
        if isinstance(value, str) and _str(value):
            return param, value
        if isinstance(value, list) and value and len(value) <= 50:
            return param, value
    return None


# ---------------------------------------------------------------------------------------------- CloudTrail credentials


def _subject(
    source: str, name: str, action: str, time: str, rp: Any, re_: Any, principal: str | None
) -> tuple[CredentialRef | None, str | None]:
    """(credential minted/revoked, key id named by the request). The session token is fingerprinted, not copied."""
    if action == "token.issue" and source == "sts.amazonaws.com":
        creds = _get(re_, "credentials")
        key_id = _key_id(_get(creds, "accessKeyId"))
        if not key_id:
            return None, None
        ref = _key_ref(
            key_id,
            principal=_str(_get(re_, "assumedRoleUser", "arn")) or _str(_get(re_, "federatedUser", "arn")) or principal,
            client=_str(_get(rp, "roleArn")),
            issued_at=time,
            expires_at=_sts_time(_get(creds, "expiration")),
        )
        token = _key_id(_get(creds, "sessionToken"))
        if token and token != key_id:
            ref.keys = (*ref.keys, fingerprint(token).keys[0])
        return ref, key_id
    if action == "token.issue" and name == "CreateAccessKey":
        ak = _get(re_, "accessKey")
        key_id = _key_id(_get(ak, "accessKeyId"))
        if not key_id:
            return None, None
        user = _str(_get(ak, "userName")) or _str(_get(rp, "userName"))
        return _key_ref(
            key_id,
            principal=user or principal,
            issued_at=_time(_get(ak, "createDate")) or _sts_time(_get(ak, "createDate")) or time,
        ), key_id
    if action == "token.revoke" and name in ("DeleteAccessKey", "UpdateAccessKey"):
        key_id = _key_id(_get(rp, "accessKeyId"))
        if not key_id:
            return None, None
        return _key_ref(key_id, principal=_str(_get(rp, "userName")) or principal), key_id
    return None, None


# ---------------------------------------------------------------------------------------------- CloudTrail record


def _cloudtrail_event(rec: dict[str, Any], line: int) -> Parsed | Problem:
    global _get
    _get = get_path if "eventName" not in rec or "eventTime" not in rec else get_path_exact
    if not rec:
        return Problem(line, "malformed", "empty JSON object: not a CloudTrail record")
    name = _str(_get(rec, "eventName"))
    if not name:
        return Problem(line, "malformed", "no eventName: not a CloudTrail record")
    source = _str(_get(rec, "eventSource")) or ""
    label = f"{source}:{name}" if source else name
    event_time = _get(rec, "eventTime")
    if _str(event_time) is None:
        return Problem(line, "malformed", f"{label}: no eventTime")
    time = _time(event_time)
    if time is None:
        return Problem(line, "malformed", f"{label}: unreadable eventTime {str(event_time)[:40]!r}")

    ui = _get(rec, "userIdentity")
    ui = ui if isinstance(ui, dict) else {}
    rp = _get(rec, "requestParameters")
    re_ = _get(rec, "responseElements")
    error = _str(_get(rec, "errorCode"))
    failed = error is not None
    if name == "ConsoleLogin":
        result = (_str(_get(re_, "ConsoleLogin")) or "").lower()
        failed = failed or result == "failure"
        outcome = "failure" if failed else ("success" if result == "success" else "unknown")
    else:
        outcome = "failure" if failed else "success"
    action = _cloudtrail_action(source, name, failed, error, rp, rec)

    principal = _str(_get(ui, "arn")) or _str(_get(ui, "userName")) or _str(_get(ui, "principalId"))
    issuer = _get(ui, "sessionContext", "sessionIssuer")
    client = _str(_get(ui, "invokedBy")) or _str(_get(issuer, "arn"))
    credential = None
    key_id = _key_id(_get(ui, "accessKeyId"))
    if key_id:
        credential = _key_ref(key_id, principal=principal, client=client)
        if credential.kind == "session":
            credential.issued_at = _sts_time(_get(ui, "sessionContext", "attributes", "creationDate"))

    extra: dict[str, Any] = {}
    subject, named_key = (None, None) if failed else _subject(source, name, action, time, rp, re_, principal)
    target = _target(rp)
    if failed and name in ("CreateAccessKey", "DeleteAccessKey", "UpdateAccessKey"):
        named_key = _key_id(_get(rp, "accessKeyId"))
    if named_key and subject is None:
        extra["target"], extra["target_field"] = named_key, "accessKeyId"
    elif target is not None:
        extra["target_field"], extra["target"] = target

    src = _get(rec, "sourceIPAddress")
    src_ip = _ip(src)
    if src_ip is None and _str(src):
        extra["source"] = _str(src)  # a service name (`ec2.amazonaws.com`) or `AWS Internal`
    for key, path in (
        ("region", ("awsRegion",)),
        ("account", ("recipientAccountId",)),
        ("identity_type", ("userIdentity", "type")),
        ("event_type", ("eventType",)),
        ("error_code", ("errorCode",)),
        ("error_message", ("errorMessage",)),
        ("mfa_authenticated", ("userIdentity", "sessionContext", "attributes", "mfaAuthenticated")),
        ("mfa_used", ("additionalEventData", "MFAUsed")),
        ("vpc_endpoint_id", ("vpcEndpointId",)),
        ("shared_event_id", ("sharedEventID",)),
    ):
        value = _str(_get(rec, *path))
        if value:
            extra[key] = value
    read_only = _get(rec, "readOnly")
    if isinstance(read_only, bool):
        extra["read_only"] = read_only

    event_id = _str(_get(rec, "eventID"))
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=rec,
        vendor_type=label,
        vendor_id=event_id,
        outcome=outcome,
        credential=credential,
        subject=subject,
        principal=principal,
        client=client,
        src_ip=src_ip,
        user_agent=_str(_get(rec, "userAgent")),
        resource=label,
        request_id=_str(_get(rec, "requestID")),
        extra=extra,
    )
    id_text = None if event_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(line, event, id_text)


# ---------------------------------------------------------------------------------------------- CloudTrail streams

_WRAPPER = re.compile(rb'^\s*\{\s*"records"\s*:', re.IGNORECASE)
_WRAPPER_TEXT = re.compile(r'^\s*\{\s*"records"\s*:', re.IGNORECASE)


def _is_wrapper(fh: IO[bytes]) -> tuple[bytes, bool]:
    """(bytes read, whether the file starts with a `{"Records":` object). Reads only the first bytes."""
    buf = b""
    while len(buf) < 65536:
        chunk = fh.read(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf.lstrip(b"\xef\xbb\xbf \t\r\n")) >= 64:
            break
    body = buf[3:] if buf.startswith(b"\xef\xbb\xbf") else buf
    return buf, bool(_WRAPPER.match(body))


def _safe_event(rec: dict[str, Any], line: int) -> Parsed | Problem:
    try:
        return _cloudtrail_event(rec, line)
    except (TypeError, ValueError, AttributeError) as e:  # a record of an unexpected shape
        return Problem(line, "malformed", unreadable("CloudTrail record", e))


def _parse_wrapper(stream: PrefixedStream) -> Iterator[Parsed | Problem]:
    reader = io.BufferedReader(stream)
    if reader.peek(3)[:3] == UTF8_BOM:
        reader.read(3)
    yield from stream_json_items(
        ijson.items(reader, "Records.item", use_float=True, multiple_values=True),
        _safe_event,
        "Records array truncated or broken after record {index}: {reason}",
        non_object="record",
    )


def _line_records(obj: dict[str, Any], n: int) -> Iterator[Parsed | Problem]:
    records = obj.get("Records") if "eventName" not in obj else None
    if isinstance(records, list):  # a delivered file's `{"Records": […]}` on one line of a JSON-lines file
        for rec in records:
            yield _safe_event(rec, n) if isinstance(rec, dict) else Problem(
                n, "malformed", "a Records item is not a JSON object"
            )
        return
    yield _safe_event(obj, n)


def _parse_lines(src: SourceStream) -> Iterator[Parsed | Problem]:
    yield from parse_json_lines(
        ((n, line.strip().lstrip("\ufeff")) for n, line in src.lines()),
        _line_records,
        non_object="not a JSON object ({type}): not a CloudTrail record",
    )


def parse_cloudtrail(src: SourceStream) -> Iterator[Parsed | Problem]:
    """CloudTrail records from `{"Records": […]}` files (records numbered 1, 2, … as "line") or JSON lines."""
    if chunk_of_lines(src):
        yield from _parse_lines(src)
        return
    fh = src.binary()
    try:
        head, wrapper = _is_wrapper(fh)
        if wrapper:
            yield from _parse_wrapper(PrefixedStream(head, fh))
            return
    finally:
        fh.close()
    yield from _parse_lines(src)


# ---------------------------------------------------------------------------------------------- CloudTrail sniff

_CT_KEYS = frozenset({"eventversion", "useridentity", "eventtime", "awsregion", "recipientaccountid", "eventid"})
_PRETTY_CT_KEYS = re.compile(
    r'"(eventVersion|userIdentity|eventTime|eventSource|eventName|awsRegion|sourceIPAddress|recipientAccountId)"\s*:'
)


def _looks_cloudtrail(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    keys = {k.lower(): v for k, v in obj.items() if isinstance(k, str)}
    records = keys.get("records")
    if isinstance(records, list) and "eventname" not in keys:
        return bool(records) and _looks_cloudtrail(records[0])
    name = keys.get("eventname")
    if not isinstance(name, str) or not name:
        return False
    source = keys.get("eventsource")
    if isinstance(source, str) and source.endswith(".amazonaws.com"):
        return True
    return len(_CT_KEYS & keys.keys()) >= 2


def splittable_cloudtrail(head: list[str]) -> bool:
    """JSON lines may be split between workers; a `{"Records": […]}` file (one record per array item) may not."""
    first = head[0].strip().lstrip("\ufeff") if head else ""
    return first.startswith("{") and first.endswith("}") and not _WRAPPER_TEXT.match(first)


def sniff_cloudtrail(first_lines: list[str]) -> float:
    """CloudTrail: an `eventName` with an `*.amazonaws.com` `eventSource` or other CloudTrail keys; or `{"Records"`."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    first = lines[0].lstrip("\ufeff").strip()
    text = "\n".join(lines)
    if _WRAPPER_TEXT.match(text.lstrip("\ufeff")) and not (first.startswith("{") and first.endswith("}")):
        # A pretty-printed (or very long) `{"Records": [` file: the head is the top of the first record.
        found = {m.group(1) for m in _PRETTY_CT_KEYS.finditer(text)}
        return 0.9 if len(found) >= 2 else 0.0
    frac = json_line_share(lines, _looks_cloudtrail)
    return 0.8 + 0.15 * frac if frac >= 0.5 else 0.0


register(
    Format(
        name="aws-cloudtrail",
        vendor=VENDOR,
        description='AWS CloudTrail records: {"Records": [...]} files (records numbered as lines) or JSON lines',
        parse=parse_cloudtrail,
        sniff=sniff_cloudtrail,
        version="1",
        splittable=splittable_cloudtrail,
    )
)


# ---------------------------------------------------------------------------------------------- API Gateway


def _pick(rec: dict[str, Any], *names: str) -> Any:
    """The first usable value among `names`: each is a top-level key, a nested path (`identity.sourceIp`) or that
    dotted name used literally as a key."""
    for name in names:
        value = rec.get(name)
        if value is None and "." in name:
            value = rec
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if value is not None and _str(value) is not None:
            return value
    return None


def _pick_str(rec: dict[str, Any], *names: str) -> str | None:
    return _str(_pick(rec, *names))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = _str(value)
    return int(text) if text is not None and text.isdigit() else None


_APIGW_CLAIMS = ("authorizer.claims", "authorizer.jwt.claims")


def _claim(rec: dict[str, Any], claim: str) -> str | None:
    return _pick_str(rec, *(f"{base}.{claim}" for base in _APIGW_CLAIMS))


def _apigw_event(rec: dict[str, Any], line: int) -> Parsed | Problem:
    request_id = _pick_str(rec, "requestId", "requestID", "request_id")
    raw_time = _pick(rec, "requestTimeEpoch", "requestTime")
    if raw_time is None:
        return Problem(line, "malformed", f"request {request_id or '?'}: no requestTime/requestTimeEpoch")
    time = _time(raw_time)
    if time is None:
        return Problem(line, "malformed", f"request {request_id or '?'}: unreadable time {str(raw_time)[:40]!r}")

    method = _pick_str(rec, "httpMethod", "identity.httpMethod")
    route = _pick_str(rec, "routeKey")
    route_path = None
    if route and " " in route:
        route_method, _, route_path = route.partition(" ")
        method = method or route_method
    template = _pick_str(rec, "resourcePath") or route_path
    path = _pick_str(rec, "path")
    status = _int(_pick(rec, "status"))

    extra: dict[str, Any] = {}
    credential: CredentialRef | None = None
    principal = (
        _pick_str(rec, "authorizer.principalId", "principalId", "identity.userArn", "userArn", "identity.user",
                  "user", "identity.caller", "caller")
        or _claim(rec, "sub")
        or _claim(rec, "username")
        or _claim(rec, "email")
        or _pick_str(rec, "identity.cognitoIdentityId", "cognitoIdentityId")
    )
    client = _claim(rec, "client_id") or _claim(rec, "azp")
    raw_key = _pick_str(rec, "identity.apiKey", "apiKey")
    if raw_key:  # the plain API key: fingerprinted, never copied
        fp = fingerprint(raw_key)
        credential = CredentialRef(keys=fp.keys, kind="api-key", preview=fp.preview or None,
                                   principal=principal, client=client)
    access_key = _pick_str(rec, "identity.accessKey", "accessKey")
    if credential is None and access_key:
        credential = _key_ref(access_key, principal=principal, client=client)
    jti, iss = _claim(rec, "jti"), _claim(rec, "iss")
    if credential is None and jti and iss:
        credential = CredentialRef(keys=(f"jti:{iss}:{jti}",), kind="access", issuer=iss,
                                   principal=principal, client=client)
    api_key_id = _pick_str(rec, "identity.apiKeyId", "apiKeyId")
    if api_key_id:
        extra["api_key_id"] = api_key_id

    if status in (401, 403):
        action, outcome = "auth.fail", "failure"
    else:
        outcome = "unknown" if status is None else "success" if 200 <= status < 400 else "failure"
        action = "api.call" if credential or principal or api_key_id else "other"
    for key, names in (
        ("route_key", ("routeKey",)),
        ("resource_path", ("resourcePath",)),
        ("stage", ("stage",)),
        ("api_id", ("apiId",)),
        ("domain_name", ("domainName",)),
        ("account", ("accountId", "identity.accountId")),
        ("protocol", ("protocol",)),
        ("extended_request_id", ("extendedRequestId",)),
        ("error", ("error.message", "errorMessage", "authorizer.error", "authorize.error")),
        ("integration_status", ("integrationStatus", "integration.status")),
    ):
        value = _pick_str(rec, *names)
        if value:
            extra[key] = value

    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=rec,
        vendor_type="apigateway.request",
        vendor_id=request_id,
        outcome=outcome,
        credential=credential,
        principal=principal,
        client=client,
        src_ip=_ip(_pick(rec, "identity.sourceIp", "sourceIp", "ip", "sourceIP")),
        user_agent=_pick_str(rec, "identity.userAgent", "userAgent"),
        method=method,
        resource=path or template,
        status=status,
        bytes=_int(_pick(rec, "responseLength")),
        request_id=request_id,
        extra=extra,
    )
    id_text = None if request_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(line, event, id_text)


def _safe_apigw_event(obj: dict[str, Any], n: int) -> Parsed | Problem:
    try:
        return _apigw_event(obj, n)
    except (TypeError, ValueError, AttributeError) as e:
        return Problem(n, "malformed", unreadable("API Gateway access-log record", e))


def parse_apigateway(src: SourceStream) -> Iterator[Parsed | Problem]:
    """API Gateway JSON access-log lines → events; `raw` is the record (the case file redacts it)."""
    yield from parse_json_lines(
        ((n, line.strip().lstrip("\ufeff")) for n, line in src.lines()),
        _safe_apigw_event,
        non_object="not a JSON object ({type}): not an access-log record",
    )


def _looks_apigateway(obj: Any) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("requestId"), str):
        return False
    has_method = "httpMethod" in obj or "routeKey" in obj
    has_route = "resourcePath" in obj or "routeKey" in obj or "path" in obj
    has_time = "requestTime" in obj or "requestTimeEpoch" in obj
    return has_method and has_route and has_time


def sniff_apigateway(first_lines: list[str]) -> float:
    """API Gateway access logs: `requestId` + `httpMethod`/`routeKey` + `resourcePath`/`routeKey` + `requestTime*`."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    frac = json_line_share(lines, _looks_apigateway)
    return 0.75 + 0.2 * frac if frac >= 0.5 else 0.0


def splittable_apigateway(head: list[str]) -> bool:
    """Every line is one access-log record."""
    first = head[0].strip() if head else ""
    return first.startswith("{") and first.endswith("}")


register(
    Format(
        name="aws-apigateway",
        vendor=VENDOR,
        description="AWS API Gateway access logs written with a JSON access-log format (REST and HTTP APIs)",
        parse=parse_apigateway,
        sniff=sniff_apigateway,
        version="1",
        splittable=splittable_apigateway,
    )
)


# ================================================================================================ live
#
# The live half of the aws connector: whoami, IAM access keys (list, last used, deactivate/reactivate, delete),
# a probe for a leaked key, and a CloudTrail `LookupEvents` pull. Everything goes through `ConnectorClient`
# (retries, rate limits, redacted journal); every request is signed with botocore's SigV4 signer, never by hand.
#
# The connector secret (keyring, or `--secret-env`) is the responder's own AWS credential, in one of two forms:
#
#   * `AKIA…:<secret access key>` or `ASIA…:<secret access key>:<session token>` (one line; neither the secret
#     key nor the session token can contain `:`);
#   * a JSON object `{"access_key_id": …, "secret_access_key": …, "session_token": …}` (`session_token` optional);
#     the AWS CLI's own spelling `AccessKeyId`/`SecretAccessKey`/`SessionToken` is read too, so the `Credentials`
#     object that `aws sts assume-role` prints can be pasted as it is.
#
# The region comes from the connector URL (settings have no region field and the URL may carry no query): the
# first host label that looks like a region (`https://sts.eu-west-1.amazonaws.com` → eu-west-1), else us-east-1.
#
#   * A host under `amazonaws.com` / `amazonaws.com.cn` means real AWS: each service is sent to its own endpoint for
#     that region, as botocore's endpoint data resolves it (IAM is global: `iam.amazonaws.com`, signed for
#     us-east-1; STS and CloudTrail are regional: `sts.<region>.amazonaws.com`). So `https://iam.amazonaws.com`
#     means "AWS, us-east-1" and `https://sts.eu-west-1.amazonaws.com` means "AWS, eu-west-1".
#   * Any other host (moto, LocalStack, a VPC endpoint or egress proxy) serves every service at that one URL,
#     signed for the region found in the host, else us-east-1.
#
# The raw secret key and session token live only in memory (`AwsCredentials`, whose repr hides them); they are
# handed to the client as secrets so that any echo is scrubbed from its journal and errors, and the signed
# `Authorization` / `X-Amz-Security-Token` headers go as the client's per-request `auth`, which is never journaled.

DEFAULT_REGION = "us-east-1"
IAM_VERSION = "2010-05-08"
STS_VERSION = "2011-06-15"
CLOUDTRAIL_TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
CLOUDTRAIL_STREAM = "cloudtrail"
#: LookupEvents answers at most 50 events a page.
LOOKUP_PAGE_SIZE = 50
#: How far back a resumed pull re-reads before the newest stored event: CloudTrail can list an event several
#: minutes after it happened, so an event older than the newest one stored may still appear. Re-read events
#: dedupe by `eventID`.
RESUME_OVERLAP = timedelta(minutes=15)

_REGION_RE = re.compile(r"^(?:[a-z]{2}|us-gov|us-iso[a-z]?|eu-isoe?)-[a-z]+-\d{1,2}$")
_KEY_ID_RE = re.compile(r"^[A-Z0-9]{16,128}$")
_FORM = "application/x-www-form-urlencoded; charset=utf-8"
_JSON11 = "application/x-amz-json-1.1"
# AWS error codes that mean "this access key does not authenticate": the key is unknown, deleted or inactive.
_KEY_REFUSED = frozenset({"InvalidClientTokenId", "InvalidAccessKeyId"})
_CRED_ERRORS = frozenset({*_KEY_REFUSED, "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
                          "IncompleteSignature", "MissingAuthenticationToken", "UnrecognizedClientException",
                          "InvalidSignatureException"})
_THROTTLED = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                        "RequestThrottled", "SlowDown"})
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_NOT_FOUND = frozenset({"NoSuchEntity", "NoSuchEntityException"})


# ---------------------------------------------------------------------------------------------- credentials


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    """An AWS credential held in memory only. `repr` shows the key id, never the secret key or session token."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials({self.access_key_id}, secret_access_key=…{', session_token=…' if self.session_token else ''})"

    def secrets(self) -> list[str]:
        return [s for s in (self.secret_access_key, self.session_token) if s]


def parse_secret(secret: str) -> AwsCredentials:
    """The connector secret as `AwsCredentials` (formats above). Errors never quote the secret."""
    text = (secret or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise ValueError("the aws secret is not valid JSON; give {\"access_key_id\": …, "
                             "\"secret_access_key\": …} or AKIA…:<secret key>") from None
        if not isinstance(obj, dict):
            raise ValueError("the aws secret JSON must be an object")
        if isinstance(obj.get("Credentials"), dict):
            obj = obj["Credentials"]

        def pick(*names: str) -> str | None:
            for n in names:
                v = obj.get(n)
                if isinstance(v, str) and v.strip():
                    return v.strip()
            return None

        key_id = pick("access_key_id", "AccessKeyId", "aws_access_key_id")
        secret_key = pick("secret_access_key", "SecretAccessKey", "aws_secret_access_key")
        token = pick("session_token", "SessionToken", "aws_session_token")
    else:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError("the aws secret must be AKIA…:<secret key>, ASIA…:<secret key>:<session token>, "
                             "or a JSON object")
        key_id, secret_key = parts[0].strip(), parts[1].strip()
        token = parts[2].strip() if len(parts) == 3 else None
    if not key_id or not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError("the aws secret has no valid access key id (16-128 capital letters and digits, AKIA…/ASIA…)")
    if not secret_key:
        raise ValueError(f"the aws secret for {key_id} has no secret access key")
    return AwsCredentials(key_id, secret_key, token or None)


# ---------------------------------------------------------------------------------------------- endpoints


def region_of(url: str) -> str:
    """The region named by the connector URL's host (the first label that looks like one), else us-east-1."""
    host = (urlsplit(url).hostname or "").lower()
    for label in host.split("."):
        if _REGION_RE.fullmatch(label):
            return label
    return DEFAULT_REGION


def _is_aws_host(host: str) -> bool:
    return host == "amazonaws.com" or host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


@dataclass(frozen=True)
class Endpoint:
    url: str  # absolute, ending in `/`
    signing_region: str
    service: str


@functools.lru_cache(maxsize=64)
def endpoint_for(url: str, service: str) -> Endpoint:
    """Where `service` (`iam`, `sts`, `cloudtrail`) is sent for a connector at `url`, and its signing region."""
    region = region_of(url)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not _is_aws_host(host):
        base = url if url.endswith("/") else url + "/"
        return Endpoint(base, region, service)
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolved = EndpointResolver(create_loader().load_data("endpoints")).construct_endpoint(service, region)
    if not resolved or not resolved.get("hostname"):
        raise ValueError(f"no AWS endpoint for {service} in region {region}; check the connector URL")
    scope = resolved.get("credentialScope") or {}
    return Endpoint(f"https://{resolved['hostname']}/", str(scope.get("region") or region), service)


# ---------------------------------------------------------------------------------------------- signing


def sign(creds: AwsCredentials, service: str, region: str, method: str, url: str, body: bytes,
         headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a request signed with botocore's SigV4 signer (`X-Amz-Date`, `Authorization`, and
    `X-Amz-Security-Token` for temporary credentials), plus `headers` as signed. The body must be sent as is."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
              service, region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


# ---------------------------------------------------------------------------------------------- session


@dataclass
class AwsResponse:
    status: int
    code: str | None  # the AWS error code (`InvalidClientTokenId`), None on success
    message: str | None
    body: bytes
    request_id: str | None


class AwsSession:
    """The connector's AWS credential, region and one `ConnectorClient` per service endpoint.

    Use as `async with AwsSession(settings, secret) as aws:`. `client_options` are `ConnectorClient` options
    that override those taken from the settings (tests pass `transport`, `max_retries`, ...).
    """

    def __init__(self, settings: ConnectorSettings, secret: str | AwsCredentials, *,
                 on_journal: Callable[[JournalEntry], None] | None = None, **client_options: Any) -> None:
        self.settings = settings
        self.creds = secret if isinstance(secret, AwsCredentials) else parse_secret(secret)
        self.region = region_of(settings.url)
        self._on_journal = on_journal
        self._options = client_options
        self._clients: dict[str, ConnectorClient] = {}

    async def __aenter__(self) -> AwsSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()

    @property
    def journal(self) -> list[JournalEntry]:
        """Every attempt of every service client, in time order (no header, no secret)."""
        return sorted((e for c in self._clients.values() for e in c.journal), key=lambda e: e.at)

    def endpoint(self, service: str) -> Endpoint:
        return endpoint_for(self.settings.url, service)

    def client(self, service: str) -> ConnectorClient:
        """The client for `service`'s endpoint (services at one URL, such as moto's, share one client)."""
        ep = self.endpoint(service)
        origin = ep.url
        if origin not in self._clients:
            s = self.settings
            cert = (s.client_cert, s.client_key or s.client_cert) if s.client_cert else None
            options: dict[str, Any] = {
                "timeout": (s.connect_timeout, s.read_timeout), "verify": s.ca_bundle or True, "cert": cert,
                "concurrency": s.concurrency, "rate_limit_per_s": s.rate_limit, "on_journal": self._on_journal,
            }
            options.update(self._options)
            self._clients[origin] = ConnectorClient(s.name, origin, **options)
        return self._clients[origin]

    async def send(self, service: str, body: bytes, headers: Mapping[str, str], *, idempotent: bool,
                   creds: AwsCredentials | None = None) -> AwsResponse:
        """POST a signed request to `service`. 4xx answers are returned (with the AWS error code) for the caller
        to judge; 429/5xx are retried by the client and raised after its retries; transport failures raise."""
        use = creds or self.creds
        ep = self.endpoint(service)
        client = self.client(service)
        signed = sign(use, service, ep.signing_region, "POST", ep.url, body, headers)
        secret_headers = {k: v for k, v in signed.items() if k.lower() in ("authorization", "x-amz-security-token")}
        plain = {k: v for k, v in signed.items() if k not in secret_headers}
        attempt = 0
        while True:
            r = await client.request("POST", ep.url, content=body, headers=plain, auth=secret_headers,
                                     secrets=use.secrets(), idempotent=idempotent,
                                     accept_status=tuple(range(400, 429)) + tuple(range(430, 500)))
            code, message = _error_of(r) if r.status_code >= 400 else (None, None)
            # AWS throttles with 400 and a code, not 429 (IAM `Throttling`, CloudTrail `ThrottlingException`,
            # EC2 `RequestLimitExceeded`): wait and resend within the client's retry budget. The signature
            # stays valid for 5 minutes, which the backoff cap keeps within.
            if code not in _THROTTLED or attempt >= client.max_retries:
                break
            attempt += 1
            await client._sleep(client._backoff(attempt))
        return AwsResponse(r.status_code, code, client._scrub(message) if message else None, r.content,
                           r.headers.get("x-amzn-requestid"))

    def _raise(self, service: str, action: str, r: AwsResponse) -> ConnectorError:
        who = self.settings.name
        what = f"{service} {action}"
        info: dict[str, Any] = {"connector": who, "status": r.status, "method": "POST", "path": what}
        detail = f"{r.code or 'no error code'}: {(r.message or '')[:160]}".rstrip(": ")
        if r.code in _CRED_ERRORS or r.status == 401:
            return InvalidCredentialError(f"{r.status} from {who}: {what} refused the credential ({detail}); check "
                                          f"the access key with `stanch connector test {who}`", **info)
        if r.code in _DENIED:
            return PermissionDeniedError(f"{r.status} from {who}: the credential may not call {what} ({detail}); "
                                         "grant it in the IAM policy", **info)
        if r.code in _NOT_FOUND or r.status == 404:
            return NotFoundError(f"{r.status} from {who}: {what}: {detail}; check the user name and key id", **info)
        return RequestRejectedError(f"{r.status} from {who}: {what} was rejected ({detail})", **info)

    async def query(self, service: str, action: str, params: Mapping[str, str] | None = None, *,
                    idempotent: bool = True, creds: AwsCredentials | None = None) -> ET.Element:
        """Call an AWS query-protocol action (IAM, STS); return its `<ActionResult>` element (namespaces
        stripped), or raise a `ConnectorError` naming the AWS error code."""
        version = IAM_VERSION if service == "iam" else STS_VERSION
        body = urlencode({"Action": action, "Version": version, **(params or {})}).encode()
        r = await self.send(service, body, {"Content-Type": _FORM}, idempotent=idempotent, creds=creds)
        if r.status >= 400:
            raise self._raise(service, action, r)
        root = _xml(r.body, self.settings.name, f"{service} {action}")
        result = root.find(f"{action}Result")
        return result if result is not None else root

    async def json_call(self, service: str, target: str, payload: Mapping[str, Any], *,
                        idempotent: bool = True) -> dict[str, Any]:
        """Call an AWS JSON 1.1 action (`X-Amz-Target: <target>`); return the decoded object."""
        action = target.rsplit(".", 1)[-1]
        body = json.dumps(payload, separators=(",", ":")).encode()
        r = await self.send(service, body, {"Content-Type": _JSON11, "X-Amz-Target": target}, idempotent=idempotent)
        if r.status >= 400:
            raise self._raise(service, action, r)
        try:
            obj = json.loads(r.body or b"{}")
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise UnexpectedResponseError(f"{r.status} from {self.settings.name}: {service} {action} did not answer a "
                                          "JSON object; check the connector URL", connector=self.settings.name,
                                          status=r.status, method="POST", path=f"{service} {action}")
        return obj


def _strip_ns(root: ET.Element) -> ET.Element:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _parse_xml(body: bytes) -> ET.Element | None:
    # defusedxml, with DTDs forbidden: an AWS answer never has one, and a hostile endpoint cannot use entity
    # expansion or external entities against the responder's machine.
    try:
        return _strip_ns(defused_fromstring(body, forbid_dtd=True))
    except (ET.ParseError, DefusedXmlException):
        return None


def _xml(body: bytes, who: str, what: str) -> ET.Element:
    root = _parse_xml(body)
    if root is None:
        raise UnexpectedResponseError(f"200 from {who}: {what} did not answer AWS XML; check the connector URL",
                                      connector=who, status=200, method="POST", path=what)
    return root


def _error_of(r: httpx.Response) -> tuple[str | None, str | None]:
    """(AWS error code, message) of an error answer: query-protocol XML, JSON `__type`, or `x-amzn-ErrorType`."""
    code: str | None = None
    message: str | None = None
    root = _parse_xml(r.content) if r.content.lstrip().startswith(b"<") else None
    if root is not None:
        c, m = root.find(".//Code"), root.find(".//Message")
        code = c.text.strip() if c is not None and c.text else None
        message = m.text.strip() if m is not None and m.text else None
    else:
        try:
            obj = r.json()
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            t = obj.get("__type") or obj.get("code")
            code = str(t).rsplit("#", 1)[-1] if t else None
            m2 = obj.get("message") or obj.get("Message")
            message = str(m2) if m2 else None
    if code is None:
        header = r.headers.get("x-amzn-errortype")
        code = header.split(":", 1)[0] if header else None
    return code, " ".join(message.split()) if message else None


def _text(el: ET.Element | None, tag: str) -> str | None:
    if el is None:
        return None
    found = el.find(tag)
    return found.text.strip() if found is not None and found.text and found.text.strip() else None


def _fields(el: ET.Element) -> dict[str, str]:
    """The leaf children of `el` as {tag: text}."""
    return {str(c.tag): (c.text or "").strip() for c in el if len(c) == 0}


# ---------------------------------------------------------------------------------------------- whoami


async def caller_identity(aws: AwsSession, creds: AwsCredentials | None = None) -> dict[str, Any]:
    """STS `GetCallerIdentity` with the session's credential (or `creds`): account, arn, user id."""
    result = await aws.query("sts", "GetCallerIdentity", creds=creds)
    return {"account": _text(result, "Account"), "arn": _text(result, "Arn"), "user_id": _text(result, "UserId")}


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: who the connector's AWS credential is (account, arn, user id, key id)."""

    async def ask() -> dict[str, Any]:
        async with AwsSession(settings, secret) as aws:
            who = await caller_identity(aws)
            return {**who, "access_key_id": aws.creds.access_key_id, "region": aws.region,
                    "sts_endpoint": aws.endpoint("sts").url}

    return asyncio.run(ask())


# ---------------------------------------------------------------------------------------------- IAM access keys


async def list_access_keys(aws: AwsSession, user_name: str | None = None) -> list[dict[str, str]]:
    """IAM `ListAccessKeys` for `user_name` (default: the caller's own user), every page (`Marker`):
    `[{"UserName", "AccessKeyId", "Status", "CreateDate"}]`."""
    keys: list[dict[str, str]] = []
    params: dict[str, str] = {"UserName": user_name} if user_name else {}
    for _ in range(1000):
        result = await aws.query("iam", "ListAccessKeys", params)
        holder = result.find("AccessKeyMetadata")
        keys.extend(_fields(m) for m in (holder if holder is not None else []))
        marker = _text(result, "Marker")
        if _text(result, "IsTruncated") != "true" or not marker:
            return keys
        params = {**params, "Marker": marker}
    raise UnexpectedResponseError(f"ListAccessKeys from {aws.settings.name} did not end after 1000 pages",
                                  connector=aws.settings.name)


async def access_key_last_used(aws: AwsSession, key_id: str) -> dict[str, Any]:
    """IAM `GetAccessKeyLastUsed`: `{"UserName", "AccessKeyLastUsed": {"LastUsedDate"?, "ServiceName", "Region"}}`."""
    result = await aws.query("iam", "GetAccessKeyLastUsed", {"AccessKeyId": key_id})
    used = result.find("AccessKeyLastUsed")
    return {"UserName": _text(result, "UserName"), "AccessKeyLastUsed": _fields(used) if used is not None else {}}


async def access_key_snapshot(aws: AwsSession, key_id: str, user_name: str | None = None) -> dict[str, Any]:
    """What a destructive verb is about to change: the key's metadata (from its user's `ListAccessKeys`) and
    its last use. Raises `NotFoundError` when the user has no such key."""
    last = await access_key_last_used(aws, key_id)
    user = user_name or last.get("UserName")
    keys = await list_access_keys(aws, user)
    meta = next((k for k in keys if k.get("AccessKeyId") == key_id), None)
    if meta is None:
        raise NotFoundError(f"404 from {aws.settings.name}: IAM user {user or '(caller)'} has no access key {key_id}; "
                            "check the key id and user name", connector=aws.settings.name, status=404,
                            method="POST", path="iam ListAccessKeys")
    return {"UserName": meta.get("UserName") or user, "AccessKeyMetadata": meta,
            "AccessKeyLastUsed": last.get("AccessKeyLastUsed") or {}}


async def _set_key_status(aws: AwsSession, key_id: str, status: str, user_name: str | None,
                          snapshot: act.SnapshotFn | None) -> dict[str, Any]:
    body = await access_key_snapshot(aws, key_id, user_name)
    act.take(snapshot, "aws.access_key", key_id, body)
    params = {"AccessKeyId": key_id, "Status": status}
    if body.get("UserName"):
        params["UserName"] = str(body["UserName"])
    await aws.query("iam", "UpdateAccessKey", params, idempotent=True)  # setting a status twice = once
    return {"snapshot": body, "status_code": 200}


async def deactivate_access_key(aws: AwsSession, key_id: str, *, user_name: str | None = None,
                                snapshot: act.SnapshotFn | None = None) -> dict[str, Any]:
    """IAM `UpdateAccessKey Status=Inactive` (reversible: `reactivate_access_key`). Snapshot first; follow it
    with `probe_access_key`."""
    return await _set_key_status(aws, key_id, "Inactive", user_name, snapshot)


async def reactivate_access_key(aws: AwsSession, key_id: str, *, user_name: str | None = None,
                                snapshot: act.SnapshotFn | None = None) -> dict[str, Any]:
    """The undo of `deactivate_access_key`: `UpdateAccessKey Status=Active`."""
    return await _set_key_status(aws, key_id, "Active", user_name, snapshot)


async def delete_access_key(aws: AwsSession, key_id: str, *, user_name: str | None = None,
                            snapshot: act.SnapshotFn | None = None) -> dict[str, Any]:
    """IAM `DeleteAccessKey` (irreversible: the key's metadata and last-use record are gone). Snapshot first;
    not retried (a delete sent twice must be a choice)."""
    body = await access_key_snapshot(aws, key_id, user_name)
    act.take(snapshot, "aws.access_key", key_id, body)
    params = {"AccessKeyId": key_id}
    if body.get("UserName"):
        params["UserName"] = str(body["UserName"])
    await aws.query("iam", "DeleteAccessKey", params, idempotent=False)
    return {"snapshot": body, "status_code": 200}


# ---------------------------------------------------------------------------------------------- probe


async def probe_access_key(aws: AwsSession, leaked: AwsCredentials | str) -> Verdict:
    """Does this leaked key still authenticate? STS `GetCallerIdentity` signed *with the leaked key* (any
    principal may call it, so only authentication is tested).

    - 403 `InvalidClientTokenId` (AWS: the key is unknown, deleted or inactive) → `revoked-verified`;
    - 200 → `still-live` (the evidence names the principal);
    - anything else (`SignatureDoesNotMatch`: the key id exists but the secret given is not its secret;
      `ExpiredToken`; 5xx; a timeout) → `revoked-unverified`.

    The leaked secret key is used to sign in memory and scrubbed from the journal and errors.
    """
    creds = leaked if isinstance(leaked, AwsCredentials) else parse_secret(leaked)
    body = urlencode({"Action": "GetCallerIdentity", "Version": STS_VERSION}).encode()
    try:
        r = await aws.send("sts", body, {"Content-Type": _FORM}, idempotent=True, creds=creds)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"GetCallerIdentity with {creds.access_key_id} failed, nothing proven: {e}",
                       http_status=e.status)
    key = creds.access_key_id
    if r.status == 200:
        root = _parse_xml(r.body)
        arn = _text(root.find("GetCallerIdentityResult") if root is not None else None, "Arn")
        if not arn:
            return Verdict(REVOKED_UNVERIFIED, f"GetCallerIdentity with {key} answered 200 without an Arn",
                           http_status=200)
        return Verdict(STILL_LIVE, f"GetCallerIdentity with {key} accepted: {arn}", http_status=200)
    if r.status in (400, 403) and r.code in _KEY_REFUSED:
        return Verdict(REVOKED_VERIFIED, f"GetCallerIdentity with {key} refused: {r.status} {r.code} "
                       f"({r.message or 'no message'})", http_status=r.status)
    return Verdict(REVOKED_UNVERIFIED, f"GetCallerIdentity with {key} answered {r.status} "
                   f"{r.code or 'without an error code'}; nothing proven", http_status=r.status)


async def probe_key_status(aws: AwsSession, key_id: str, user_name: str | None = None) -> Verdict:
    """The key's state as IAM holds it, asked with the connector's own credential (no leaked secret needed).

    `GetAccessKeyLastUsed` names the key's user (unless `user_name` is given); `ListAccessKeys` of that user
    then gives its `Status`. A key IAM no longer knows (`NoSuchEntity`), one missing from its user's list, or one
    whose status is `Inactive` (IAM refuses inactive keys) is `revoked-verified`; `Active` is `still-live`;
    anything else (no permission, 5xx, a timeout) is `revoked-unverified`.
    """
    try:
        user = user_name
        if user is None:
            used = await access_key_last_used(aws, key_id)
            user = str(used.get("UserName") or "") or None
        keys = await list_access_keys(aws, user)
    except NotFoundError as e:
        return Verdict(REVOKED_VERIFIED, f"IAM no longer knows {key_id}: {e}", http_status=e.status)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"reading {key_id}'s status failed, nothing proven: {e}",
                       http_status=e.status)
    meta = next((k for k in keys if k.get("AccessKeyId") == key_id), None)
    owner = f"user {user}" if user else "the caller"
    if meta is None:
        return Verdict(REVOKED_VERIFIED, f"ListAccessKeys of {owner} no longer lists {key_id}", http_status=200)
    status = meta.get("Status")
    if status == "Inactive":
        return Verdict(REVOKED_VERIFIED, f"ListAccessKeys of {owner}: {key_id} is Inactive (IAM refuses it)",
                       http_status=200)
    if status == "Active":
        return Verdict(STILL_LIVE, f"ListAccessKeys of {owner}: {key_id} is Active", http_status=200)
    return Verdict(REVOKED_UNVERIFIED, f"ListAccessKeys of {owner}: {key_id} has status {status!r}",
                   http_status=200)


# ---------------------------------------------------------------------------------------------- pull
#
# CloudTrail `LookupEvents` lists management events newest first, paged by `NextToken`. A pull covers a time
# window [start, end] by walking it backwards, so after page k everything in (lo_k, end] is stored, where lo_k
# is the oldest event time seen so far, while [start, lo_k] is not yet. The cursor saved with each page says
# exactly that (JSON, no secret):
#
#   {"newest": T}                                a finished window: every event up to T (the newest event
#                                                stored) is in the case;
#   {"newest": T, "start": S, "lo": L}           a window walked down to L: (L, …] stored, [S, L] not yet.
#
# A pull with such a cursor first finishes [S, L] (when there is one), then reads [T - RESUME_OVERLAP, until].
# Boundaries are inclusive on both sides and overlap on purpose (events in the same second, late-listed events):
# anything re-read dedupes by CloudTrail's `eventID`. A first pull reads [since, until] (no `since`: CloudTrail's
# own 90-day limit).


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt.microsecond == 0 else \
        dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _dt(value: str | float | int) -> datetime:
    text = to_utc_iso(value)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    value = event.get("EventTime")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        with contextlib.suppress(TimeError, ValueError, OverflowError):
            return _dt(value)
    return None


def _record_of(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The CloudTrail record of a LookupEvents item: its `CloudTrailEvent` JSON string, parsed; else a record
    rebuilt from the item's summary fields (eventID, name, source, time, user, key) so nothing is dropped."""
    raw = event.get("CloudTrailEvent")
    if isinstance(raw, str) and raw.strip():
        with contextlib.suppress(ValueError):
            rec = json.loads(raw)
            if isinstance(rec, dict):
                return rec
    when = _event_time(event)
    if when is None or not event.get("EventName"):
        return None
    rebuilt: dict[str, Any] = {"eventVersion": "1.08", "eventID": event.get("EventId"),
                               "eventName": event.get("EventName"), "eventSource": event.get("EventSource"),
                               "eventTime": _iso(when.replace(microsecond=0)),
                               "readOnly": str(event.get("ReadOnly")).lower() == "true"}
    ident: dict[str, Any] = {}
    if event.get("Username"):
        ident["userName"] = event["Username"]
    if event.get("AccessKeyId"):
        ident["accessKeyId"] = event["AccessKeyId"]
    if ident:
        rebuilt["userIdentity"] = ident
    return {k: v for k, v in rebuilt.items() if v is not None}


def _load_cursor(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except ValueError:
        raise ValueError("the saved CloudTrail cursor is not JSON; drop it to pull from --since again") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("newest", ""), str):
        raise ValueError("the saved CloudTrail cursor has an unknown shape; drop it to pull from --since again")
    return {k: str(v) for k, v in obj.items() if k in ("newest", "start", "lo") and v}


def _cursor(newest: str | None, start: str | None = None, lo: str | None = None) -> str | None:
    obj = {k: v for k, v in (("newest", newest), ("start", start), ("lo", lo)) if v}
    return json.dumps(obj, separators=(",", ":"), sort_keys=True) if obj else None


#: LookupEvents' lookup attribute keys (CloudTrail API Reference, `LookupAttribute`); it takes at most one.
LOOKUP_ATTRIBUTES = ("AccessKeyId", "EventId", "EventName", "EventSource", "ReadOnly", "ResourceName",
                     "ResourceType", "Username")


def _lookup_attribute(filters: Mapping[str, str] | None) -> tuple[str, dict[str, str] | None]:
    """(stream name, the LookupAttribute) for `--filter NAME=VALUE`; one filter at most."""
    if not filters:
        return CLOUDTRAIL_STREAM, None
    if len(filters) > 1:
        raise ConfigError("CloudTrail LookupEvents takes one --filter at a time (e.g. AccessKeyId=AKIA…)")
    ((name, value),) = filters.items()
    key = next((k for k in LOOKUP_ATTRIBUTES if k.lower() == name.lower()), None)
    if key is None:
        raise ConfigError(f"--filter {name}: CloudTrail filters by one of {', '.join(LOOKUP_ATTRIBUTES)}")
    return f"{CLOUDTRAIL_STREAM}:{key}={value}", {"AttributeKey": key, "AttributeValue": value}


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str], on_journal: Callable[[JournalEntry], None] | None = None,
               client_options: Mapping[str, Any] | None = None,
               filters: Mapping[str, str] | None = None) -> AsyncIterator[Page]:
    """CloudTrail management events via `LookupEvents`, one `Page` per vendor page (stream `cloudtrail`, format
    `aws-cloudtrail`, records = each event's `CloudTrailEvent`, one JSON record per line). See the cursor notes
    above. `filters`: at most one of LOOKUP_ATTRIBUTES (`AccessKeyId=AKIA…` for a leaked key's calls); a
    filtered pull is its own stream (`cloudtrail:AccessKeyId=AKIA…`) with its own cursor. `client_options` are
    `ConnectorClient` options for tests (a transport, retries)."""
    stream, attribute = _lookup_attribute(filters)
    state = _load_cursor(cursors.get(stream))
    newest = state.get("newest")
    end = _dt(until) if until else None
    segments: list[tuple[datetime | None, datetime | None]] = []  # (start, end): inclusive
    if state.get("lo"):
        segments.append((_dt(state["start"]) if state.get("start") else None, _dt(state["lo"])))
    if newest:
        segments.append((_dt(newest) - RESUME_OVERLAP, end))
    else:
        segments.append((_dt(since) if since else None, end))
    async with AwsSession(settings, secret, on_journal=on_journal, **dict(client_options or {})) as aws:
        ep = aws.endpoint("cloudtrail").url
        for start, stop in segments:
            if start is not None and stop is not None and start > stop:
                continue
            token: str | None = None
            lo: datetime | None = None
            seen: set[str] = set()
            while True:
                payload: dict[str, Any] = {"MaxResults": LOOKUP_PAGE_SIZE}
                if attribute is not None:
                    payload["LookupAttributes"] = [attribute]
                if start is not None:
                    payload["StartTime"] = start.timestamp()
                if stop is not None:
                    payload["EndTime"] = stop.timestamp()
                if token:
                    payload["NextToken"] = token
                body = await aws.json_call("cloudtrail", CLOUDTRAIL_TARGET + "LookupEvents", payload)
                events = body.get("Events") if isinstance(body.get("Events"), list) else []
                records = []
                for ev in events or []:
                    if not isinstance(ev, dict):
                        continue
                    rec = _record_of(ev)
                    if rec is not None:
                        records.append(rec)
                    when = _event_time(ev)
                    if when is not None:
                        lo = when if lo is None or when < lo else lo
                        if newest is None or when > _dt(newest):
                            newest = _iso(when)
                nxt = body.get("NextToken")
                token = str(nxt) if isinstance(nxt, str) and nxt else None
                if token is not None and token in seen:
                    raise UnexpectedResponseError(f"pagination loop from {settings.name}: LookupEvents sent the same "
                                                  "NextToken twice", connector=settings.name)
                if token is not None:
                    seen.add(token)
                done = token is None
                seg_start = _iso(start) if start is not None else None
                if done:  # the segment is complete: all that is left to say is the newest event stored
                    cursor = _cursor(newest)
                elif lo is not None:  # (lo, stop] stored, [start, lo] not yet
                    cursor = _cursor(newest, seg_start, _iso(lo))
                elif stop is not None:  # nothing of this segment stored yet
                    cursor = _cursor(newest, seg_start, _iso(stop))
                else:
                    cursor = _cursor(newest)
                window = f"{_iso(start) if start else '-'}..{_iso(stop) if stop else 'now'}"
                yield Page.json_lines(stream, "aws-cloudtrail", records, cursor,
                                      f"POST {ep} LookupEvents {window}"
                                      + (f" {attribute['AttributeKey']}={attribute['AttributeValue']}" if attribute else ""))
                if done:
                    break



# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """IAM access keys by id: deactivate first (reversible, proven by the probe), delete once proven.
    Temporary credentials (`ASIA…`) cannot be revoked one by one."""
    for key in credential.get("keys") or []:
        if key.startswith("aws-key:"):
            key_id = key.removeprefix("aws-key:")
            if key_id.startswith("ASIA"):
                return RevokeHow("aws", "revoke-role-sessions", key_id, needs_raw_secret=False,
                                 note="temporary credentials live until they expire: deny the role's sessions issued "
                                      "before now (aws:TokenIssueTime) and rotate what issued them")
            return RevokeHow("aws", "deactivate-access-key", key_id, needs_raw_secret=False, reversible=True,
                             note="then delete it once the probe proves it dead")
    return None


# ------------------------------------------------------------------------------------------- Sigma

from casefile.sigma import json_field, register_sigma_source  # noqa: E402

# SigmaHQ `product: aws, service: cloudtrail` rules use CloudTrail record paths: undeclared fields read `raw`.
# vendor_type is `<eventSource>:<eventName>` and src_ip drops service names (`ec2.amazonaws.com`), so both
# read the record; only CloudTrail records (not API Gateway access logs) are in the source.
register_sigma_source("aws", "cloudtrail", VENDOR, {
    "eventName": json_field("$.eventName"),
    "eventSource": json_field("$.eventSource"),
    "sourceIPAddress": json_field("$.sourceIPAddress"),
    "userAgent": "user_agent",
}, where="json_type(raw, '$.eventName') IS NOT NULL")


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                    | target                  | raw | act                      | undo / probe              |
# |-------------------------|-------------------------|-----|--------------------------|---------------------------|
# | `deactivate-access-key` | `AKIA…` or `<user>/AKIA…` | no | `deactivate_access_key`  | reactivate / key status   |
# | `reactivate-access-key` | same                    | no  | `reactivate_access_key`  | key status (`still-live`) |
# | `delete-access-key`     | same                    | no  | `delete_access_key`      | key status                |
# | `revoke-role-sessions`  | `ASIA…`                 | no  | manual only: raises with the exact steps | unverified  |
#
# The probes read the key's status in IAM with the connector's own credential (`probe_key_status`): AWS refuses an
# Inactive key, and moto does not, so the status is the evidence a playbook can rely on. Temporary credentials
# cannot be revoked one by one: `revoke-role-sessions` is a manual step (a deny policy on the role, conditioned on
# `aws:TokenIssueTime`, which the AWS console's "Revoke active sessions" writes); its act raises
# `NotAutomatableError` with the command to run, and no probe can prove it (GetCallerIdentity is never denied by
# policy).

from connectors import verbs as _verbs  # noqa: E402


def _key_target(target: str) -> tuple[str | None, str]:
    user, _, key_id = target.strip().rpartition("/")
    if not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError(f"aws target {target!r} is not an access key id (AKIA…), optionally as <user>/<key id>")
    return user or None, key_id


async def _act_deactivate_key(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                              snapshot: act.SnapshotFn) -> dict[str, Any]:
    user, key_id = _key_target(target)
    async with AwsSession(settings, secret) as aws:
        return _verbs.answer(await deactivate_access_key(aws, key_id, user_name=user, snapshot=snapshot))


async def _act_reactivate_key(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                              snapshot: act.SnapshotFn) -> dict[str, Any]:
    user, key_id = _key_target(target)
    async with AwsSession(settings, secret) as aws:
        return _verbs.answer(await reactivate_access_key(aws, key_id, user_name=user, snapshot=snapshot))


async def _act_delete_key(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                          snapshot: act.SnapshotFn) -> dict[str, Any]:
    user, key_id = _key_target(target)
    async with AwsSession(settings, secret) as aws:
        return _verbs.answer(await delete_access_key(aws, key_id, user_name=user, snapshot=snapshot))


async def _probe_key(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    user, key_id = _key_target(target)
    async with AwsSession(settings, secret) as aws:
        return await probe_key_status(aws, key_id, user)


def _session_deny_policy(now: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": ["*"], "Resource": ["*"],
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": now}}}]}, separators=(",", ":"))


async def _act_revoke_role_sessions(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                    snapshot: act.SnapshotFn) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise _verbs.NotAutomatableError(
        f"aws revoke-role-sessions {target}: temporary credentials cannot be revoked one by one, and stanch does not "
        "write IAM policies. By hand: find the role that issued the session (CloudTrail AssumeRole events, or the "
        f"key's principal in the case), then deny every session it issued before now: `aws iam put-role-policy "
        f"--role-name ROLE --policy-name AWSRevokeOlderSessions --policy-document '{_session_deny_policy(now)}'` "
        "(the console's IAM > Roles > ROLE > Revoke active sessions does the same; for GetSessionToken or "
        "GetFederationToken credentials use put-user-policy on the IAM user). Then rotate whatever issued the "
        "session (the role's trust, the parent key), and mark this item done by hand.",
        connector=settings.name)


async def _probe_role_sessions(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None
                               ) -> Verdict:
    return Verdict(REVOKED_UNVERIFIED, f"{target} is a temporary credential: no API proves its sessions denied "
                   "(STS GetCallerIdentity is never denied by policy); check the role's AWSRevokeOlderSessions policy "
                   "and CloudTrail AccessDenied errors for the key, or wait for its expiry")


_verbs.register(VENDOR, "deactivate-access-key", act=_act_deactivate_key, probe=_verbs.guarded(_probe_key),
                reversible=True, undo="reactivate-access-key",
                description="IAM UpdateAccessKey Status=Inactive (reversible); proven by the key's status in IAM")
_verbs.register(VENDOR, "reactivate-access-key", act=_act_reactivate_key, probe=_verbs.guarded(_probe_key),
                description="the undo of deactivate-access-key (Status=Active)")
_verbs.register(VENDOR, "delete-access-key", act=_act_delete_key, probe=_verbs.guarded(_probe_key),
                description="IAM DeleteAccessKey (irreversible): delete once deactivation is proven")
_verbs.register(VENDOR, "revoke-role-sessions", act=_act_revoke_role_sessions, probe=_probe_role_sessions,
                description="manual only: deny the role's sessions issued before now (aws:TokenIssueTime)")
