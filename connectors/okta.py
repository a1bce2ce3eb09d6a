"""okta connector: parsers (registered on import), then the live pull, verbs and probes (section "live" below).

Format `okta-system-log`: Okta System Log `LogEvent` objects (reference: connectors.md §1.2), in either shape

* JSON lines, one LogEvent per line (the common export). Provenance "line" = the 1-based line number.
* the raw `GET /api/v1/logs` response: one JSON array, pretty-printed or on one line. It is streamed with
  ijson so memory stays constant. Provenance "line" = the **1-based index of the item in the array**
  (there are no useful line numbers inside a pretty-printed or single-line array).

The shape is chosen from the first non-blank character of the file (`[` = array). A truncated or broken array
yields every item before the break and one `malformed` Problem at the index of the item that broke.

Keys are looked up exactly first and then case-insensitively: Panther-normalised exports lowercase some
top-level keys (`eventtype`, `debugcontext`, `authenticationcontext`, `securitycontext`).

Credential keys are `okta-token:<id>` (API token ids `00T…`, OAuth token ids such as `AT.…`/`oar…`/`ID.…`) and
`okta-token:hash:<value>` for the token hashes Okta logs on OAuth token targets (`detailEntry.hash`) and on
refresh-token reuse (`debugData.old_refresh_token_hash`); the hash algorithm is not documented, so those keys
are kept in Okta's namespace rather than as `sha256:` keys. A hash of the `at_hash` form (16 bytes of
base64url) also gives the `sha256/16:` key gateways log, which joins the two views of a token (`hash_keys`). A value that looks like a raw credential (a JWT,
a known vendor prefix) is fingerprinted with `casefile.secrets.fingerprint` and never copied.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import ijson
import orjson

from casefile.formats import Format, SourceStream, chunk_of_lines, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import classify, find_secrets, fingerprint, is_secret_field, redaction_marker
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import (
    PrefixedStream,
    first_nonblank_byte,
    get_path,
    get_path_exact,
    json_line_share,
    parse_json_lines,
    stream_json_items,
    text_reader,
)

VENDOR = "okta"
_MISSING = (None, "", "null", "unknown")
_DOTTED = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+$", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------- lookups


# `_get(obj, *path)`: obj[path...], or None when absent or not a dict. Case-insensitive (Panther-lowercased
# exports) unless the record being parsed has canonical keys: `_event` rebinds it once per record, since scanning every
# key on each miss of an optional field would triple parse time for the common, canonical records. Parsing is
# single-threaded within a process.
_get = get_path


# A usable string value: None for absent, empty, `"null"` and `"unknown"`.
_str = text_reader(_MISSING)


def _targets(ev: dict[str, Any]) -> list[dict[str, Any]]:
    t = _get(ev, "target")
    return [x for x in t if isinstance(x, dict)] if isinstance(t, list) else []


def _type_of(target: dict[str, Any]) -> str:
    return (_str(_get(target, "type")) or "").replace(" ", "").replace("-", "_").lower()


# ---------------------------------------------------------------------------------------------- actions

_LOGOUT = ("user.session.end", "user.session.clear", "user.session.expire")
_ADMIN_PREFIXES = (
    "application.lifecycle.",
    "oauth2.as.",
    "app.oauth2.credentials.lifecycle.",
    "policy.lifecycle.",
    "policy.rule.",
    "system.api_token.update",
    "system.api_token.enable",
    "user.session.impersonation.",
    "iam.",
    "zone.",
    "group.",
    "user.lifecycle.",
    "user.account.privilege.",
    "system.idp.lifecycle.",
    "app.oauth2.as.scope.",
    "app.oauth2.as.claim.",
    "app.oauth2.as.policy.",
)


def _is_token_grant(et: str) -> bool:
    return et.startswith("app.oauth2.") and ".token.grant" in et


def _is_authorize_issue(et: str) -> bool:
    return et.startswith("app.oauth2.") and (".authorize.code" in et or ".authorize.implicit." in et)


def _grant_type(debug: Any) -> str | None:
    for key in ("grantType", "grant_type"):
        value = _str(_get(debug, key))
        if value:
            return value.lower()
    return None


def _action(et: str, outcome: str, debug: Any) -> str:
    """Okta eventType (and outcome) → canonical action."""
    failed = outcome == "failure"
    if ".token.detect_reuse" in et:
        return "token.reuse"
    if (
        ".token.revoke" in et
        or et == "system.api_token.revoke"
        or et.startswith("app.oauth2.as.consent.revoke")
    ):
        return "token.revoke"
    if et == "app.oauth2.invalid_client_credentials" or et.endswith(".scope_denied"):
        return "auth.fail"
    if et.endswith((".request_outside_allowed_range", ".unauth_app_access_attempt")):
        return "auth.fail"
    if _is_token_grant(et):
        if failed:
            return "auth.fail"
        grant = _grant_type(debug)
        if grant is not None:
            return "token.refresh" if grant == "refresh_token" else "token.issue"
        return "token.refresh" if et.endswith(".grant.refresh_token") else "token.issue"
    if _is_authorize_issue(et) or et == "system.api_token.create":
        return "auth.fail" if failed else "token.issue"
    if et in _LOGOUT:
        return "logout"
    if et.startswith("user.session.start") or et.startswith("user.authentication."):
        return "auth.fail" if failed else "login"
    if et.startswith("policy.evaluate_sign_on"):
        return "auth.fail" if failed else "other"
    if et.startswith(_ADMIN_PREFIXES):
        return "admin.change"
    if ".export" in et:
        return "data.export"
    return "other"


def _outcome(ev: dict[str, Any]) -> str:
    result = (_str(_get(ev, "outcome", "result")) or "").upper()
    if result in ("SUCCESS", "ALLOW"):
        return "success"
    if result in ("FAILURE", "DENY"):
        return "failure"
    return "unknown"


# ---------------------------------------------------------------------------------------------- credentials

_TOKEN_KINDS = {
    "access_token": "access",
    "accesstoken": "access",
    "refresh_token": "refresh",
    "refreshtoken": "refresh",
    "id_token": "id",
    "idtoken": "id",
    "device_secret": "unknown",
    "interclient_token": "access",
}
_API_TOKEN_TYPES = ("token", "apitoken", "api_token")


def hash_keys(token_hash: str) -> tuple[str, ...]:
    """Keys for a token hash Okta logs: `okta-token:hash:<value>`, and, when the value is 16 bytes of base64url
    (the OIDC `at_hash` form: the left half of the token's SHA-256), the digest's first 16 hex digits as
    `sha256/16:` — the key gateways log — so Okta's view of a token and the gateway's are one credential.
    Okta does not document its algorithm: if it differs, the derived key matches nothing and merges nothing
    (a 64-bit prefix does not collide by chance)."""
    value = token_hash.strip()
    keys: list[str] = [f"okta-token:hash:{value}"]
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 16:
        keys.append(f"sha256/16:{raw[:8].hex()}")
    return tuple(keys)


def _token_keys(value: str) -> tuple[tuple[str, ...], str | None]:
    """Keys naming a token given by its Okta id; a value that is itself a raw credential is fingerprinted."""
    if classify(value) is not None or find_secrets(value):
        fp = fingerprint(value)
        return fp.keys, fp.preview or None
    return (f"okta-token:{value}",), None


def _oauth_ref(target: dict[str, Any], base: dict[str, Any]) -> CredentialRef | None:
    token_id = _str(_get(target, "id"))
    entry = _get(target, "detailEntry")
    token_hash = _str(_get(entry, "hash"))
    keys: list[str] = []
    preview = None
    if token_id:
        k, preview = _token_keys(token_id)
        keys.extend(k)
    if token_hash:
        keys.extend(hash_keys(token_hash))
    if not keys:
        return None
    ref = CredentialRef(
        keys=tuple(keys), kind=_TOKEN_KINDS.get(_type_of(target), "unknown"), preview=preview, **base
    )
    scope = _str(_get(entry, "scope"))
    if scope:
        ref.scopes = scope
    expires = _str(_get(entry, "expires"))
    if expires:
        with contextlib.suppress(TimeError):
            ref.expires_at = to_utc_iso(expires)
    return ref


def _credentials(
    ev: dict[str, Any], et: str, action: str, time: str, principal: str | None, client: str | None
) -> tuple[CredentialRef | None, CredentialRef | None, dict[str, Any]]:
    """(credential presented, credential minted/refreshed/revoked, extra facts)."""
    debug = _get(ev, "debugContext", "debugData")
    extra: dict[str, Any] = {}
    credential: CredentialRef | None = None
    subject: CredentialRef | None = None

    api_token_id = _str(_get(ev, "transaction", "detail", "requestApiTokenId"))
    if api_token_id:
        keys, preview = _token_keys(api_token_id)
        credential = CredentialRef(keys=keys, kind="api-key", principal=principal, preview=preview)

    targets = _targets(ev)
    if et.startswith("system.api_token."):
        for t in targets:
            tid = _str(_get(t, "id"))
            if tid and (_type_of(t) in _API_TOKEN_TYPES or tid.startswith("00T")):
                keys, preview = _token_keys(tid)
                subject = CredentialRef(
                    keys=keys,
                    kind="api-key",
                    principal=principal,
                    preview=preview,
                    issued_at=time if et == "system.api_token.create" else None,
                )
                break
        if et.endswith(".request_outside_allowed_range") and subject is not None and credential is None:
            credential, subject = subject, None
        return credential, subject, extra

    if not et.startswith("app.oauth2."):
        return credential, subject, extra

    base: dict[str, Any] = {
        "client": client,
        "principal": principal,
        "issuer": _str(_get(ev, "authenticationContext", "issuer", "id")),
    }
    scopes = _str(_get(debug, "grantedScopes")) or _str(_get(debug, "granted_scopes"))
    tokens = [r for t in targets if _type_of(t) in _TOKEN_KINDS for r in [_oauth_ref(t, base)] if r]
    # The event type names the token it is about (`….grant.refresh_token`); prefer that target.
    wanted = {"access_token": "access", "refresh_token": "refresh", "id_token": "id"}
    suffix = next((k for k in wanted if et.endswith(k)), None)
    tokens.sort(key=lambda r: 0 if suffix and r.kind == wanted[suffix] else 1)
    if not tokens:
        for key in ("tokenId", "token_id", "jti"):
            tid = _str(_get(debug, key))
            if tid:
                keys, preview = _token_keys(tid)
                kind = wanted.get(suffix or "", "unknown")
                tokens.append(CredentialRef(keys=keys, kind=kind, preview=preview, **base))
                break
    for ref in tokens:
        if scopes and not ref.scopes:
            ref.scopes = scopes
        if action in ("token.issue", "token.refresh"):
            ref.issued_at = time
    if len(tokens) > 1:
        extra["other_tokens"] = [list(r.keys) for r in tokens[1:]]

    if action == "token.reuse":
        old = _str(_get(debug, "old_refresh_token_hash"))
        current = _str(_get(debug, "current_refresh_token_hash"))
        if old:
            credential = CredentialRef(keys=hash_keys(old), kind="refresh", **base)
        elif tokens:
            credential = tokens[0]
        if current:
            extra["current_refresh_token_key"] = f"okta-token:hash:{current}"
        return credential, subject, extra

    if action in ("token.issue", "token.refresh", "token.revoke"):
        subject = tokens[0] if tokens else None
    elif tokens and credential is None:
        credential = tokens[0]
    # Token exchange: the presented tokens are named in debugData.
    if credential is None:
        for key, kind in (("subject_token_id", "access"), ("actor_token_id", "access")):
            tid = _str(_get(debug, key))
            if tid:
                keys, preview = _token_keys(tid)
                credential = CredentialRef(keys=keys, kind=kind, preview=preview, **base)
                break
    return credential, subject, extra


# ---------------------------------------------------------------------------------------------- one event


def _safe_url(url: str) -> str:
    """A URL with secret-named query values (`token=`, `code=`…) and credential-shaped values redacted."""
    parts = urlsplit(url)
    if not parts.query:
        return url if not find_secrets(url) else _redact_shapes(url)
    pairs = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and (is_secret_field(name) or find_secrets(value)):
            value = redaction_marker(value)
        pairs.append(f"{quote(name, safe='')}={quote(value, safe='[]:… ')}")
    return parts._replace(query="&".join(pairs)).geturl()


def _redact_shapes(text: str) -> str:
    for start, end, _ in reversed(find_secrets(text)):
        text = text[:start] + redaction_marker(text[start:end]) + text[end:]
    return text


def _event(ev: dict[str, Any], line: int) -> Parsed | Problem:
    global _get
    _get = get_path if "eventType" not in ev or "published" not in ev else get_path_exact
    et = _str(_get(ev, "eventType"))
    if not ev:
        return Problem(line, "malformed", "empty JSON object: not an Okta LogEvent")
    if not et:
        return Problem(line, "malformed", "no eventType: not an Okta LogEvent")
    published = _get(ev, "published")
    if _str(published) is None:
        return Problem(line, "malformed", f"{et}: no published time")
    try:
        time = to_utc_iso(published)
    except TimeError:
        return Problem(line, "malformed", f"{et}: unreadable published time {str(published)[:40]!r}")

    debug = _get(ev, "debugContext", "debugData")
    outcome = _outcome(ev)
    action = _action(et, outcome, debug)
    principal = _str(_get(ev, "actor", "alternateId")) or _str(_get(ev, "actor", "id"))
    client = _str(_get(ev, "client", "id"))
    if client is None and et.startswith(("app.", "user.authentication.", "user.session.")):
        client = next((_str(_get(t, "id")) for t in _targets(ev) if _type_of(t) == "appinstance"), None)

    credential, subject, extra = _credentials(ev, et, action, time, principal, client)
    if action == "other" and credential is not None and credential.kind == "api-key":
        action = "api.call"  # a request made with an SSWS API token (transaction.detail.requestApiTokenId)
    for key, path in (
        ("transaction_id", ("transaction", "id")),
        ("root_session_id", ("authenticationContext", "rootSessionId")),
        ("outcome_reason", ("outcome", "reason")),
    ):
        value = _str(_get(ev, *path))
        if value:
            extra[key] = value

    resource = _str(_get(debug, "requestUri"))
    if resource is None:
        url = _str(_get(debug, "url"))
        resource = _safe_url(url) if url else None
    asn = _get(ev, "securityContext", "asNumber")
    uuid = _str(_get(ev, "uuid"))
    event = Event(
        time=time,
        vendor=VENDOR,
        action=action,
        raw=ev,
        vendor_type=et,
        vendor_id=uuid,
        outcome=outcome,
        credential=credential,
        subject=subject,
        principal=principal,
        client=client,
        src_ip=_str(_get(ev, "client", "ipAddress")),
        user_agent=_str(_get(ev, "client", "userAgent", "rawUserAgent")),
        country=_str(_get(ev, "client", "geographicalContext", "country")),
        city=_str(_get(ev, "client", "geographicalContext", "city")),
        asn=str(asn) if isinstance(asn, int | str) and not isinstance(asn, bool) and str(asn) else None,
        resource=resource,
        request_id=_str(_get(debug, "requestId")),
        session_id=_str(_get(ev, "authenticationContext", "externalSessionId")),
        extra=extra,
    )
    id_text = None if uuid else orjson.dumps(ev, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(line, event, id_text)


# ---------------------------------------------------------------------------------------------- streams


def _parse_lines(lines: Iterator[tuple[int, str]]) -> Iterator[Parsed | Problem]:
    # The source's own numbering: a chunk of a large file parsed by an ingest worker keeps the file's
    # line numbers.
    yield from parse_json_lines(
        ((n, line.lstrip("\ufeff") if n == 1 else line) for n, line in lines),
        _event,
        non_object="not a JSON object ({type}): not an Okta LogEvent",
    )


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Okta System Log LogEvents from JSON lines or a JSON array (array items are numbered 1, 2, … as "line")."""
    if chunk_of_lines(src):
        yield from _parse_lines(src.lines())
        return
    fh = src.binary()
    try:
        head, first = first_nonblank_byte(fh)
        if first == b"[":
            items = ijson.items(io.BufferedReader(PrefixedStream(head, fh)), "item", use_float=True)
            yield from stream_json_items(
                items,
                _event,
                "JSON array truncated or broken after item {index}: {reason}",
                non_object="array item",
            )
            return
    finally:
        fh.close()
    if first:
        yield from _parse_lines(src.lines())


# ---------------------------------------------------------------------------------------------- sniff

_ARRAY_KEYS = re.compile(r'"(eventType|published|uuid|actor)"\s*:', re.IGNORECASE)
_ARRAY_EVENT_TYPE = re.compile(r'"eventType"\s*:\s*"[a-z0-9_]+(?:\.[a-z0-9_]+)+"', re.IGNORECASE)
_OKTA_ONLY_KEYS = re.compile(
    r'"(alternateId|authenticationContext|externalSessionId|rootSessionId|debugContext|debugData|'
    r'securityContext|geographicalContext|rawUserAgent|ipChain|legacyEventType|displayMessage)"\s*:'
)


def _looks_okta(obj: dict[str, Any]) -> bool:
    keys = {k.lower() for k in obj if isinstance(k, str)}
    et = _get(obj, "eventType")
    return isinstance(et, str) and bool(_DOTTED.match(et)) and bool(keys & {"published", "uuid", "actor"})


def sniff(first_lines: list[str]) -> float:
    """Okta LogEvents: a dotted `eventType` plus `published`/`uuid`/`actor` (JSON lines or a JSON array)."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    first = lines[0].lstrip("\ufeff").lstrip()
    if first.startswith("["):
        text = "\n".join(lines)
        keys = {m.group(1).lower() for m in _ARRAY_KEYS.finditer(text)}
        if _ARRAY_EVENT_TYPE.search(text) and keys & {"published", "uuid", "actor"}:
            return 0.9
        # A pretty-printed API response puts `eventType` far below the first lines: fall back on keys
        # only Okta's LogEvent has (actor.alternateId, authenticationContext, debugContext…).
        okta_keys = {m.group(1) for m in _OKTA_ONLY_KEYS.finditer(text)}
        if "actor" in keys and len(okta_keys) >= 2:
            return 0.7
        return 0.0
    frac = json_line_share(lines, lambda obj: isinstance(obj, dict) and _looks_okta(obj))
    return 0.8 + 0.15 * frac if frac >= 0.5 else 0.0


register(
    Format(
        name="okta-system-log",
        vendor=VENDOR,
        description="Okta System Log LogEvents: JSON lines, or the /api/v1/logs JSON array (items numbered as lines)",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=json_lines,
    )
)


# ---------------------------------------------------------------------------------------------- okta-csv
#
# Format `okta-csv`: the CSV the Admin Console's System Log "Download CSV" link exports. Its column names are not
# in a stored primary source (connectors.md has none; Okta's help pages only say "Download CSV"), so the header
# is read by name, case-, space-, dot- and underscore-insensitively, and both spellings seen in the wild are
# accepted: human labels ("Date", "Actor Alternate ID", "Event Type", "Display Message"/"Event Info",
# "IP Address", "Outcome", …) and the LogEvent's own dotted paths ("published", "actor.alternateId",
# "client.ipAddress", "outcome.result", …). Each row is rebuilt into a LogEvent dict and mapped by `_event`
# above, so a CSV row gets exactly the canonical fields, actions and credential keys of the same JSON event.
# `Event.raw` is the CSV row (column → cell). The header is line 1 and is reported `skipped`; a record's "line"
# is the line it starts on (quoted cells may span lines).

_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    # normalised column name -> LogEvent path
    "published": ("published",), "date": ("published",), "time": ("published",), "dateutc": ("published",),
    "timestamp": ("published",), "eventtime": ("published",),
    "uuid": ("uuid",), "eventuuid": ("uuid",), "eventid": ("uuid",),
    "eventtype": ("eventType",),
    "displaymessage": ("displayMessage",), "eventinfo": ("displayMessage",), "message": ("displayMessage",),
    "severity": ("severity",), "version": ("version",), "legacyeventtype": ("legacyEventType",),
    "actorid": ("actor", "id"), "actortype": ("actor", "type"),
    "actoralternateid": ("actor", "alternateId"), "actoralternateidentifier": ("actor", "alternateId"),
    "actordisplayname": ("actor", "displayName"), "actor": ("actor", "displayName"),
    "ipaddress": ("client", "ipAddress"), "clientip": ("client", "ipAddress"),
    "clientipaddress": ("client", "ipAddress"),
    "clientid": ("client", "id"),
    "useragent": ("client", "userAgent", "rawUserAgent"), "clientuseragent": ("client", "userAgent", "rawUserAgent"),
    "clientuseragentrawuseragent": ("client", "userAgent", "rawUserAgent"),
    "city": ("client", "geographicalContext", "city"),
    "clientgeographicalcontextcity": ("client", "geographicalContext", "city"),
    "country": ("client", "geographicalContext", "country"),
    "clientgeographicalcontextcountry": ("client", "geographicalContext", "country"),
    "outcome": ("outcome", "result"), "outcomeresult": ("outcome", "result"), "result": ("outcome", "result"),
    "outcomereason": ("outcome", "reason"), "reason": ("outcome", "reason"),
    "transactionid": ("transaction", "id"),
    "requestapitokenid": ("transaction", "detail", "requestApiTokenId"),
    "transactiondetailrequestapitokenid": ("transaction", "detail", "requestApiTokenId"),
    "requestid": ("debugContext", "debugData", "requestId"),
    "debugcontextdebugdatarequestid": ("debugContext", "debugData", "requestId"),
    "requesturi": ("debugContext", "debugData", "requestUri"),
    "debugcontextdebugdatarequesturi": ("debugContext", "debugData", "requestUri"),
    "grantedscopes": ("debugContext", "debugData", "grantedScopes"),
    "granttype": ("debugContext", "debugData", "grantType"),
    "externalsessionid": ("authenticationContext", "externalSessionId"),
    "authenticationcontextexternalsessionid": ("authenticationContext", "externalSessionId"),
    "rootsessionid": ("authenticationContext", "rootSessionId"),
    "authenticationcontextrootsessionid": ("authenticationContext", "rootSessionId"),
    "asnumber": ("securityContext", "asNumber"), "securitycontextasnumber": ("securityContext", "asNumber"),
}
_CSV_TARGET_COLUMNS = ("target", "targets", "targetsummary")
_CSV_TIME = ("published", "date", "time", "dateutc", "timestamp", "eventtime")
_CSV_ACTOR = ("actoralternateid", "actoralternateidentifier", "actorid", "actordisplayname")


def _norm_column(name: str) -> str:
    return re.sub(r"[\s._\-()]+", "", name.lstrip("\ufeff").strip().strip('"')).lower()


def _csv_header(line: str) -> list[str] | None:
    import csv

    try:
        row = next(csv.reader([line.lstrip("\ufeff")]))
    except (csv.Error, StopIteration):
        return None
    return row


def _is_okta_csv_header(cols: list[str]) -> bool:
    names = {_norm_column(c) for c in cols}
    return "eventtype" in names and bool(names & set(_CSV_TIME)) and bool(names & set(_CSV_ACTOR))


def _csv_target(cell: str) -> list[Any] | None:
    """A Target cell that holds the LogEvent's JSON target list (or one target object), else None."""
    text = cell.strip()
    if not text.startswith(("[", "{")):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict):
        return [value]
    return value if isinstance(value, list) else None


