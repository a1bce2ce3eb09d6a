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

import asyncio
import io
import re
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import httpx
import ijson
import orjson

from casefile.formats import Format, SourceStream, chunk_of_lines, json_lines, register
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.secrets import fingerprint, github_hashed_token_key
from casefile.timeutil import TimeError, to_utc_iso
from connectors._common import (
    LineStream,
    first_nonblank_line,
    json_line_share,
    parse_json_lines,
    stream_json_items,
    text_reader,
)
from connectors.act import SnapshotFn, take
from connectors.config import ConnectorSettings
from connectors.http import (
    REQUEST_ID_HEADER,
    ConfigurationError,
    ConnectorClient,
    ConnectorError,
    JournalEntry,
    NotFoundError,
    RateLimitedError,
    UnexpectedResponseError,
)
from connectors.pull import Page
from connectors.verdict import REVOKED_UNVERIFIED as UNVERIFIED
from connectors.verdict import REVOKED_VERIFIED as VERIFIED
from connectors.verdict import STILL_LIVE as LIVE
from connectors.verdict import Verdict

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
    head = first[1].lstrip("\ufeff").strip() if first and not chunk_of_lines(src) else ""
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


# ---------------------------------------------------------------------------------------------- live API
#
# GitHub, live: who am I, revoke leaked tokens, organisation fine-grained PAT access, and the org audit log,
# all through `ConnectorClient`. Checked against GitHub's official OpenAPI (`ghec.json` of @octokit/openapi
# 23.0.2, the subset in tests/fixtures/github/spec/).
#
# Connector settings (`kind = "github"`):
#
# - `url`: the API root, optionally followed by `/orgs/<org>` to name the organisation the org calls and `pull`
#   use: `https://api.github.com/orgs/acme`; GitHub Enterprise Server `https://ghe.example.com/api/v3/orgs/acme`.
#   Everything before `/orgs/` is the API root.
# - **PAT auth** (`client_id` unset): the secret is a token (`ghp_…`, `github_pat_…`, `gho_…`), sent as
#   `Authorization: Bearer`. The audit log needs an org owner's token with `read:audit_log` (classic).
# - **GitHub App auth** (`client_id` set): `client_id` is the App's id (or its client id `Iv1.…`, which GitHub
#   also accepts as the JWT issuer) and the secret is the App's **private key, PEM**. stanch signs a JWT
#   (RS256; `iat` 60 s in the past, `exp` 9 minutes ahead, under GitHub's 10-minute cap; `iss` the App), finds
#   the org's installation (`GET /orgs/{org}/installation`), and trades the JWT for an installation token
#   (`POST /app/installations/{id}/access_tokens`, valid one hour), cached until 5 minutes before it expires.
#   The org fine-grained PAT endpoints accept only GitHub Apps. PyJWT (with `cryptography`) signs; it is
#   imported only when App auth is used.
#
# Leaked tokens (`revoke_credentials`, `probe_token`) are passed in at call time, held in memory for that
# call, and scrubbed from the journal and every error text (ConnectorClient `auth=` / `secrets=`).
#
# Verdicts (ARCHITECTURE §4):
#
# - `POST /credentials/revoke` answers 202 whatever it did (it is asynchronous and accepts unknown tokens): no
#   proof. `probe_token` sends `GET /user` *as the leaked token*: 401 (Bad credentials) = `revoked-verified`,
#   200 = `still-live`, anything else (403: rate limit, an installation token, SSO) = `revoked-unverified`.
#   GitHub revokes asynchronously, so a probe right after the 202 may still see 200: probe again shortly.
# - Revoking a fine-grained PAT's **org access** removes only that organisation's grant: the token itself lives
#   on (public resources, other orgs, SSH keys it added). `revoke_fine_grained_pat` re-lists the grants
#   afterwards: `revoked-verified` (org access only) when the grant is gone, else `revoked-unverified`.

