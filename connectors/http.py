"""The one HTTP client every live connector uses: `ConnectorClient`.

Why one client: a responder pulls from half a dozen vendors during the worst hour of an incident, over
networks with private CAs and proxies, against APIs that throttle hard. Every connector must behave the
same way there, so the behaviour lives here once and no vendor module re-implements it:

- **It is recognisable.** Every request carries `USER_AGENT` and a fresh `REQUEST_ID_HEADER` (uuid4). When
  the vendor's logs are ingested later, these mark stanch's own calls so that they never raise findings.
- **It does not leak the credential.** The auth header is asked for per request (so a refreshed token is
  used) and is never stored; `client.journal` keeps a one-line summary of each attempt (method, URL with
  secret query values redacted through `casefile.redact`, status, elapsed time, request id). Error messages
  carry the connector name, the method and the redacted path, never a header or a query value.
- **It waits instead of hammering.** `Retry-After` (seconds or HTTP date) on 429/503, Okta/GitHub-style
  `X-Rate-Limit-Remaining`/`X-Rate-Limit-Reset` (wait until the reset epoch when nothing remains), a
  per-client concurrency limit, an optional requests-per-second limit, and bounded retries with full jitter
  on 429, 5xx, connect errors and timeouts. Only idempotent methods are retried (GET, HEAD, OPTIONS, LIST,
  PUT, DELETE; POST when the caller says `idempotent=True`), because a revoke sent twice must be a choice.
  Other 4xx answers are never retried: they will not change.
- **Its errors say what to do.** Every failure is a `ConnectorError` whose `str()` is one line naming the
  connector and the fix (`401 from okta-prod: the API token is invalid or expired; run ...`).
- **It pages the ways vendors page.** `Link: <…>; rel="next"` (Okta, GitHub), `@odata.nextLink` (Graph), a
  body cursor sent back as a query parameter (Kong `offset`, Slack-style `after`), Vault's `LIST` verb
  (`data.keys`, one page) and Salesforce `nextRecordsUrl`. Next links are followed verbatim but only on the
  base URL's origin, so a hostile next link cannot collect the credential. Offset listings (Keycloak
  `first`/`max`) end at the first short page.

Retries, rate limits and pagers take their time from an injectable `sleep` and `clock`, so tests run fast
and deterministic. No vendor logic lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import httpx

from casefile.redact import redact
from casefile.secrets import is_secret_field, redaction_marker


def _stanch_version() -> str:
    try:
        return metadata.version("stanch")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


STANCH_VERSION = _stanch_version()
#: The fixed user agent of every request stanch sends; ingest matches it to keep stanch's calls out of findings.
USER_AGENT = f"stanch/{STANCH_VERSION} (+incident-response)"
#: The header carrying a fresh uuid4 on every request (and every retry), also matched at ingest.
#: How many recently sent credential values a client keeps for scrubbing error texts.
_KEEP_SECRETS = 256
REQUEST_ID_HEADER = "X-Stanch-Request-Id"
#: Methods retried without the caller's say-so: sending them twice has the effect of sending them once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "LIST", "PUT", "DELETE"})
# Query parameters that carry secrets but whose names `casefile.secrets.is_secret_field` does not cover
# (signed-URL signatures, API keys passed as `key=`).
_EXTRA_SECRET_PARAMS = frozenset({"sig", "signature", "x-amz-signature", "x-amz-credential", "key", "client_secret"})
_NOT_RETRIED_5XX = frozenset({501, 505})  # "not implemented" will not start working on the next attempt
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


# ------------------------------------------------------------------------------------------------ errors


_CONTEXTS: dict[tuple[Any, ...], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


class ConnectorError(Exception):
    """A failure a responder can act on. `str()` is one line: what happened, from which connector, the fix.

    Attributes: `connector` (the client's name), `status` (HTTP status or None), `method`, `path`
    (redacted), `request_id` (the last attempt's `X-Stanch-Request-Id`) and `retry_at` (epoch seconds when
    the server said to come back, or None).
    """

    def __init__(
        self,
        message: str,
        *,
        connector: str,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        super().__init__(_one_line(message))
        self.connector = connector
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.retry_at = retry_at


class ConfigurationError(ConnectorError):
    """The client could not be built: an unreadable CA bundle or client certificate, a bad setting."""


class InvalidCredentialError(ConnectorError):
    """401: the credential is wrong, expired or revoked."""


class PermissionDeniedError(ConnectorError):
    """403: the credential is valid but lacks the permission (scope, role, policy) for this call."""


class NotFoundError(ConnectorError):
    """404: the path or object does not exist (for Vault, it may also mean no permission)."""


class RequestRejectedError(ConnectorError):
    """Another 4xx: the server refused the request as sent; retrying will not help."""


class RateLimitedError(ConnectorError):
    """429 after the retries, or a server-given wait longer than the client will sleep."""


class ServerError(ConnectorError):
    """5xx after the retries."""


class ConnectorTimeoutError(ConnectorError):
    """The server did not connect or answer within the timeout, after the retries."""


class TLSVerificationError(ConnectorError):
    """The server's certificate did not verify (private CA, self-signed, wrong host)."""


class TLSHandshakeError(ConnectorError):
    """The TLS handshake failed for another reason, such as a client certificate the server requires."""


class ConnectionFailedError(ConnectorError):
    """No connection: refused, reset, DNS failure, proxy failure."""


class UnexpectedResponseError(ConnectorError):
    """The answer is not what the API promises: not JSON, a redirect, a pagination loop, an off-host link."""


# ----------------------------------------------------------------------------------------------- journal


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One attempt as the journal keeps it. Holds no header and no secret query value."""

    at: str  # UTC ISO 8601 time the attempt was sent
    request_id: str
    method: str
    url: str  # redacted
    status: int | None  # None when no answer came (timeout, connection or TLS failure)
    elapsed_s: float
    attempt: int  # 1 for the first try, 2 for the first retry...
    error: str | None = None  # the transport failure's class name (`ReadTimeout`), or None


# ------------------------------------------------------------------------------------------------ client


class ConnectorClient:
    """An `httpx.AsyncClient` with stanch's identity, retries, rate limits, redacted journal and pagers.

    Use as `async with ConnectorClient("okta-prod", "https://acme.okta.com", auth_header=...) as client:`.

    - `auth_header`: called before every attempt; returns the header(s) carrying the credential
      (`{"Authorization": "SSWS …"}`). Its values are never journaled and are scrubbed from error texts.
    - `timeout`: `(connect, read)` seconds. `verify`: True (system/certifi CAs), False, or a CA bundle path.
      `cert`: `(certificate_file, key_file)` for mutual TLS.
    - `concurrency`: most requests in flight at once. `max_retries`: retries after the first attempt.
      `rate_limit_per_s`: spacing between request starts, or None.
    - `max_wait_s`: longest server-requested wait the client sleeps through; a longer one raises
      `RateLimitedError` at once, saying when to come back. `backoff_base_s`/`backoff_cap_s`: full-jitter
      backoff `uniform(0, min(cap, base * 2**retry))` when the server gives no wait.
    - `sleep`, `clock` (epoch seconds), `transport`: injection points for tests. `on_journal`: called with
      each new `JournalEntry` (for an audit pane).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        auth_header: Callable[[], dict[str, str]] | None = None,
        timeout: tuple[float, float] = (10.0, 30.0),
        verify: bool | str = True,
        cert: tuple[str, str] | None = None,
        concurrency: int = 4,
        max_retries: int = 3,
        rate_limit_per_s: float | None = None,
        max_wait_s: float = 120.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        on_journal: Callable[[JournalEntry], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency for {name} must be at least 1; got {concurrency}", connector=name)
        if max_retries < 0:
            raise ConfigurationError(f"max_retries for {name} must be 0 or more; got {max_retries}", connector=name)
        if rate_limit_per_s is not None and rate_limit_per_s <= 0:
            raise ConfigurationError(
                f"rate_limit_per_s for {name} must be above 0; got {rate_limit_per_s}", connector=name
            )
        self.name = name
        self.base_url = httpx.URL(base_url)
        self.journal: list[JournalEntry] = []
        self.connect_timeout, self.read_timeout = float(timeout[0]), float(timeout[1])
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self._auth_header = auth_header
        self._backoff_base = backoff_base_s
        self._backoff_cap = backoff_cap_s
        self._sleep = sleep
        self._clock = clock
        self._on_journal = on_journal
        self._semaphore = asyncio.Semaphore(concurrency)
        self._interval = 1.0 / rate_limit_per_s if rate_limit_per_s else None
        # The limit is the connector's, not this client's: a playbook opens a client per item, and every client of
        # one connector (same name, limit and clock) in this process takes its request slots from one schedule.
        self._pace = _pace_for(name, self._interval, clock)
        self._resume_at = 0.0  # epoch seconds: a vendor said "nothing remains until then"
        self._known_secrets: dict[str, None] = {}  # an ordered set: oldest first
        self._rng = random.Random()  # noqa: S311  (backoff jitter, not cryptography)
        default_headers = {**(headers or {}), "User-Agent": USER_AGENT}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=default_headers,
            timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout, pool=None),
            verify=self._ssl_context(verify, cert),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
            transport=transport,
        )

    # ------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ConnectorClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def _ssl_context(self, verify: bool | str, cert: tuple[str, str] | None) -> ssl.SSLContext:
        # Built here rather than passing paths to httpx: httpx 0.28 deprecates `verify=<str>` and `cert=`.
        # Loading the CA bundle costs ~20 ms of CPU; a playbook opens a client per item, so contexts are shared
        # per (verify, cert), keyed also by each file's size and mtime so a replaced CA or certificate reloads.
        key = (verify, cert, *(_stat(f) for f in ([verify] if isinstance(verify, str) else []) + list(cert or ())))
        with _CONTEXTS_LOCK:
            ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = self._new_ssl_context(verify, cert)
            with _CONTEXTS_LOCK:
                _CONTEXTS[key] = ctx
        return ctx

    def _new_ssl_context(self, verify: bool | str, cert: tuple[str, str] | None) -> ssl.SSLContext:
        try:
            if verify is False:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif verify is True:
                ctx = httpx.create_ssl_context(verify=True)
            else:
                ctx = ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot load the CA bundle {verify} for {self.name} ({_reason(exc)}): "
                "pass --ca-bundle with a readable PEM file",
                connector=self.name,
            ) from None
        if cert is not None:
            try:
                ctx.load_cert_chain(cert[0], cert[1])
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(
                    f"cannot load the client certificate {cert[0]} / key {cert[1]} for {self.name} "
                    f"({_reason(exc)}): pass --client-cert and --client-key with a matching PEM pair",
                    connector=self.name,
                ) from None
        return ctx

    # ------------------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        path: str | httpx.URL,
        *,
        idempotent: bool | None = None,
        accept_status: Collection[int] = (),
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Mapping[str, str] | None = None,
        secrets: Collection[str] = (),
        _stream: bool = False,
    ) -> httpx.Response:
        """Send one request with retries; return the response, or raise a `ConnectorError`.

        `path` is relative to the base URL, or an absolute URL on the base URL's origin (next-page links).
        A status of 400 or more raises unless it is in `accept_status` (a probe passes `{401, 404}` to read
        a refusal as evidence). `idempotent` overrides the method's default retry rule; POST is retried only
        with `idempotent=True`. `auth` replaces the connector's own auth header for this call (a probe sent
        *as* a leaked token); its values, and any `secrets` given, are scrubbed from the journal and errors.
        """
        auth_override = auth
        method = method.upper()
        url = self._on_origin(path, method)
        retryable = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS
        extra = dict(headers or {})
        attempt = 0
        while True:
            attempt += 1
            await self._wait_for_reset(method, url)
            await self._throttle()
            request_id = str(uuid.uuid4())
            auth = dict(auth_override) if auth_override is not None else (
                self._auth_header() if self._auth_header else {})
            self._remember_secrets(auth.values())
            if attempt == 1:
                self._remember_secrets(secrets)
                self._remember_secrets(_secret_values(params, json, data))
            request = self._client.build_request(
                method, url, params=params, json=json, data=data, content=content,
                headers={**extra, **auth, "User-Agent": USER_AGENT, REQUEST_ID_HEADER: request_id},
            )
            sent_at, started = self._clock(), time.monotonic()
            try:
                async with self._semaphore:
                    response = await self._client.send(request, stream=_stream)
            except (httpx.TransportError, ssl.SSLError, OSError) as exc:
                # anyio's TLS stream lets a TLS alert (certificate required) escape as a bare ssl.SSLError.
                self._record(sent_at, request_id, request, None, time.monotonic() - started, attempt, exc)
                failure = self._transport_failure(exc, request, request_id)
                if failure is None and retryable and attempt <= self.max_retries:
                    await self._sleep(self._backoff(attempt))
                    continue
                raise failure or self._transport_final(exc, request, request_id, attempt) from exc
            self._record(sent_at, request_id, request, response.status_code, time.monotonic() - started, attempt)
            self._note_rate_headers(response)
            status = response.status_code
            if status < 400 or status in accept_status:
                return response
            if _stream:  # an error body is small: read it for the error text, then retry or raise
                await response.aread()
                await response.aclose()
            if status == 429 or (status >= 500 and status not in _NOT_RETRIED_5XX):
                wait = self._server_wait(response)
                if retryable and attempt <= self.max_retries:
                    if wait is not None and wait > self.max_wait_s:
                        raise self._status_error(response, request_id, attempt - 1, wait)
                    await self._sleep(wait if wait is not None else self._backoff(attempt))
                    continue
                raise self._status_error(response, request_id, attempt - 1, wait)
            raise self._status_error(response, request_id, attempt - 1, None)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, path: str | httpx.URL, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """`request`, but the body is not read: `async with client.stream("GET", path) as r:` then
        `async for chunk in r.aiter_bytes()`. Retries, rate limits, journal and errors are `request`'s (an error
        answer's body is read for its message). For downloads that must not sit whole in memory."""
        response = await self.request(method, path, _stream=True, **kwargs)
        try:
            yield response
        finally:
            await response.aclose()

    async def get_json(self, path: str | httpx.URL, *, params: Mapping[str, Any] | None = None,
                       accept_status: Collection[int] = ()) -> Any:
        """GET `path` and return the decoded JSON body (raises `UnexpectedResponseError` if it is not JSON)."""
        return self._json(await self.request("GET", path, params=params, accept_status=accept_status))

    # ------------------------------------------------------------------------------ pagers

    async def _follow(self, path: str, params: Mapping[str, Any] | None, items_path: str | Sequence[str] | None,
                      max_pages: int | None, next_of: Callable[[httpx.Response], str | None]) -> AsyncIterator[Any]:
        """The records of every page of a next-link API; `next_of` reads a page's next URL (None: last page).
        Next links are followed verbatim, on the base URL's origin only, and a link seen twice is an error."""
        url: str | httpx.URL = path
        seen: set[str] = set()
        pages = 0
        while True:
            response = await self.request("GET", url, params=params)
            for item in self._items(response, items_path):
                yield item
            pages += 1
            nxt = next_of(response)
            if not nxt or (max_pages is not None and pages >= max_pages):
                return
            url, params = self._next_url(response, nxt, seen), None

    def paginate_link(self, path: str, *, params: Mapping[str, Any] | None = None,
                      items_path: str | Sequence[str] | None = None,
                      max_pages: int | None = None) -> AsyncIterator[Any]:
        """Yield the records of every page, following the `Link: <…>; rel="next"` header verbatim (Okta,
        GitHub). Records are the page body itself (a JSON array) or the list at `items_path`."""
        return self._follow(path, params, items_path, max_pages,
                            lambda r: r.links.get("next", {}).get("url"))

    def paginate_odata(self, path: str, *, params: Mapping[str, Any] | None = None,
                       items_path: str | Sequence[str] = "value",
                       max_pages: int | None = None) -> AsyncIterator[Any]:
        """Yield the records (`value`) of every page, following `@odata.nextLink` verbatim (Microsoft Graph)."""
        def next_of(response: httpx.Response) -> str | None:
            body = self._json(response)
            nxt = body.get("@odata.nextLink") if isinstance(body, dict) else None
            return str(nxt) if nxt else None

        return self._follow(path, params, items_path, max_pages, next_of)

    async def paginate_cursor(self, path: str, *, cursor_path: str | Sequence[str], cursor_param: str = "after",
                              items_path: str | Sequence[str] | None = "data",
                              params: Mapping[str, Any] | None = None,
                              max_pages: int | None = None) -> AsyncIterator[Any]:
        """Yield the records of every page of a body-cursor API: the cursor found at `cursor_path`
        (`"meta.next_cursor"` or a key list) is sent back as the query parameter `cursor_param`; an absent,
        null or empty cursor ends the listing (Kong `offset`, Slack-style `after`)."""
        query = dict(params or {})
        seen: set[str] = set()
        pages = 0
        while True:
            response = await self.request("GET", path, params=query)
            for item in self._items(response, items_path):
                yield item
            pages += 1
            cursor = _lookup(self._json(response), cursor_path)
            if cursor in (None, "") or (max_pages is not None and pages >= max_pages):
                return
            if str(cursor) in seen:
                raise self._loop_error(response)
            seen.add(str(cursor))
            query[cursor_param] = cursor

    async def paginate_offset(self, path: str, *, page_size: int = 100, first_param: str = "first",
                              max_param: str = "max", items_path: str | Sequence[str] | None = None,
                              params: Mapping[str, Any] | None = None,
                              max_pages: int | None = None) -> AsyncIterator[Any]:
        """Yield the records of an offset-paged listing (Keycloak `first`/`max`): ask for `page_size` records
        from offset 0, then from each offset reached; a page shorter than `page_size` is the last."""
        if page_size < 1:
            raise ConfigurationError(f"page_size for {self.name} must be at least 1; got {page_size}",
                                     connector=self.name)
        query = dict(params or {})
        offset = pages = 0
        while True:
            query[first_param], query[max_param] = offset, page_size
            response = await self.request("GET", path, params=query)
            items = self._items(response, items_path)
            for item in items:
                yield item
            pages += 1
            if len(items) < page_size or (max_pages is not None and pages >= max_pages):
                return
            offset += len(items)

    def paginate_next_records(self, path: str, *, params: Mapping[str, Any] | None = None,
                              max_pages: int | None = None) -> AsyncIterator[Any]:
        """Yield the `records` of a Salesforce query, following `nextRecordsUrl` until `done` is true."""
        def next_of(response: httpx.Response) -> str | None:
            body = self._json(response)
            if not isinstance(body, dict) or body.get("done", True) is True or not body.get("nextRecordsUrl"):
                return None
            return str(body["nextRecordsUrl"])

        return self._follow(path, params, "records", max_pages, next_of)

    async def list_keys(self, path: str) -> AsyncIterator[str]:
        """Yield the keys of a Vault `LIST` (`data.keys`; Vault does not page). Keys ending in `/` are
        folders. An empty list, which Vault answers as 404 `{"errors": []}`, yields nothing."""
        response = await self.request("LIST", path, accept_status=(404,))
        if response.status_code == 404:
            body = _json_or_none(response)
            if isinstance(body, dict) and body.get("errors") == []:
                return
            raise self._status_error(response, response.request.headers.get(REQUEST_ID_HEADER, ""), 0, None)
        for key in self._items(response, "data.keys"):
            yield str(key)

    # ------------------------------------------------------------------------------ waiting

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1)))

    async def _throttle(self) -> None:
        if self._interval is None:
            return
        now = self._clock()
        slot = max(now, self._pace[0])  # no await between read and write: the event loop makes this atomic
        self._pace[0] = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)

    async def _wait_for_reset(self, method: str, url: httpx.URL) -> None:
        wait = self._resume_at - self._clock()
        if wait <= 0:
            return
        if wait > self.max_wait_s:
            raise RateLimitedError(
                f"429 from {self.name}: the rate limit is used up (X-Rate-Limit-Remaining 0), so {method} "
                f"{self._show_path(url)} was not sent; try again after {_when(self._resume_at)}",
                connector=self.name, status=429, method=method, path=self._show_path(url),
                retry_at=self._resume_at,
            )
        await self._sleep(wait)

    def _note_rate_headers(self, response: httpx.Response) -> None:
        remaining = _header_number(response, "x-rate-limit-remaining", "x-ratelimit-remaining")
        reset = _header_number(response, "x-rate-limit-reset", "x-ratelimit-reset")
        if remaining is not None and remaining <= 0 and reset is not None:
            self._resume_at = max(self._resume_at, reset)

    def _server_wait(self, response: httpx.Response) -> float | None:
        """Seconds the server asked us to wait: `Retry-After`, else the reset epoch on a 429; None if unsaid."""
        retry_after = response.headers.get("retry-after")
        if retry_after:
            value = retry_after.strip()
            try:
                return max(0.0, float(value))
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(value)
                except (TypeError, ValueError):
                    when = None
                if when is not None:
                    if when.tzinfo is None:
                        when = when.replace(tzinfo=UTC)
                    return max(0.0, when.timestamp() - self._clock())
        if response.status_code == 429:
            reset = _header_number(response, "x-rate-limit-reset", "x-ratelimit-reset")
            if reset is not None:
                return max(0.0, reset - self._clock())
        return None

    # ------------------------------------------------------------------------------ redaction and journal

    def _remember_secrets(self, values: Iterable[str]) -> None:
        """Note credential values this client sends, so an echo of them (an error body) is scrubbed.

        The newest `_KEEP_SECRETS` values are kept (a token that refreshes every call must not grow the set
        forever), but every value of the current call is kept, however many (a 1,000-token revocation batch)."""
        fresh: list[str] = []
        for value in values:
            if len(value) < 6:  # too short to scrub without mangling ordinary text
                continue
            fresh.append(value)
            _, _, bare = value.partition(" ")
            if len(bare) >= 8:
                fresh.append(bare)
        known = self._known_secrets
        for value in fresh:
            known.pop(value, None)
            known[value] = None  # newest last
        excess = len(known) - max(_KEEP_SECRETS, len(fresh))
        for old in list(known)[:max(0, excess)]:
            del known[old]

    def _scrub(self, text: str) -> str:
        """Replace any auth-header value this client has sent, then anything `casefile.redact` recognises."""
        for secret in sorted(self._known_secrets, key=len, reverse=True):
            if secret and secret in text:
                text = text.replace(secret, redaction_marker(secret))
        redacted, _ = redact(text)
        return str(redacted)

    def _show_url(self, url: httpx.URL) -> str:
        """The URL as the journal shows it: secret-named query values replaced by their redaction marker."""
        shown = str(url.copy_with(query=None, fragment=None))
        if url.query:
            shown += "?" + "&".join(
                f"{k}={redaction_marker(v) if v and (is_secret_field(k) or k.lower() in _EXTRA_SECRET_PARAMS) else v}"
                for k, v in url.params.multi_items()
            )
        return self._scrub(shown)

    def _show_path(self, url: httpx.URL) -> str:
        return self._scrub(url.path)

    def _record(self, sent_at: float, request_id: str, request: httpx.Request, status: int | None,
                elapsed: float, attempt: int, exc: BaseException | None = None) -> None:
        entry = JournalEntry(
            at=datetime.fromtimestamp(sent_at, UTC).isoformat(timespec="milliseconds"),
            request_id=request_id, method=request.method, url=self._show_url(request.url), status=status,
            elapsed_s=round(elapsed, 4), attempt=attempt, error=type(exc).__name__ if exc else None,
        )
        self.journal.append(entry)
        if self._on_journal is not None:
            self._on_journal(entry)

    # ------------------------------------------------------------------------------ URLs and bodies

    def _on_origin(self, path: str | httpx.URL, method: str) -> httpx.URL:
        url = httpx.URL(path)
        if not url.is_absolute_url:
            return url  # httpx joins it to the base URL
        if (url.scheme, url.host, url.port) != (self.base_url.scheme, self.base_url.host, self.base_url.port):
            raise UnexpectedResponseError(
                f"refused to send {self.name}'s credential to {url.scheme}://{url.host}: {method} "
                f"{self._show_path(url)} is not on {self.base_url.scheme}://{self.base_url.host}; check the "
                "base URL (a next-page link pointing elsewhere is suspicious)",
                connector=self.name, method=method, path=self._show_path(url),
            )
        return url

    def _next_url(self, response: httpx.Response, link: str, seen: set[str]) -> httpx.URL:
        url = response.request.url.join(link)  # RFC 3986: absolute kept, `/services/…` taken from the origin
        key = str(url)
        if key in seen or key == str(response.request.url):
            raise self._loop_error(response)
        seen.add(key)
        return url

    def _loop_error(self, response: httpx.Response) -> UnexpectedResponseError:
        path = self._show_path(response.request.url)
        return UnexpectedResponseError(
            f"pagination loop from {self.name}: GET {path} sent the same next page twice; "
            "stop and report it to the vendor (stanch will not page forever)",
            connector=self.name, status=response.status_code, method="GET", path=path,
        )

    def _json(self, response: httpx.Response) -> Any:
        request = response.request
        path = self._show_path(request.url)
        if 300 <= response.status_code < 400:
            where = self._show_url(httpx.URL(response.headers.get("location", "")))
            raise UnexpectedResponseError(
                f"{response.status_code} from {self.name}: {request.method} {path} redirected to {where}; "
                "use the final address as the base URL",
                connector=self.name, status=response.status_code, method=request.method, path=path,
            )
        if response.status_code == 204:
            return None
        body = _json_or_none(response)
        if body is None and response.content.strip() != b"null":
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise UnexpectedResponseError(
                f"{response.status_code} from {self.name}: {request.method} {path} answered {kind}, not JSON; "
                "check the base URL (a login page or proxy may be answering)",
                connector=self.name, status=response.status_code, method=request.method, path=path,
            )
        return body

    def _items(self, response: httpx.Response, items_path: str | Sequence[str] | None) -> list[Any]:
        body = self._json(response)
        found = body if items_path is None else _lookup(body, items_path)
        if found is None:
            return []
        if not isinstance(found, list):
            path = self._show_path(response.request.url)
            where = "the body" if items_path is None else f"`{items_path}`"
            raise UnexpectedResponseError(
                f"{response.status_code} from {self.name}: {where} of GET {path} is not a list; "
                "check the API version in the base URL",
                connector=self.name, status=response.status_code, method=response.request.method, path=path,
            )
        return found

    # ------------------------------------------------------------------------------ errors

    def _status_error(self, response: httpx.Response, request_id: str, retries: int,
                      wait: float | None) -> ConnectorError:
        status, method = response.status_code, response.request.method
        path = self._show_path(response.request.url)
        n, who = status, self.name
        retry_at = self._clock() + wait if wait is not None else None
        info: dict[str, Any] = {"connector": who, "status": status, "method": method, "path": path,
                                "request_id": request_id, "retry_at": retry_at}
        if status == 401:
            return InvalidCredentialError(
                f"401 from {who}: the API token is invalid or expired; run `stanch connector add {who}`", **info)
        if status == 403:
            return PermissionDeniedError(f"403 from {who}: the credential lacks the permission for {method} {path}",
                                         **info)
        if status == 404:
            return NotFoundError(f"404 from {who}: {method} {path} does not exist, or the credential may not see "
                                 "it; check the base URL and the id", **info)
        if status == 429:
            after = _when(retry_at) if retry_at is not None else "a minute"
            return RateLimitedError(f"429 from {who}: rate limited after {retries} retries; try again after {after}",
                                    **info)
        if status >= 500:
            return ServerError(f"{n} from {who}: the server failed {method} {path} after {retries} retries; "
                               "check the vendor's status page and try again later", **info)
        detail = self._error_detail(response)
        return RequestRejectedError(f"{n} from {who}: the server rejected {method} {path}{detail}; check the "
                                    "request's parameters and the API version", **info)

    def _error_detail(self, response: httpx.Response) -> str:
        body = _json_or_none(response)
        text: Any = None
        if isinstance(body, dict):
            err = body.get("error")
            errors = body.get("errors")
            text = (body.get("errorSummary") or body.get("error_description") or body.get("message")
                    or (err.get("message") if isinstance(err, dict) else err)
                    or (errors[0] if isinstance(errors, list) and errors else None))
        elif isinstance(body, list) and body and isinstance(body[0], dict):
            text = body[0].get("message")
        if not isinstance(text, str) or not text.strip():
            return ""
        text = self._scrub(_one_line(text))
        return f" ({text[:160]}{'…' if len(text) > 160 else ''})"

    def _transport_failure(self, exc: BaseException, request: httpx.Request,
                           request_id: str) -> ConnectorError | None:
        """The error for a failure no retry can fix (TLS), or None when the failure may be retried."""
        info: dict[str, Any] = {"connector": self.name, "method": request.method,
                                "path": self._show_path(request.url), "request_id": request_id}
        verify = _in_chain(exc, ssl.SSLCertVerificationError)
        if verify is not None:
            reason = _one_line(str(getattr(verify, "verify_message", "") or _reason(verify)))
            code = getattr(verify, "verify_code", None)
            # 62 hostname mismatch, 64 IP address mismatch (a URL like https://10.0.0.5:8200)
            if code in (62, 64) or "hostname" in reason.lower() or "mismatch" in reason.lower():
                return TLSVerificationError(f"TLS verification failed for {self.name} ({reason}): the certificate "
                                            f"is not for {request.url.host}; check the URL", **info)
            if code in (9, 10):  # not yet valid, expired: a CA bundle will not help
                return TLSVerificationError(f"TLS verification failed for {self.name} ({reason}): the server's "
                                            "certificate is outside its validity period; renew it on the server, or "
                                            "check this machine's clock", **info)
            return TLSVerificationError(f"TLS verification failed for {self.name} ({reason}): pass --ca-bundle "
                                        "FILE if the server uses a private CA", **info)
        tls = _in_chain(exc, ssl.SSLError)
        if tls is not None:
            code = getattr(tls, "reason", None)  # `TLSV13_ALERT_CERTIFICATE_REQUIRED`: shorter than str()
            reason = code.lower().replace("_", " ") if isinstance(code, str) else self._scrub(_reason(tls))
            if "certificate" in reason.lower() or "alert" in reason.lower():
                return TLSHandshakeError(f"TLS handshake with {self.name} failed ({reason}): the server may require "
                                         "a client certificate; pass --client-cert FILE --client-key FILE", **info)
            return TLSHandshakeError(f"TLS handshake with {self.name} failed ({reason}): check the URL, the CA "
                                     "bundle and the client certificate", **info)
        return None

    def _transport_final(self, exc: BaseException, request: httpx.Request, request_id: str,
                         attempt: int) -> ConnectorError:
        info: dict[str, Any] = {"connector": self.name, "method": request.method,
                                "path": self._show_path(request.url), "request_id": request_id}
        tries = f" ({attempt} attempts)" if attempt > 1 else ""
        if isinstance(exc, httpx.TimeoutException):
            seconds = self.connect_timeout if isinstance(exc, httpx.ConnectTimeout) else self.read_timeout
            return ConnectorTimeoutError(f"timeout after {seconds:g} s from {self.name}{tries}: the server did not "
                                         "answer; check the URL or network", **info)
        return ConnectionFailedError(f"cannot reach {self.name} at {request.url.host}{tries} "
                                     f"({self._scrub(_reason(exc))}): check the URL, proxy or network", **info)