def _csv_row_event(header: list[str], row: list[str], line: int) -> Parsed | Problem:
    rec: dict[str, str] = dict(zip(header, row, strict=True))
    ev: dict[str, Any] = {}
    target_text = None
    for column, cell in rec.items():
        value = cell.strip()
        if not value:
            continue
        norm = _norm_column(column)
        path = _CSV_COLUMNS.get(norm)
        if path is None:
            if norm in _CSV_TARGET_COLUMNS:
                target = _csv_target(value)
                if target is not None:
                    ev["target"] = target
                elif target_text is None:
                    target_text = value  # the console's summary text ("Name (Type)"): kept, not parsed
            continue
        node = ev
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], value)  # the first column naming a path wins
    result = _event(ev, line)
    if isinstance(result, Problem):
        if result.reason.startswith("empty JSON object"):
            return Problem(line, "malformed", "empty CSV row: no Okta event fields")
        return result
    event = result.event
    event.raw = rec
    if target_text is not None:
        event.extra["target"] = target_text
    id_text = None if event.vendor_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(line, event, id_text)


def parse_csv(src: SourceStream) -> Iterator[Parsed | Problem]:
    """Okta Admin Console System Log CSV rows → `Event`s, mapped like the JSON LogEvents they were exported from."""
    import csv

    fh = src.binary()
    try:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text)
        header: list[str] | None = None
        last = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                yield Problem(last + 1, "malformed", f"unreadable CSV record: {e}")
                last = reader.line_num
                continue
            start, last = last + 1, reader.line_num
            if not row or all(not c.strip() for c in row):
                yield Problem(start, "skipped", "blank line")
                continue
            if header is None:
                if not _is_okta_csv_header(row):
                    yield Problem(start, "malformed", "not an Okta System Log CSV header (no Event Type/Date/Actor columns)")
                    return
                header = row
                yield Problem(start, "skipped", "CSV header")
                continue
            if len(row) != len(header):
                yield Problem(start, "malformed", f"{len(row)} cells, the header has {len(header)}")
                continue
            yield _csv_row_event(header, row, start)
    finally:
        fh.close()


