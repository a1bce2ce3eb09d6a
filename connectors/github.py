"""github connector (parsers registered on import).

Format `github-audit`: GitHub organization / enterprise audit log entries (reference: connectors.md §6.7), as

* JSON lines, one entry per line: audit-log streaming (S3, Blob, Splunk…), exports, and collectors that write one
  REST entry per line. Provenance "line" = the 1-based line number.
* the raw `GET /orgs/{org}/audit-log` / `GET /enterprises/{ent}/audit-log` response: one JSON array, streamed
  with ijson so memory stays constant. Provenance "line" = the **1-based index of the entry in the array**.
* JSON objects pretty-printed one after another (`jq .` output): streamed the same way, numbered the same way.

The shape is chosen from the first non-blank line: `[` = array; a line that is just `{` = pretty-printed objects.

Time is `@timestamp` (streaming/enterprise), else Panther's rename of it `at_sign_timestamp`, else `created_at`
(REST API): epoch milliseconds, or an ISO/Panther `YYYY-MM-DD HH:MM:SS.fff` string. An entry without `action`
or without a readable time is `malformed`.

Credential keys (the token that authenticated the action; GitHub documents `hashed_token` as "SHA-256 hash of
the token used for authentication"):

* `hashed_token` is base64 of the token's binary SHA-256 → `sha256:<hex>` (`casefile.secrets.github_hashed_token_key`),
  so a leaked `ghp_…` fingerprinted by stanch matches its own audit trail. A value that is not 32 bytes of
  base64 is kept in GitHub's namespace as `github-token:hash:<value>`.
* `token_id` → `github-token:<id>`. An entry giving both merges them: one secret.
* `programmatic_access_type` → kind (PATs → `pat`; OAuth, GitHub App tokens → `access`), `token_scopes` → scopes,
  `actor` → principal, `oauth_application_id` → client.

Token lifecycle entries (`personal_access_token.*`, `oauth_access.*`, `oauth_authorization.*`) name no token
field of the token created or revoked (only the one used to do it), so they carry no `subject`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from itertools import chain
from typing import Any

import ijson
import orjson

from casefile.formats import Format, SourceStream, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import github_hashed_token_key
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import (
    LineStream,
    first_nonblank_line,
    json_line_share,
    parse_json_lines,
    stream_json_items,
    text_reader,
)

VENDOR = "github"
_DOTTED = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+$")

# ---------------------------------------------------------------------------------------------- actions

_TOKEN_ISSUE = frozenset(
    {
        "personal_access_token.create",
        "personal_access_token.regenerate",
        "oauth_access.create",
        "oauth_access.regenerate",
        "oauth_authorization.create",
    }
)
_TOKEN_REVOKE = frozenset(
    {
        "personal_access_token.destroy",
        "personal_access_token.revoke",
        "personal_access_token.access_revoked",
        "oauth_access.destroy",
        "oauth_access.revoke",
        "oauth_authorization.destroy",
        "oauth_authorization.revoke",
        "org_credential_authorization.revoke",
        "org_credential_authorization.deauthorize",
        "org_credential_authorization.deauthorized",
    }
)
_EXACT = {
    "repo.download_zip": "data.export",
    # A clone copies the whole repository: the exfiltration step after a PAT theft, like a zip download.
    "git.clone": "data.export",
    # A fetch tops up a copy the caller already has (every CI run does one): ordinary authenticated traffic.
    "git.fetch": "api.call",
    "git.push": "api.call",
    "user.login": "login",
    "user.failed_login": "auth.fail",
    "user.logout": "logout",
    "org.sso_response": "login",
    "business.sso_response": "login",
    "protected_branch.rejected_ref_update": "api.call",  # a push refused by branch protection
}
_FAILED = frozenset({"user.failed_login", "protected_branch.rejected_ref_update"})
# Content and activity, not configuration: authenticated API/web use.
_ACTIVITY_PREFIXES = (
    "pull_request",
    "issue",
    "issues",
    "issue_comment",
    "workflows",
    "discussion",
    "discussion_post",
    "discussion_post_reply",
    "discussion_comment",
    "project",
    "projects_v2",
    "packages",
    "codespaces",
    "api",
)


def action_for(action: str) -> str:
    """GitHub audit `action` → canonical action."""
    if action in _TOKEN_ISSUE:
        return "token.issue"
    if action in _TOKEN_REVOKE:
        return "token.revoke"
    mapped = _EXACT.get(action)
    if mapped:
        return mapped
    # Actions secrets, Dependabot/Codespaces secrets and secret scanning settings: configuration changes.
    if "secret" in action:
        return "admin.change"
    category = action.split(".", 1)[0]
    if category in _ACTIVITY_PREFIXES:
        return "api.call"
    return "admin.change"


# ---------------------------------------------------------------------------------------------- fields


_str = text_reader()  # a usable string: None for absent and blank values


def _id(value: Any) -> str | None:
    """An id that JSON may give as a number (`720527199`, `5.7e10` after a float round trip) or a string."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _str(value)