#: GitHub's REST API version sent on every call (the header GitHub documents for versioned requests).
API_VERSION = "2022-11-28"
# `application/json` also listed: the OpenAPI declares only that media type, and GitHub serves the same JSON.
GITHUB_HEADERS = {"Accept": "application/vnd.github+json, application/json", "X-GitHub-Api-Version": API_VERSION}
DEFAULT_API = "https://api.github.com"
#: `POST /credentials/revoke`: at most 1,000 credentials per request (spec `maxItems`); 60 requests an hour.
REVOKE_BATCH = 1000
#: `POST /orgs/{org}/personal-access-tokens`: at most 100 `pat_ids` per request (spec `maxItems`).
PAT_BATCH = 100
PER_PAGE = 100  # GitHub's maximum `per_page` (the spec says "max 100" in the description only)
JWT_BACKDATE_S = 60
JWT_LIFETIME_S = 540
TOKEN_REFRESH_MARGIN_S = 300
RATE_LIMIT_RETRIES = 2
SECONDARY_LIMIT_WAIT_S = 60.0  # GitHub: without retry-after or a reset, wait at least a minute
STREAM = "audit-log"
FORMAT = "github-audit"

_ORG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def split_url(url: str) -> tuple[str, str | None]:
    """`(API root, org or None)` from a connector URL such as `https://api.github.com/orgs/acme`."""
    root, sep, rest = url.rstrip("/").partition("/orgs/")
    if not sep:
        return root or DEFAULT_API, None
    org = rest.strip("/").split("/", 1)[0]
    return root, _org(org)


def _org(org: str) -> str:
    if not isinstance(org, str) or not _ORG_RE.fullmatch(org):
        raise ValueError(f"{org!r} is not a GitHub organisation name (letters, digits, '-', '_', '.')")
    return org


def _iso_epoch(value: Any) -> float | None:
    text = _str(value)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class AppAuth:
    """A GitHub App's credentials: signs JWTs and caches one installation token (never logged)."""

    def __init__(self, app_id: str, private_key_pem: str) -> None:
        if "PRIVATE KEY-----" not in private_key_pem:
            raise ValueError("a GitHub App connector's secret must be the App's private key (PEM, "
                             "-----BEGIN … PRIVATE KEY-----); for a token, leave client_id unset")
        self.app_id = app_id.strip()
        self._key = private_key_pem
        self.installation_id: int | None = None
        self.token: str | None = None
        self.expires_at = 0.0  # epoch seconds

    def jwt(self, now: float) -> str:
        """The App's JWT (RS256): `iat` 60 s in the past, `exp` 9 minutes ahead, `iss` the App id."""
        try:
            import jwt as pyjwt  # PyJWT[crypto]; only App auth needs it
        except ImportError as exc:
            raise ImportError("GitHub App auth needs PyJWT with cryptography: pip install 'PyJWT[crypto]'") from exc
        issued = int(now) - JWT_BACKDATE_S
        claims = {"iat": issued, "exp": int(now) + JWT_LIFETIME_S, "iss": self.app_id}
        return str(pyjwt.encode(claims, self._key, algorithm="RS256"))

    def fresh(self, now: float) -> bool:
        return self.token is not None and now < self.expires_at - TOKEN_REFRESH_MARGIN_S