def sniff_csv(first_lines: list[str]) -> float:
    """A CSV header with an Event Type column, a time column and an actor column (Okta's own names)."""
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines or lines[0].lstrip("\ufeff").lstrip().startswith(("{", "[")):
        return 0.0
    cols = _csv_header(lines[0])
    if not cols or len(cols) < 3 or not _is_okta_csv_header(cols):
        return 0.0
    return 0.9


register(
    Format(
        name="okta-csv",
        vendor=VENDOR,
        description="Okta Admin Console System Log CSV export (Download CSV), mapped like okta-system-log",
        parse=parse_csv,
        sniff=sniff_csv,
        version="1",
        splittable=None,
    )
)


# ================================================================================================ live
#
# Okta, live: the System Log pull, API-token / OAuth-token / grant inventory, containment verbs and probes,
# all through `ConnectorClient` (connectors/http.py: retries, `X-Rate-Limit-*`, Link pager, redacted journal).
#
# Paths and parameters are Okta's management OpenAPI (okta-management-openapi-spec, release 2026.06.3); the
# tests run every call below against that document served by Prism (tests/connectors/test_okta_live.py).
#
# Auth: the connector secret is an Okta API token, sent as `Authorization: SSWS <token>` (spec
# `securitySchemes.apiToken`). Build the client with `client_for`.
#
# Verbs. Each destructive verb first GETs what it is about to change and hands it to `act.take(snapshot, what,
# target, body)` (a snapshot that cannot be stored stops the act), then sends the act and returns
# `{"snapshot": body, "status_code": <Okta's answer>}`. DELETEs are retried by the client (DELETE is
# idempotent); the lifecycle POSTs are not.
#
# | verb                    | request                                                       | undo                  |
# |-------------------------|---------------------------------------------------------------|-----------------------|
# | `revoke_api_token`      | DELETE /api/v1/api-tokens/{apiTokenId}                        | none (mint a new one) |
# | `revoke_app_token`      | DELETE /api/v1/apps/{appId}/tokens/{tokenId}                  | none                  |
# | `revoke_app_tokens`     | DELETE /api/v1/apps/{appId}/tokens (every refresh token)      | none                  |
# | `revoke_user_grant`     | DELETE /api/v1/users/{userId}/grants/{grantId}                | none (user consents)  |
# | `revoke_user_grants`    | DELETE /api/v1/users/{userId}/grants                          | none                  |
# | `clear_user_sessions`   | DELETE /api/v1/users/{userId}/sessions?oauthTokens=true&...   | none (user signs in)  |
# | `deactivate_app`        | POST /api/v1/apps/{appId}/lifecycle/deactivate                | `activate_app`        |
#
# Probes (ARCHITECTURE §4: only positive evidence of death counts):
#
# - `probe_api_token`: GET /api/v1/api-tokens/{id} (metadata of an *active* token). 404 = `revoked-verified`;
#   200 for that id = `still-live`; anything else (403, 429, 5xx, a timeout) = `revoked-unverified`.
# - `probe_app_token`: GET /api/v1/apps/{appId}/tokens/{tokenId}. 404 while the app itself answers 200, or 200
#   with `status: REVOKED` = `revoked-verified`; 200 `ACTIVE` = `still-live`; anything else unverified.
# - A raw OAuth token the responder holds is probed by introspection: `connectors.oauth.probe` against the
#   authorization server's `/oauth2/{authorizationServerId}/v1/introspect` (oauth connector); not repeated here.