# ----------------------------------------------------------------------------------------------- helpers


# (connector name, interval, clock) -> [next request slot]: shared by every client of one connector (see __init__).
_PACES: dict[tuple[str, float | None, Callable[[], float]], list[float]] = {}


def _pace_for(name: str, interval: float | None, clock: Callable[[], float]) -> list[float]:
    key = (name, interval, clock)
    pace = _PACES.get(key)
    if pace is None:
        if len(_PACES) > 1024:  # clients with injected clocks (tests) each add one; keep the table small
            _PACES.clear()
        pace = _PACES[key] = [0.0]
    return pace


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _reason(exc: BaseException) -> str:
    """The first non-empty message down the exception's chain (httpx's `ReadError` wraps an empty anyio error
    around `[Errno 104] Connection reset by peer`), else its class name."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if str(current).strip():
            return _one_line(str(current))[:200]
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return type(exc).__name__


def _in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _header_number(response: httpx.Response, *names: str) -> float | None:
    for name in names:
        value = response.headers.get(name)
        if value is not None:
            try:
                return float(value.strip())
            except ValueError:
                return None
    return None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None


def _secret_values(*fields: Any) -> list[str]:
    """Values sent under secret names (`access_token=`, `{"token": …}`) in query parameters or a body."""
    out = []
    for mapping in fields:
        if isinstance(mapping, Mapping):
            for key, value in mapping.items():
                if isinstance(value, str) and value and (
                        is_secret_field(str(key)) or str(key).lower() in _EXTRA_SECRET_PARAMS):
                    out.append(value)
    return out


def _lookup(body: Any, path: str | Sequence[str]) -> Any:
    """The value at a dotted path (`"data.keys"`) or key list (`["@odata.nextLink"]`) in a JSON body."""
    keys = path.split(".") if isinstance(path, str) else list(path)
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body
