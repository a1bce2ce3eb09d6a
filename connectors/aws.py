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

import contextlib
import io
import ipaddress
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

import ijson
import orjson

from casefile.formats import Format, SourceStream, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, sha256_hex
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import (
    UTF8_BOM,
    PrefixedStream,
    get_path,
    get_path_exact,
    json_line_share,
    parse_json_lines,
    stream_json_items,
    text_reader,
)

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
        return Problem(line, "malformed", f"unreadable CloudTrail record: {type(e).__name__}: {e}")


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
        return Problem(n, "malformed", f"unreadable API Gateway access-log record: {type(e).__name__}: {e}")


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