import asyncio  # noqa: E402
from collections.abc import AsyncIterator, Callable, Mapping  # noqa: E402

import httpx  # noqa: E402

from connectors.act import SnapshotFn, take  # noqa: E402
from connectors.config import ConnectorSettings  # noqa: E402
from connectors.http import ConnectorClient, ConnectorError, JournalEntry, UnexpectedResponseError  # noqa: E402
from connectors.pull import Page  # noqa: E402
from connectors.verdict import REVOKED_UNVERIFIED, REVOKED_VERIFIED, STILL_LIVE, Verdict  # noqa: E402

#: The pull's one stream and the parser its pages go through (the same as an exported System Log).
LOG_STREAM = "system-log"
LOG_FORMAT = "okta-system-log"
#: `GET /api/v1/logs` `limit`: the spec says "Integer between 0 and 1000" (default 100).
LOG_PAGE_LIMIT = 1000
#: `limit` of the token and grant listings (spec `queryLimit`, listUserGrants: 1..200, default 20).
LIST_LIMIT = 200
#: Cursor prefixes (the cursor is opaque outside this module and never holds a secret).
_AFTER, _SINCE = "after:", "since:"
# An Okta object id as it goes into a path: Okta ids are alphanumeric (`00T…`, `0oa…`, `oar…`); `me` too.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def client_for(settings: ConnectorSettings, secret: str, **kwargs: Any) -> ConnectorClient:
    """A `ConnectorClient` for an `okta` connector: the API token goes as `Authorization: SSWS <token>`.

    `settings.url` is the org URL (`https://acme.okta.com`). `kwargs` are `ConnectorClient` options that
    override those taken from the settings (tests pass `transport`, `sleep`, `clock`, `headers`)."""
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
        "headers": {"Accept": "application/json"},
    }
    options.update(kwargs)
    token = secret.strip()
    if token[:5].lower() == "ssws ":  # pasted with its scheme
        token = token[5:].strip()
    return ConnectorClient(settings.name, settings.url, auth_header=lambda: {"Authorization": f"SSWS {token}"},
                           **options)