class GitHubClient(ConnectorClient):
    """A `ConnectorClient` that authenticates the GitHub way (PAT, or App → installation token) and reads
    GitHub's 403 rate-limit answers as waits, not as missing permissions."""

    def __init__(self, name: str, base_url: str, *, org: str | None, pat: str | None = None,
                 app: AppAuth | None = None, **options: Any) -> None:
        super().__init__(name, base_url, auth_header=self._header, **options)
        self.org = org
        self.app = app
        self._pat = pat

    async def __aenter__(self) -> GitHubClient:
        return self

    def _header(self) -> dict[str, str]:
        token = self.app.token if self.app is not None else self._pat
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def request(self, method: str, path: str | httpx.URL, *, accept_status: Collection[int] = (),
                      auth: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """`ConnectorClient.request`, after fetching an installation token when App auth needs one, and
        waiting out GitHub's rate-limit 403s (primary: `x-ratelimit-remaining: 0`; secondary: `retry-after`)."""
        if self.app is not None and auth is None:
            await self._installation_token()
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            r = await super().request(method, path, accept_status={*accept_status, 403}, auth=auth, **kwargs)
            if r.status_code != 403 or 403 in accept_status:
                return r
            wait = self._rate_limit_wait(r)
            request_id = r.request.headers.get(REQUEST_ID_HEADER, "")
            if wait is None:
                raise self._status_error(r, request_id, 0, None)
            if attempt == RATE_LIMIT_RETRIES or wait > self.max_wait_s:
                raise RateLimitedError(
                    f"403 from {self.name}: GitHub's rate limit is used up for {r.request.method} "
                    f"{self._show_path(r.request.url)}; try again after {wait:.0f} s",
                    connector=self.name, status=403, method=r.request.method,
                    path=self._show_path(r.request.url), request_id=request_id, retry_at=self._clock() + wait)
            if wait > 0:
                await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _rate_limit_wait(self, r: httpx.Response) -> float | None:
        """Seconds to wait when a 403 is GitHub's rate limit, None when it is a real refusal. When nothing
        remains the client already waits for `x-ratelimit-reset` before the next attempt (0 here)."""
        if r.headers.get("retry-after"):
            try:
                return max(0.0, float(r.headers["retry-after"]))
            except ValueError:
                return SECONDARY_LIMIT_WAIT_S
        if r.headers.get("x-ratelimit-remaining", "").strip() == "0":
            reset = _iso_number(r.headers.get("x-ratelimit-reset"))
            return 0.0 if reset is not None else SECONDARY_LIMIT_WAIT_S
        message = str((_json_body(r) or {}).get("message", "")).lower()
        if "rate limit" in message:
            return SECONDARY_LIMIT_WAIT_S
        return None

    async def app_request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request authenticated as the App itself (its JWT), for `/app…` and `/orgs/{org}/installation`."""
        if self.app is None:
            raise ConfigurationError(f"{method} {path} needs GitHub App auth: set client_id to the App id and "
                                     f"the secret to its private key (connector {self.name})", connector=self.name)
        return await super().request(method, path, auth={"Authorization": f"Bearer {self.app.jwt(self._clock())}"},
                                     **kwargs)

    async def _installation_token(self) -> None:
        app = self.app
        assert app is not None
        if app.fresh(self._clock()):
            return
        if app.installation_id is None:
            if not self.org:
                raise ConfigurationError(f"connector {self.name}: App auth needs the organisation in the URL "
                                         "(https://api.github.com/orgs/<org>)", connector=self.name)
            found = self._json(await self.app_request("GET", f"orgs/{self.org}/installation"))
            if not isinstance(found, dict) or not isinstance(found.get("id"), int):
                raise UnexpectedResponseError(f"GET orgs/{self.org}/installation from {self.name} gave no "
                                              "installation id", connector=self.name, method="GET")
            app.installation_id = int(found["id"])
        r = await self.app_request("POST", f"app/installations/{app.installation_id}/access_tokens",
                                   idempotent=True)
        body = self._json(r)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise UnexpectedResponseError(f"{r.status_code} from {self.name}: the installation token answer has "
                                          "no token", connector=self.name, status=r.status_code, method="POST")
        app.token = token
        self._remember_secrets([token])
        expires = _iso_epoch(body.get("expires_at")) if isinstance(body, dict) else None
        app.expires_at = expires if expires is not None else self._clock() + 3600


def _iso_number(value: str | None) -> float | None:
    try:
        return float(value.strip()) if value is not None else None
    except ValueError:
        return None


def _json_body(r: httpx.Response) -> dict[str, Any] | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def client_for(settings: ConnectorSettings, secret: str, **kwargs: Any) -> GitHubClient:
    """A `GitHubClient` for a `github` connector: PAT auth, or App auth when `client_id` is set (see above).

    `kwargs` are `ConnectorClient` options that override those taken from the settings."""
    root, org = split_url(settings.url)
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
        "headers": GITHUB_HEADERS,
    }
    options.update(kwargs)
    if settings.client_id:
        return GitHubClient(settings.name, root, org=org, app=AppAuth(settings.client_id, secret), **options)
    return GitHubClient(settings.name, root, org=org, pat=secret.strip(), **options)


def _need_org(client: GitHubClient, org: str | None) -> str:
    found = org or client.org
    if not found:
        raise ConfigurationError(f"connector {client.name}: name the organisation in the URL "
                                 "(https://api.github.com/orgs/<org>) or pass org", connector=client.name)
    return _org(found)


# ---------------------------------------------------------------------------------------------- who am I


async def me(client: GitHubClient) -> dict[str, Any]:
    """Who the connector's credential is: `GET /user` (token) or `GET /app` (App JWT). Never the secret."""
    if client.app is not None:
        body = client._json(await client.app_request("GET", "app"))
        owner = body.get("owner") if isinstance(body, dict) else None
        facts: dict[str, Any] = {
            "auth": "app", "app_id": body.get("id"), "slug": body.get("slug"), "name": body.get("name"),
            "owner": owner.get("login") if isinstance(owner, dict) else None,
            "permissions": body.get("permissions"),
        }
        if client.org:
            await client._installation_token()
            facts["org"] = client.org
            facts["installation_id"] = client.app.installation_id
        return facts
    r = await client.request("GET", "user")
    body = client._json(r)
    scopes = r.headers.get("x-oauth-scopes")
    return {"auth": "token", "login": body.get("login"), "id": body.get("id"), "type": body.get("type"),
            "scopes": [s.strip() for s in scopes.split(",") if s.strip()] if scopes is not None else None}


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: who the connector's token or App is (never the secret)."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret) as client:
            return await me(client)

    return asyncio.run(ask())


# ---------------------------------------------------------------------------------------------- leaked tokens


async def revoke_credentials(client: ConnectorClient, raw_tokens: Sequence[str], *,
                             snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """`POST /credentials/revoke` for leaked tokens (`ghp_`, `github_pat_`, `gho_`, `ghu_`, `ghr_`).

    Sent **without** authentication (GitHub answers 403 to an authenticated call; 60 requests an hour), in
    batches of at most 1,000. GitHub notifies the owners; a revoked token cannot be restored. The snapshot
    (`github.credentials`, target = the first token's `sha256:` key) lists each token's fingerprint and
    masked preview, never a raw value. Returns `{"snapshot", "status_code", "submitted"}`; the 202 proves
    nothing, so follow it with `probe_token` for each token.
    """
    tokens = list(dict.fromkeys(t.strip() for t in raw_tokens if t and t.strip()))
    if not tokens:
        raise ValueError("no credentials to revoke")
    prints = [fingerprint(t) for t in tokens]
    before = {"credentials": [{"key": f.keys[0], "preview": f.preview, "kind": f.kind} for f in prints]}
    take(snapshot, "github.credentials", prints[0].keys[0], before)
    status = 0
    for start in range(0, len(tokens), REVOKE_BATCH):
        batch = tokens[start:start + REVOKE_BATCH]
        # auth={}: no Authorization header at all. Revoking an already revoked token is a no-op, so a retry
        # after a 5xx or a timeout is safe.
        r = await client.request("POST", "credentials/revoke", json={"credentials": batch}, auth={},
                                 secrets=batch, idempotent=True)
        status = r.status_code
    return {"snapshot": before, "status_code": status, "submitted": len(tokens)}


async def probe_token(client: ConnectorClient, raw_token: str) -> Verdict:
    """Is this token dead? `GET /user` sent *as the token*: 401 proves it, 200 shows it still works."""
    try:
        r = await client.request("GET", "user", auth={"Authorization": f"Bearer {raw_token.strip()}"},
                                 accept_status=(401, 403, 404))
    except ConnectorError as e:
        return Verdict(UNVERIFIED, f"GET /user with the token failed, nothing proven: {e}", http_status=e.status)
    status = r.status_code
    message = str((_json_body(r) or {}).get("message") or "no message")[:120]
    if status == 401:
        return Verdict(VERIFIED, f"GET /user with the token refused: 401 ({message})", http_status=status)
    if status == 200:
        body = _json_body(r) or {}
        return Verdict(LIVE, f"GET /user with the token answered 200: {body.get('login') or '?'} "
                       f"(id {body.get('id')}, scopes {r.headers.get('x-oauth-scopes', '?')})", http_status=status)
    return Verdict(UNVERIFIED, f"GET /user with the token answered {status} ({message}); nothing proven",
                   http_status=status)


# ---------------------------------------------------------------------------------------------- org fine-grained PATs


async def list_fine_grained_pats(client: GitHubClient, org: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """`GET /orgs/{org}/personal-access-tokens`: the fine-grained PATs approved to reach the org (App auth).

    Each grant's `id` is the `pat_id` the revoke takes; `token_id` is the id audit events carry."""
    o = _need_org(client, org)
    async for grant in client.paginate_link(f"orgs/{o}/personal-access-tokens", params={"per_page": PER_PAGE}):
        if isinstance(grant, dict):
            yield grant


async def list_pat_repositories(client: GitHubClient, pat_id: int, org: str | None = None
                                ) -> AsyncIterator[dict[str, Any]]:
    """`GET /orgs/{org}/personal-access-tokens/{pat_id}/repositories`: the org repositories the PAT reaches."""
    o = _need_org(client, org)
    async for repo in client.paginate_link(f"orgs/{o}/personal-access-tokens/{_pat_id(pat_id)}/repositories",
                                           params={"per_page": PER_PAGE}):
        if isinstance(repo, dict):
            yield repo


def _pat_id(pat_id: Any) -> int:
    if isinstance(pat_id, bool) or not isinstance(pat_id, int | str) or not str(pat_id).isdigit():
        raise ValueError(f"pat_id {pat_id!r} is not a fine-grained PAT grant id (a whole number)")
    return int(pat_id)


async def _grants(client: GitHubClient, org: str) -> dict[int, dict[str, Any]]:
    return {int(g["id"]): g async for g in list_fine_grained_pats(client, org) if isinstance(g.get("id"), int)}


async def _pat_snapshot(client: GitHubClient, org: str, grant: dict[str, Any]) -> dict[str, Any]:
    repos: list[str] | None = None
    if grant.get("repository_selection") == "subset":
        repos = [str(r.get("full_name")) async for r in list_pat_repositories(client, int(grant["id"]), org)]
    return {"org": org, "grant": grant, "repositories": repos}


def _pat_verdict(org: str, ids: Sequence[int], still: Collection[int]) -> Verdict:
    left = [i for i in ids if i in still]
    if not left:
        return Verdict(VERIFIED, f"org access only: {org}'s fine-grained PAT list no longer shows grant(s) "
                       f"{', '.join(map(str, ids))}; the token itself still exists (public resources, other orgs)")
    return Verdict(UNVERIFIED, f"org access revoke requested, but {org}'s list still shows grant(s) "
                   f"{', '.join(map(str, left))} (GitHub may apply it shortly: probe again); the token itself "
                   "is not revoked by this act")


async def revoke_fine_grained_pat(client: GitHubClient, pat_id: int, *, org: str | None = None,
                                  snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """Remove one fine-grained PAT's access to the org: `POST /orgs/{org}/personal-access-tokens/{pat_id}`
    `{"action": "revoke"}` (204; App auth). **Org access only**: the token lives on.

    The grant (and its repositories when it has a subset) goes to `snapshot("github.fine_grained_pat",
    "<org>/<pat_id>", ...)` first; a pat_id the org does not list raises `NotFoundError`. Returns
    `{"snapshot", "status_code", "verdict"}`, the verdict from listing the grants again.
    """
    o, pid = _need_org(client, org), _pat_id(pat_id)
    grants = await _grants(client, o)
    if pid not in grants:
        raise NotFoundError(f"{client.name}: {o} lists no fine-grained PAT grant {pid} (already revoked, or a "
                            "token_id rather than the grant id?)", connector=client.name, status=404)
    before = await _pat_snapshot(client, o, grants[pid])
    take(snapshot, "github.fine_grained_pat", f"{o}/{pid}", before)
    r = await client.request("POST", f"orgs/{o}/personal-access-tokens/{pid}", json={"action": "revoke"})
    after = await _grants(client, o)
    return {"snapshot": before, "status_code": r.status_code, "verdict": _pat_verdict(o, [pid], after).as_dict()}


async def revoke_fine_grained_pats(client: GitHubClient, pat_ids: Sequence[int], *, org: str | None = None,
                                   snapshot: SnapshotFn | None = None) -> dict[str, Any]:
    """The bulk form: `POST /orgs/{org}/personal-access-tokens` `{"action": "revoke", "pat_ids": [...]}` (202;
    at most 100 ids a request). Each grant is snapshotted first; ids the org does not list raise."""
    o = _need_org(client, org)
    ids = list(dict.fromkeys(_pat_id(p) for p in pat_ids))
    if not ids:
        raise ValueError("no pat_ids to revoke")
    grants = await _grants(client, o)
    missing = [i for i in ids if i not in grants]
    if missing:
        raise NotFoundError(f"{client.name}: {o} lists no fine-grained PAT grant {', '.join(map(str, missing))}",
                            connector=client.name, status=404)
    before = {str(i): await _pat_snapshot(client, o, grants[i]) for i in ids}
    for i in ids:
        take(snapshot, "github.fine_grained_pat", f"{o}/{i}", before[str(i)])
    status = 0
    for start in range(0, len(ids), PAT_BATCH):
        r = await client.request("POST", f"orgs/{o}/personal-access-tokens",
                                 json={"action": "revoke", "pat_ids": ids[start:start + PAT_BATCH]})
        status = r.status_code
    after = await _grants(client, o)
    return {"snapshot": before, "status_code": status, "verdict": _pat_verdict(o, ids, after).as_dict()}


async def probe_fine_grained_pat(client: GitHubClient, pat_id: int, org: str | None = None) -> Verdict:
    """Does this PAT still reach the org? Gone from the list = `revoked-verified` (org access only); listed and
    not expired = `still-live`; a failed listing proves nothing."""
    o, pid = _need_org(client, org), _pat_id(pat_id)
    try:
        grants = await _grants(client, o)
    except ConnectorError as e:
        return Verdict(UNVERIFIED, f"listing {o}'s fine-grained PATs failed, nothing proven: {e}",
                       http_status=e.status)
    grant = grants.get(pid)
    if grant is None:
        return _pat_verdict(o, [pid], ())
    expires = _str(grant.get("token_expires_at"))
    if grant.get("token_expired") is True:
        return Verdict(UNVERIFIED, f"{o} still lists grant {pid}, but its token has expired ({expires})",
                       expires_at=_time(expires) if expires else None)
    return Verdict(LIVE, f"{o} still lists grant {pid} ({grant.get('token_name') or '?'}, owner "
                   f"{(grant.get('owner') or {}).get('login', '?')}, last used {grant.get('token_last_used_at')})",
                   expires_at=_time(expires) if expires else None)


# ---------------------------------------------------------------------------------------------- pull


def _day(iso: str, shift: int) -> str:
    """The UTC date of `iso`, moved by `shift` days (a margin: GitHub does not say which zone `created:` uses)."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when.astimezone(UTC) + timedelta(days=shift)).date().isoformat()


def audit_query(since: str | None, until: str | None) -> dict[str, Any]:
    """The `GET /orgs/{org}/audit-log` query: `phrase` `created:` by **day**, a day wider on each side (GitHub's
    audit search is documented by date; stanch keeps the exact instants itself), all event kinds, oldest first."""
    if since and until:
        phrase = f"created:{_day(since, -1)}..{_day(until, 1)}"
    elif since:
        phrase = f"created:>={_day(since, -1)}"
    elif until:
        phrase = f"created:<={_day(until, 1)}"
    else:
        phrase = ""
    query: dict[str, Any] = {"include": "all", "order": "asc", "per_page": PER_PAGE}
    if phrase:
        query = {"phrase": phrase, **query}
    return query


def _event_ms(rec: dict[str, Any]) -> int | None:
    for key in ("@timestamp", "created_at"):
        value = rec.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise ValueError(f"{iso!r} is not an ISO 8601 time") from None


def _cursor_ms(cursor: str | None) -> int | None:
    """A cursor is `<last event's @timestamp in ms>:<its _document_id>`."""
    if not cursor:
        return None
    head = cursor.split(":", 1)[0]
    return int(head) if head.isdigit() else None


async def pull_audit_log(client: GitHubClient, *, since: str | None, until: str | None, cursor: str | None = None,
                         org: str | None = None) -> AsyncIterator[Page]:
    """The org audit log, one `Page` per GitHub page (`Link: rel="next"` carries GitHub's `after` cursor and
    is followed verbatim within a pull). Resume across pulls is by time: the cursor
    `<@timestamp ms>:<_document_id>` of the last stored event; the next pull asks from that day and keeps
    events at or after that millisecond (the event at the cursor itself dedupes by `_document_id`)."""
    o = _need_org(client, org)
    low = _cursor_ms(cursor)
    start_iso = since
    if low is not None:
        start_iso = datetime.fromtimestamp(low / 1000, UTC).isoformat().replace("+00:00", "Z")
    else:
        low = _ms(since)
    high = _ms(until)
    url: str | httpx.URL = f"orgs/{o}/audit-log"
    params: dict[str, Any] | None = audit_query(start_iso, until)
    seen: set[str] = set()
    while True:
        r = await client.request("GET", url, params=params)
        shown = r.request.url
        endpoint = f"GET {shown.path}" + (f"?{shown.query.decode()}" if shown.query else "")
        records, past_until = [], False
        for rec in client._items(r, None):
            if not isinstance(rec, dict):
                continue
            ms = _event_ms(rec)
            if ms is not None and low is not None and ms < low:
                continue
            if ms is not None and high is not None and ms > high:
                past_until = True
                continue
            records.append(rec)
        if records:
            last = records[-1]
            ms = _event_ms(last)
            page_cursor = f"{ms}:{_str(last.get('_document_id')) or ''}" if ms is not None else cursor
            cursor = page_cursor
            yield Page.json_lines(STREAM, FORMAT, records, page_cursor, endpoint)
        nxt = r.links.get("next", {}).get("url")
        if not nxt or past_until:
            return
        url, params = client._next_url(r, nxt, seen), None


async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
               cursors: Mapping[str, str], on_journal: Callable[[JournalEntry], None] | None = None,
               **client_options: Any) -> AsyncIterator[Page]:
    """The organisation audit log (`GET /orgs/{org}/audit-log`, GitHub Enterprise Cloud; org from the URL).

    Stream `audit-log`, format `github-audit` (one audit event JSON object per line, as the streaming export
    writes it), so a pulled event and the same event in an export get the same id (`github:<_document_id>`).
    Query: `phrase=created:…` (by day), `include=all`, `order=asc`, `per_page=100`. Resumes from the stored
    cursor (`<@timestamp ms>:<_document_id>`), else from `since`; `until` bounds the pull.
    """
    async with client_for(settings, secret, on_journal=on_journal, **client_options) as client:
        async for page in pull_audit_log(client, since=since, until=until, cursor=cursors.get(STREAM)):
            yield page


# ------------------------------------------------------------------------------------------- revocation set

from casefile.blast import RevokeHow, register_revoker  # noqa: E402

_GITHUB_PREFIXES = ("ghp_", "github_pat_", "gho_", "ghu_", "ghr_")


@register_revoker
def revoker(credential: dict[str, Any]) -> RevokeHow | None:
    """GitHub tokens (by their preview's prefix): GitHub's public credential-revocation API, which takes the
    raw token."""
    preview = credential.get("preview") or ""
    if preview.startswith(_GITHUB_PREFIXES):
        key = next((k for k in credential.get("keys") or [] if k.startswith("sha256:")), preview)
        return RevokeHow("github", "revoke-credentials", key, needs_raw_secret=True,
                         note="GitHub revokes asynchronously; the probe is repeated until it answers 401")
    return None


# ------------------------------------------------------------------------------------------- Sigma

from casefile.sigma import register_sigma_source  # noqa: E402

# SigmaHQ `product: github, service: audit` rules use the audit-log JSON keys: undeclared fields read `raw`.
# Sigma's `action` is GitHub's action, never stanch's canonical `action` column.
register_sigma_source("github", "audit", VENDOR, {"action": "vendor_type", "actor": "principal"})


# ------------------------------------------------------------------------------------------- playbook verbs
#
# | verb                      | target                               | raw | act                      | probe              |
# |---------------------------|--------------------------------------|-----|--------------------------|--------------------|
# | `revoke-credentials`      | the token's `sha256:` key (or preview) | yes | `revoke_credentials`   | `probe_token`      |
# | `revoke-fine-grained-pat` | `<org>/<pat_id>` or `<pat_id>`        | no  | `revoke_fine_grained_pat` | `probe_fine_grained_pat` |
#
# `revoke-credentials` sends the raw token to GitHub's public revocation API (unauthenticated); the raw value must
# match the target (its fingerprint, or its preview when the case had no key). GitHub revokes asynchronously, so
# the probe (`GET /user` as the token) may say `still-live` for a while: probe again. `revoke-fine-grained-pat`
# ends one PAT's access to the org only (App auth); the token itself lives on.

from connectors import verbs as _verbs  # noqa: E402


def _raw_token(verb: str, target: str, raw: str | None) -> str:
    token = _verbs.check_raw(VENDOR, verb, target, raw).strip()
    if not target.startswith(("sha256:", "sha256/16:")) and fingerprint(token).preview != target:
        raise ValueError(f"github {verb} {target}: the raw token given is not the one the target names")
    return token


def _pat_target(target: str) -> tuple[str | None, int]:
    org, _, pid = target.strip().rpartition("/")
    return (org or None), _pat_id(pid)


async def _act_revoke_credentials(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                                  snapshot: SnapshotFn) -> dict[str, Any]:
    token = _raw_token("revoke-credentials", target, raw)
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_credentials(client, [token], snapshot=snapshot))


async def _probe_credentials(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    token = _raw_token("probe", target, raw)
    async with client_for(settings, secret) as client:
        return await probe_token(client, token)


async def _act_revoke_pat(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                          snapshot: SnapshotFn) -> dict[str, Any]:
    org, pid = _pat_target(target)
    async with client_for(settings, secret) as client:
        return _verbs.answer(await revoke_fine_grained_pat(client, pid, org=org, snapshot=snapshot))


async def _probe_pat(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    org, pid = _pat_target(target)
    async with client_for(settings, secret) as client:
        return await probe_fine_grained_pat(client, pid, org)


_verbs.register(VENDOR, "revoke-credentials", act=_act_revoke_credentials, probe=_verbs.guarded(_probe_credentials),
                needs_raw=True, description="GitHub's public credential-revocation API (needs the raw token); "
                                            "proven when GET /user as the token answers 401")
_verbs.register(VENDOR, "revoke-fine-grained-pat", act=_act_revoke_pat, probe=_verbs.guarded(_probe_pat),
                description="end a fine-grained PAT's access to the org (org access only; the token lives on)")