def _time(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Panther writes `1621305118553.0`: milliseconds, not a fraction
    try:
        return to_utc_iso(value)
    except (TimeError, ValueError, OverflowError, OSError):
        return None


_KINDS = {
    "personal access token (classic)": "pat",
    "fine-grained personal access token": "pat",
    "personal access token": "pat",
    "oauth access token": "access",
    "github app server-to-server token": "access",
    "github app user-to-server token": "access",
    "github app installation token": "access",
}


def _kind(access_type: str | None) -> str:
    if not access_type:
        return "unknown"
    return _KINDS.get(access_type.lower(), "unknown")


def _credential(rec: dict[str, Any], principal: str | None, client: str | None) -> CredentialRef | None:
    keys: list[str] = []
    hashed = _str(rec.get("hashed_token"))
    if hashed:
        keys.append(github_hashed_token_key(hashed) or f"github-token:hash:{hashed}")
    token_id = _id(rec.get("token_id"))
    if token_id:
        keys.append(f"github-token:{token_id}")
    if not keys:
        return None
    scopes = _str(rec.get("token_scopes"))
    if scopes:
        scopes = " ".join(s for s in scopes.replace(",", " ").split())
    return CredentialRef(
        keys=tuple(keys),
        kind=_kind(_str(rec.get("programmatic_access_type"))),
        issuer=VENDOR,
        client=client,
        principal=principal,
        scopes=scopes or None,
    )


_EXTRA = ("org", "business", "user", "operation_type", "programmatic_access_type", "actor_id", "actor_is_bot",
          "external_identity_nameid", "protocol_name", "integration", "team")


def _event(rec: dict[str, Any], line: int) -> Parsed | Problem:
    action = _str(rec.get("action"))
    if not rec:
        return Problem(line, "malformed", "empty JSON object: not a GitHub audit entry")
    if not action:
        return Problem(line, "malformed", "no action: not a GitHub audit entry")
    time = None
    for key in ("@timestamp", "at_sign_timestamp", "created_at", "timestamp"):
        value = rec.get(key)
        if value is not None and value != "":
            time = _time(value)
            if time is None:
                return Problem(line, "malformed", f"{action}: unreadable {key} {str(value)[:40]!r}")
            break
    if time is None:
        return Problem(line, "malformed", f"{action}: no timestamp (@timestamp or created_at)")

    mapped = action_for(action)
    principal = _str(rec.get("actor"))
    client = _id(rec.get("oauth_application_id")) or _str(rec.get("oauth_application"))
    data_value = rec.get("data")
    data: dict[str, Any] = data_value if isinstance(data_value, dict) else {}
    repo = _str(rec.get("repo")) or _str(rec.get("repository")) or _str(data.get("repo"))
    team = _str(rec.get("team")) or _str(data.get("team"))
    resource = repo or team or _str(rec.get("org")) or _str(rec.get("business"))
    location = rec.get("actor_location")
    country = _str(location.get("country_code")) if isinstance(location, dict) else None

    extra: dict[str, Any] = {}
    for key in _EXTRA:
        value = rec.get(key)
        if key == "team" and value is None:
            value = data.get("team")
        if value is not None and value != "":
            extra[key] = value
    doc_id = _str(rec.get("_document_id"))
    event = Event(
        time=time,
        vendor=VENDOR,
        action=mapped,
        raw=rec,
        vendor_type=action,
        vendor_id=doc_id,
        outcome="failure" if action in _FAILED else "success",
        credential=_credential(rec, principal, client),
        principal=principal,
        client=client,
        src_ip=_str(rec.get("actor_ip")),
        user_agent=_str(rec.get("user_agent")),
        country=country,
        resource=resource,
        request_id=_str(rec.get("request_id")),
        extra=extra,
    )
    id_text = None if doc_id else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
    return Parsed(line, event, id_text)


# ---------------------------------------------------------------------------------------------- streams


def _stream(items: Iterator[Any], what: str) -> Iterator[Parsed | Problem]:
    return stream_json_items(
        items, _event, f"JSON {what}s truncated or broken after {what} {{index}}: {{reason}}", non_object=what
    )


def parse(src: SourceStream) -> Iterator[Parsed | Problem]:
    """GitHub audit entries from JSON lines, a JSON array or pretty-printed objects (the last two numbered by item)."""
    lines = iter(src.lines())
    blanks, first = first_nonblank_line(lines)
    head = first[1].lstrip("\ufeff").strip() if first else ""
    if head.startswith("["):
        stream = io.BufferedReader(LineStream([head], lines))
        yield from _stream(ijson.items(stream, "item", use_float=True), "array item")
    elif head == "{":  # pretty-printed objects (`jq .`, `json.dumps(indent=…)`)
        stream = io.BufferedReader(LineStream([head], lines))
        yield from _stream(ijson.items(stream, "", multiple_values=True, use_float=True), "object")
    else:
        for b in blanks:
            yield Problem(b, "skipped", "blank line")
        if first is not None:
            yield from _parse_lines([first], lines)


def _parse_lines(first: list[tuple[int, str]], rest: Iterator[tuple[int, str]]) -> Iterator[Parsed | Problem]:
    yield from parse_json_lines(
        chain(first, rest), _event, non_object="not a JSON object ({type}): not a GitHub audit entry"
    )


# ---------------------------------------------------------------------------------------------- sniff

# Keys of GitHub audit entries that other vendors' records do not carry together with a dotted `action`.
_GITHUB_KEYS = frozenset(
    {"_document_id", "actor_location", "actor_ip", "actor_id", "org", "org_id", "repo", "repository", "business",
     "created_at", "@timestamp", "at_sign_timestamp", "hashed_token", "programmatic_access_type", "operation_type"}
)
_ARRAY_ACTION = re.compile(r'"action"\s*:\s*"[a-z0-9_]+(?:\.[a-z0-9_]+)+"')
_ARRAY_KEYS = re.compile(r'"(_document_id|actor_location|actor_ip|created_at|@timestamp|hashed_token|'
                         r'programmatic_access_type|operation_type|org|repo)"\s*:')
_ARRAY_ACTOR = re.compile(r'"actor"\s*:\s*"')


def _looks_github(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    action = obj.get("action")
    actor = obj.get("actor")
    if not isinstance(action, str) or not _DOTTED.match(action) or isinstance(actor, dict | list):
        return False
    return len(_GITHUB_KEYS.intersection(obj)) >= 1 and (isinstance(actor, str) or "_document_id" in obj)


def sniff(first_lines: list[str]) -> float:
    """GitHub audit entries: a dotted `action`, a string `actor` and GitHub's keys (JSON lines, array or pretty)."""
    lines = [ln.strip() for ln in first_lines if ln.strip()]
    if not lines:
        return 0.0
    first = lines[0].lstrip("\ufeff")
    if first.startswith("[") or first == "{":
        text = "\n".join(lines)
        if '"eventType"' in text or '"eventName"' in text:
            return 0.0
        keys = set(_ARRAY_KEYS.findall(text))
        if _ARRAY_ACTION.search(text) and _ARRAY_ACTOR.search(text) and len(keys) >= 2:
            return 0.85
        return 0.0
    frac = json_line_share(lines, _looks_github)
    return 0.6 + 0.35 * frac if frac >= 0.5 else 0.0


register(
    Format(
        name="github-audit",
        vendor=VENDOR,
        description="GitHub organization/enterprise audit log: JSON lines (streaming, exports) or the REST API "
        "JSON array (items numbered as lines)",
        parse=parse,
        sniff=sniff,
        version="1",
        splittable=json_lines,
    )
)