def _oid(value: str, what: str) -> str:
    text = str(value).strip()
    if not _ID_RE.fullmatch(text):
        raise ValueError(f"{what} {value!r} is not an Okta id (letters, digits, '_', '-', '.')")
    return text


def _obj(client: ConnectorClient, response: httpx.Response) -> dict[str, Any]:
    body = client._json(response)
    if not isinstance(body, dict):
        req = response.request
        raise UnexpectedResponseError(
            f"{response.status_code} from {client.name}: {req.method} {req.url.path} is not a JSON object; "
            "check that the base URL is the Okta org URL", connector=client.name, status=response.status_code,
            method=req.method, path=req.url.path)
    return body


async def _get_obj(client: ConnectorClient, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return _obj(client, await client.request("GET", path, params=params))


async def _list(client: ConnectorClient, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    return [item async for item in client.paginate_link(path, params=params)]


def _errsum(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    code, summary = body.get("errorCode"), body.get("errorSummary")
    text = " ".join(str(x) for x in (code, summary) if isinstance(x, str) and x)
    return " ".join(text.split())[:160]


# ------------------------------------------------------------------------------------------- whoami


async def me(client: ConnectorClient) -> dict[str, Any]:
    """`GET /api/v1/users/me`: the user the API token belongs to (id, login, status)."""
    user = await _get_obj(client, "/api/v1/users/me")
    profile = user.get("profile")
    profile = profile if isinstance(profile, dict) else {}
    return {"id": user.get("id"), "login": profile.get("login"), "status": user.get("status")}


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: who the API token acts as (never the token itself)."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret) as client:
            return await me(client)

    return asyncio.run(ask())


# ------------------------------------------------------------------------------------------- System Log


def _log_cursor(response: httpx.Response, events: list[Any]) -> str | None:
    """Where the next pull resumes after this (non-empty) page: the `after` of its next link, else (a bounded
    query's last page) the last event's `published`, resent as `since` (a repeat of that instant dedupes)."""
    nxt = response.links.get("next", {}).get("url")
    if nxt:
        after = httpx.URL(nxt).params.get("after")
        if after:
            return _AFTER + after
    for ev in reversed(events):
        published = ev.get("published") if isinstance(ev, dict) else None
        if isinstance(published, str) and published:
            return _SINCE + published
    return None


def _log_query(since: str | None, until: str | None, cursor: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"limit": LOG_PAGE_LIMIT, "sortOrder": "ASCENDING"}
    if cursor and cursor.startswith(_AFTER) and len(cursor) > len(_AFTER):
        query["after"] = cursor[len(_AFTER):]  # Okta: `after` cannot be combined with `since`
    elif cursor and cursor.startswith(_SINCE) and len(cursor) > len(_SINCE):
        query["since"] = cursor[len(_SINCE):]
    elif since:
        query["since"] = since
    if until:
        query["until"] = until
    return query


async def pull_logs(client: ConnectorClient, *, since: str | None, until: str | None,
                    cursor: str | None = None, max_pages: int | None = None) -> AsyncIterator[Page]:
    """The System Log as `Page`s: `GET /api/v1/logs?limit=1000&sortOrder=ASCENDING` from `cursor` (else
    `since`), bounded by `until`, following `Link: rel="next"` verbatim.

    Without `until` this is Okta's polling mode: every page, even an empty one, carries a next link, and an
    empty page means "caught up", so the pull stops there. With `until` (bounded mode) the last page has no
    next link. Empty pages are not yielded, so the stored cursor stays that of the last non-empty page.
    """
    url: str | httpx.URL = "/api/v1/logs"
    params: Mapping[str, Any] | None = _log_query(since, until, cursor)
    seen: set[str] = set()
    pages = 0
    while True:
        response = await client.request("GET", url, params=params)
        body = client._json(response)
        if not isinstance(body, list):
            raise UnexpectedResponseError(
                f"{response.status_code} from {client.name}: GET /api/v1/logs is not a JSON array; check that "
                "the base URL is the Okta org URL", connector=client.name, status=response.status_code,
                method="GET", path="/api/v1/logs")
        if not body:
            return  # caught up
        req = response.request.url
        endpoint = f"GET {req.path}?{req.query.decode()}" if req.query else f"GET {req.path}"
        yield Page.json_lines(LOG_STREAM, LOG_FORMAT, body, _log_cursor(response, body), endpoint)
        pages += 1
        nxt = response.links.get("next", {}).get("url")
        if not nxt or (max_pages is not None and pages >= max_pages):
            return
        url, params = client._next_url(response, nxt, seen), None


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str],
               on_journal: Callable[[JournalEntry], None] | None = None) -> AsyncIterator[Page]:
    """connectors/pull.py hook: the System Log (stream `system-log`, format `okta-system-log`), one `Page` per
    Okta page, resuming from `cursors["system-log"]` when present."""
    async with client_for(settings, secret, on_journal=on_journal) as client:
        async for page in pull_logs(client, since=since, until=until, cursor=cursors.get(LOG_STREAM)):
            yield page


# ------------------------------------------------------------------------------------------- API tokens


async def list_api_tokens(client: ConnectorClient) -> list[dict[str, Any]]:
    """`GET /api/v1/api-tokens`: metadata of every active API token (never the token value)."""
    return [t for t in await _list(client, "/api/v1/api-tokens") if isinstance(t, dict)]


async def get_api_token(client: ConnectorClient, token_id: str) -> dict[str, Any]:
    """`GET /api/v1/api-tokens/{apiTokenId}`: one active token's metadata."""
    return await _get_obj(client, f"/api/v1/api-tokens/{_api_token_id(token_id)}")


def _api_token_id(token_id: str) -> str:
    tid = _oid(token_id, "API token id")
    if tid.lower() == "current":  # DELETE /api/v1/api-tokens/current revokes the responder's own token
        raise ValueError("API token id 'current' names the responder's own token; give the leaked token's id")
    return tid


async def revoke_api_token(client: ConnectorClient, token_id: str, snapshot: SnapshotFn | None = None
                           ) -> dict[str, Any]:
    """Revoke API token `token_id` (`DELETE /api/v1/api-tokens/{apiTokenId}`, 204). Snapshot first
    (`okta.api_token`). No undo. Follow with `probe_api_token`."""
    tid = _api_token_id(token_id)
    body = await get_api_token(client, tid)
    take(snapshot, "okta.api_token", tid, body)
    r = await client.request("DELETE", f"/api/v1/api-tokens/{tid}")
    return {"snapshot": body, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- app tokens


async def list_app_tokens(client: ConnectorClient, app_id: str, *, expand_scope: bool = False
                          ) -> list[dict[str, Any]]:
    """`GET /api/v1/apps/{appId}/tokens`: every refresh token of the app, all pages (`limit=200`)."""
    params: dict[str, Any] = {"limit": LIST_LIMIT}
    if expand_scope:
        params["expand"] = "scope"
    items = await _list(client, f"/api/v1/apps/{_oid(app_id, 'app id')}/tokens", params)
    return [t for t in items if isinstance(t, dict)]


async def get_app_token(client: ConnectorClient, app_id: str, token_id: str) -> dict[str, Any]:
    """`GET /api/v1/apps/{appId}/tokens/{tokenId}`: one refresh token (`OAuth2RefreshToken`)."""
    return await _get_obj(client, f"/api/v1/apps/{_oid(app_id, 'app id')}/tokens/{_oid(token_id, 'token id')}")


async def revoke_app_token(client: ConnectorClient, app_id: str, token_id: str,
                           snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """Revoke one refresh token of an app (`DELETE /api/v1/apps/{appId}/tokens/{tokenId}`, 204). Snapshot
    first (`okta.app_token`). No undo. Follow with `probe_app_token`."""
    aid, tid = _oid(app_id, "app id"), _oid(token_id, "token id")
    body = await get_app_token(client, aid, tid)
    take(snapshot, "okta.app_token", tid, body)
    r = await client.request("DELETE", f"/api/v1/apps/{aid}/tokens/{tid}")
    return {"snapshot": body, "status_code": r.status_code}


async def revoke_app_tokens(client: ConnectorClient, app_id: str, snapshot: SnapshotFn | None = None
                            ) -> dict[str, Any]:
    """Revoke every refresh token of an app, and the access tokens minted from them
    (`DELETE /api/v1/apps/{appId}/tokens`, 204). Snapshot first: the token list (`okta.app_tokens`)."""
    aid = _oid(app_id, "app id")
    body = await list_app_tokens(client, aid)
    take(snapshot, "okta.app_tokens", aid, body)
    r = await client.request("DELETE", f"/api/v1/apps/{aid}/tokens")
    return {"snapshot": body, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- user grants


async def list_user_grants(client: ConnectorClient, user_id: str, *, scope_id: str | None = None,
                           expand_scope: bool = False) -> list[dict[str, Any]]:
    """`GET /api/v1/users/{userId}/grants`: the user's consent grants, all pages (`limit=200`)."""
    params: dict[str, Any] = {"limit": LIST_LIMIT}
    if scope_id:
        params["scopeId"] = scope_id
    if expand_scope:
        params["expand"] = "scope"
    items = await _list(client, f"/api/v1/users/{_oid(user_id, 'user id')}/grants", params)
    return [g for g in items if isinstance(g, dict)]


async def get_user_grant(client: ConnectorClient, user_id: str, grant_id: str) -> dict[str, Any]:
    """`GET /api/v1/users/{userId}/grants/{grantId}`."""
    return await _get_obj(client, f"/api/v1/users/{_oid(user_id, 'user id')}/grants/{_oid(grant_id, 'grant id')}")


async def revoke_user_grant(client: ConnectorClient, user_id: str, grant_id: str,
                            snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """Revoke one grant (`DELETE /api/v1/users/{userId}/grants/{grantId}`, 204). Snapshot first
    (`okta.user_grant`)."""
    uid, gid = _oid(user_id, "user id"), _oid(grant_id, "grant id")
    body = await get_user_grant(client, uid, gid)
    take(snapshot, "okta.user_grant", gid, body)
    r = await client.request("DELETE", f"/api/v1/users/{uid}/grants/{gid}")
    return {"snapshot": body, "status_code": r.status_code}


async def revoke_user_grants(client: ConnectorClient, user_id: str, snapshot: SnapshotFn | None = None
                             ) -> dict[str, Any]:
    """Revoke every grant of a user (`DELETE /api/v1/users/{userId}/grants`, 204). Snapshot first: the grant
    list (`okta.user_grants`)."""
    uid = _oid(user_id, "user id")
    body = await list_user_grants(client, uid)
    take(snapshot, "okta.user_grants", uid, body)
    r = await client.request("DELETE", f"/api/v1/users/{uid}/grants")
    return {"snapshot": body, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- sessions


async def clear_user_sessions(client: ConnectorClient, user_id: str, *, oauth_tokens: bool = True,
                              forget_devices: bool = False, snapshot: SnapshotFn | None = None
                              ) -> dict[str, Any]:
    """End every Okta session of a user and, with `oauth_tokens` (default), revoke the OIDC/OAuth access and
    refresh tokens issued to them: `DELETE /api/v1/users/{userId}/sessions?oauthTokens=true&forgetDevices=false`
    (204). `forgetDevices` is sent explicitly because the spec defaults it to true (Identity Engine).

    Okta has no listing of a user's sessions, so the snapshot (`okta.user_sessions`) is the user
    (`GET /api/v1/users/{userId}`) and the OAuth clients holding their tokens or grants
    (`GET /api/v1/users/{userId}/clients`). No undo: the user signs in again.
    """
    uid = _oid(user_id, "user id")
    user = await _get_obj(client, f"/api/v1/users/{uid}")
    clients = await _list(client, f"/api/v1/users/{uid}/clients")
    body = {"user": user, "clients": clients}
    take(snapshot, "okta.user_sessions", uid, body)
    params = {"oauthTokens": "true" if oauth_tokens else "false",
              "forgetDevices": "true" if forget_devices else "false"}
    r = await client.request("DELETE", f"/api/v1/users/{uid}/sessions", params=params)
    return {"snapshot": body, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- apps


async def get_app(client: ConnectorClient, app_id: str) -> dict[str, Any]:
    """`GET /api/v1/apps/{appId}`: the application (what a deactivation changes)."""
    return await _get_obj(client, f"/api/v1/apps/{_oid(app_id, 'app id')}")


async def deactivate_app(client: ConnectorClient, app_id: str, snapshot: SnapshotFn | None = None
                         ) -> dict[str, Any]:
    """Deactivate an app (`POST /api/v1/apps/{appId}/lifecycle/deactivate`, 200): no sign-in, no new tokens.
    Reversible: undo with `activate_app`. Deactivation also removes group-based app assignments (Okta
    reconciles them), which activation does not restore on its own: the snapshot keeps the app as it was
    (`okta.app`). Not retried automatically."""
    aid = _oid(app_id, "app id")
    body = await get_app(client, aid)
    take(snapshot, "okta.app", aid, body)
    r = await client.request("POST", f"/api/v1/apps/{aid}/lifecycle/deactivate")
    return {"snapshot": body, "status_code": r.status_code}


async def activate_app(client: ConnectorClient, app_id: str, snapshot: SnapshotFn | None = None
                       ) -> dict[str, Any]:
    """The undo of `deactivate_app`: `POST /api/v1/apps/{appId}/lifecycle/activate` (200). Snapshots the app
    first too (`okta.app`), since it changes state."""
    aid = _oid(app_id, "app id")
    body = await get_app(client, aid)
    take(snapshot, "okta.app", aid, body)
    r = await client.request("POST", f"/api/v1/apps/{aid}/lifecycle/activate")
    return {"snapshot": body, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- probes


async def _answer(client: ConnectorClient, path: str, what: str) -> tuple[httpx.Response | None, Verdict | None]:
    try:
        return await client.request("GET", path, accept_status=(404,)), None
    except ConnectorError as e:
        return None, Verdict(REVOKED_UNVERIFIED, f"{what} failed, nothing proven: {e}", http_status=e.status)


async def probe_api_token(client: ConnectorClient, token_id: str) -> Verdict:
    """Is API token `token_id` gone? Okta's 404 on `GET /api/v1/api-tokens/{id}` (which lists active tokens
    only) proves it; 200 for that id is `still-live`; anything else proves nothing."""
    tid = _api_token_id(token_id)
    what = f"GET /api/v1/api-tokens/{tid}"
    r, failed = await _answer(client, f"/api/v1/api-tokens/{tid}", what)
    if failed is not None or r is None:
        return failed or Verdict(REVOKED_UNVERIFIED, f"{what} gave no answer")
    if r.status_code == 404:
        return Verdict(REVOKED_VERIFIED, f"{what} refused: 404 {_errsum(r) or 'not found'} (no active API token "
                       "with that id)", http_status=404)
    try:
        body = _obj(client, r)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without a token: {e}",
                       http_status=r.status_code)
    if body.get("id") not in (None, tid):
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} for another token",
                       http_status=r.status_code)
    return Verdict(STILL_LIVE, f"{what} answered {r.status_code}: active token {body.get('name')!r} of user "
                   f"{body.get('userId')}, expires {body.get('expiresAt') or '?'}", expires_at=_iso_or_none(
                       body.get("expiresAt")), http_status=r.status_code)


async def probe_app_token(client: ConnectorClient, app_id: str, token_id: str) -> Verdict:
    """Is refresh token `token_id` of app `app_id` gone? 404 for the token while the app answers 200, or the
    token reported `REVOKED`, proves it; `ACTIVE` is `still-live`; anything else proves nothing."""
    aid, tid = _oid(app_id, "app id"), _oid(token_id, "token id")
    what = f"GET /api/v1/apps/{aid}/tokens/{tid}"
    r, failed = await _answer(client, f"/api/v1/apps/{aid}/tokens/{tid}", what)
    if failed is not None or r is None:
        return failed or Verdict(REVOKED_UNVERIFIED, f"{what} gave no answer")
    if r.status_code == 404:
        app, app_failed = await _answer(client, f"/api/v1/apps/{aid}", f"GET /api/v1/apps/{aid}")
        if app_failed is not None or app is None or app.status_code != 200:
            why = app_failed.evidence if app_failed else f"the app answered {app.status_code if app else 'nothing'}"
            return Verdict(REVOKED_UNVERIFIED, f"{what} answered 404, but {why}: check the app id", http_status=404)
        return Verdict(REVOKED_VERIFIED, f"{what} refused: 404 {_errsum(r) or 'not found'} (the app exists; the "
                       "token does not)", http_status=404)
    try:
        body = _obj(client, r)
    except ConnectorError as e:
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} without a token: {e}",
                       http_status=r.status_code)
    status = str(body.get("status") or "").upper()
    if body.get("id") not in (None, tid):
        return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} for another token",
                       http_status=r.status_code)
    expires = _iso_or_none(body.get("expiresAt"))
    if status == "REVOKED":
        return Verdict(REVOKED_VERIFIED, f"{what} answered {r.status_code}: status REVOKED", expires_at=expires,
                       http_status=r.status_code)
    if status == "ACTIVE":
        return Verdict(STILL_LIVE, f"{what} answered {r.status_code}: status ACTIVE (client {body.get('clientId')}, "
                       f"user {body.get('userId')})", expires_at=expires, http_status=r.status_code)
    return Verdict(REVOKED_UNVERIFIED, f"{what} answered {r.status_code} with status {status or 'missing'}",
                   expires_at=expires, http_status=r.status_code)


def _iso_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_utc_iso(value)
    except TimeError:
        return None


# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """Okta credentials by their `okta-token:` id: API tokens (`00T…`) and OAuth tokens of an app (`AT.…`,
    `oar…`), revoked by id over the management API (no raw secret needed)."""
    for key in credential.get("keys") or []:
        if not key.startswith("okta-token:") or key.startswith("okta-token:hash:"):
            continue
        token_id = key.removeprefix("okta-token:")
        if token_id.startswith("00T"):
            return RevokeHow("okta", "revoke-api-token", token_id, needs_raw_secret=False)
        app = credential.get("client")
        if app:
            refresh = credential.get("kind") == "refresh"
            return RevokeHow("okta", "revoke-app-token", f"{app}/{token_id}", needs_raw_secret=False,
                             note="revoking a refresh token also ends the access tokens minted from it" if refresh
                             else "")
    return None


# ------------------------------------------------------------------------------------------- Sigma

from casefile.sigma import register_sigma_source  # noqa: E402

# SigmaHQ `product: okta, service: okta` rules use System Log JSON paths: undeclared fields read `raw`.
# `target.*` reads the first target (`$.target[0]`; casefile/sigma.py).
register_sigma_source("okta", "okta", VENDOR, {
    "eventType": "vendor_type",
    "actor.alternateId": "principal",
    "client.ipAddress": "src_ip",
    "client.userAgent.rawUserAgent": "user_agent",
})


# ------------------------------------------------------------------------------------------- finding rules

from pathlib import Path as _Path  # noqa: E402

from casefile.findings import register_rules_dir  # noqa: E402

register_rules_dir(_Path(__file__).parent / "rules" / "okta")


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                  | target              | raw | act                   | undo / probe                         |
# |-----------------------|---------------------|-----|-----------------------|--------------------------------------|
# | `revoke-api-token`    | `<tokenId>` (00T…)  | no  | `revoke_api_token`    | `probe_api_token`                    |
# | `revoke-app-token`    | `<appId>/<tokenId>` | no  | `revoke_app_token`    | `probe_app_token`                    |
# | `revoke-app-tokens`   | `<appId>`           | no  | `revoke_app_tokens`   | the app's token list holds no ACTIVE |
# | `revoke-user-grants`  | `<userId>`          | no  | `revoke_user_grants`  | the user's grant list is empty       |
# | `clear-user-sessions` | `<userId>`          | no  | `clear_user_sessions` | none (Okta lists no sessions)        |
# | `deactivate-app`      | `<appId>`           | no  | `deactivate_app`      | undo `activate-app`; app INACTIVE    |
# | `activate-app`        | `<appId>`           | no  | `activate_app`        | the app's status                     |

from connectors import verbs as _verbs  # noqa: E402


def _app_token_target(target: str) -> tuple[str, str]:
    app_id, sep, token_id = target.strip().partition("/")
    if not sep or not app_id or not token_id:
        raise ValueError(f"okta revoke-app-token target {target!r} must be <appId>/<tokenId>")
    return app_id, token_id


async def _act_revoke_api_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_api_token(client, target, snapshot))


async def _probe_api_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        return await probe_api_token(client, target)


async def _act_revoke_app_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                snapshot: SnapshotFn) -> dict[str, Any]:
    app_id, token_id = _app_token_target(target)
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_app_token(client, app_id, token_id, snapshot))


async def _probe_app_token(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    app_id, token_id = _app_token_target(target)
    async with client_for(settings, secret) as client:
        return await probe_app_token(client, app_id, token_id)


async def _act_revoke_app_tokens(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                 snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_app_tokens(client, target, snapshot))


async def _probe_app_tokens(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        tokens = await list_app_tokens(client, target)
    active = [t for t in tokens if str(t.get("status") or "").upper() != "REVOKED"]
    if active:
        return Verdict(STILL_LIVE, f"app {target} still lists {len(active)} refresh token(s) not REVOKED",
                       http_status=200)
    return Verdict(REVOKED_VERIFIED, f"app {target} lists no live refresh token ({len(tokens)} listed)",
                   http_status=200)


async def _act_revoke_user_grants(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                  snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_user_grants(client, target, snapshot))


async def _probe_user_grants(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        grants = await list_user_grants(client, target)
    live = [g for g in grants if str(g.get("status") or "ACTIVE").upper() == "ACTIVE"]
    if live:
        return Verdict(STILL_LIVE, f"user {target} still holds {len(live)} active grant(s)", http_status=200)
    return Verdict(REVOKED_VERIFIED, f"user {target} holds no active grant ({len(grants)} listed)", http_status=200)


async def user_id_for(client: ConnectorClient, user: str) -> str:
    """An Okta user id for a user id or a login (cases name people by login; `GET /api/v1/users/{login}`)."""
    if _ID_RE.fullmatch(user.strip()):
        return user.strip()
    body = await _get_obj(client, f"/api/v1/users/{quote(user.strip(), safe='')}")
    uid = body.get("id")
    if not isinstance(uid, str) or not _ID_RE.fullmatch(uid):
        raise ValueError(f"okta: no user id for {user!r}")
    return uid


async def _act_clear_user_sessions(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                   snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await clear_user_sessions(client, await user_id_for(client, target), snapshot=snapshot))


async def _act_deactivate_app(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                              snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await deactivate_app(client, target, snapshot))


async def _act_activate_app(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                            snapshot: SnapshotFn) -> dict[str, Any]:
    async with client_for(settings, secret) as client:
        return _verbs.answer(await activate_app(client, target, snapshot))


async def _probe_app_inactive(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    async with client_for(settings, secret) as client:
        app = await get_app(client, target)
    status = str(app.get("status") or "").upper()
    if status == "INACTIVE":
        return Verdict(REVOKED_VERIFIED, f"app {target} is INACTIVE: no sign-in, no new tokens", http_status=200)
    if status == "ACTIVE":
        return Verdict(STILL_LIVE, f"app {target} is ACTIVE", http_status=200)
    return Verdict(REVOKED_UNVERIFIED, f"app {target} answered status {status or 'missing'}", http_status=200)


_verbs.register(VENDOR, "revoke-api-token", act=_act_revoke_api_token, probe=_verbs.guarded(_probe_api_token),
                description="revoke an API token by id (DELETE /api/v1/api-tokens/{id})")
_verbs.register(VENDOR, "revoke-app-token", act=_act_revoke_app_token, probe=_verbs.guarded(_probe_app_token),
                description="revoke one OAuth refresh token of an app by id (and the access tokens minted from it)")
_verbs.register(VENDOR, "revoke-app-tokens", act=_act_revoke_app_tokens, probe=_verbs.guarded(_probe_app_tokens),
                description="revoke every OAuth refresh token of an app")
_verbs.register(VENDOR, "revoke-user-grants", act=_act_revoke_user_grants, probe=_verbs.guarded(_probe_user_grants),
                description="revoke every consent grant of a user")
_verbs.register(VENDOR, "clear-user-sessions", act=_act_clear_user_sessions, probe=None,
                description="end a user's Okta sessions and revoke the OAuth tokens issued to them (no probe: "
                            "Okta lists no sessions)")
_verbs.register(VENDOR, "deactivate-app", act=_act_deactivate_app, probe=_verbs.guarded(_probe_app_inactive),
                reversible=True, undo="activate-app",
                description="deactivate an app: no sign-in, no new tokens (undo: activate-app)")
_verbs.register(VENDOR, "activate-app", act=_act_activate_app, probe=_verbs.guarded(_probe_app_inactive),
                description="the undo of deactivate-app")
