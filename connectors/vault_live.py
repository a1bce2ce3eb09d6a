"""HashiCorp Vault / OpenBao, live: look up, list, revoke and probe tokens through `ConnectorClient`.

The client's base URL is the Vault address (`https://vault.example.com:8200`); every route here is
under `v1/`. The client's secret is the responder's own Vault token, sent as `X-Vault-Token` (build one
with `client_for`). Leaked tokens are addressed by **accessor** wherever Vault allows it, so the
responder never has to handle the token itself. Two calls need the raw token (`revoke_orphan`,
`probe_token`); it is passed in at call time, held only for that call, and scrubbed from the journal and
from every error text.

Verdicts (ARCHITECTURE §4): only positive evidence of death counts.

- `probe_accessor`: `revoked-verified` only when Vault answers the responder's `lookup-accessor` with 400
  `invalid accessor` (Vault looked in its token store and found nothing); `still-live` when the lookup
  succeeds; anything else (403: the *responder's* token lacks the permission or is itself revoked; 5xx,
  sealed, timeout, an unexpected body) is `revoked-unverified`.
- `probe_token`: `lookup-self` sent *with the leaked token*; Vault's 403 `permission denied` means the
  token no longer authenticates (`revoked-verified`); 200 is `still-live`; anything else is unverified.

Destructive acts (`revoke_accessor`, `revoke_orphan`, `revoke_lease_prefix`) first snapshot what is about
to change and return `{"snapshot": ..., "status_code": ...}` for the playbook engine to keep. A snapshot
that cannot be taken stops the act.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from connectors.config import ConnectorSettings
from connectors.http import ConnectorClient, ConnectorError, UnexpectedResponseError
from connectors.verdict import REVOKED_UNVERIFIED as UNVERIFIED
from connectors.verdict import REVOKED_VERIFIED as VERIFIED
from connectors.verdict import STILL_LIVE as LIVE
from connectors.verdict import Verdict

API = "v1/"
#: Vault Proxy with `require_request_header` demands it; Vault itself ignores it.
VAULT_HEADERS = {"X-Vault-Request": "true"}

# A mount/device path or lease prefix as it goes into the URL: no `..`, no query, no leading slash.
_PATH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*")
# Token metadata that is safe to show and keep; `id` (the token itself) is never kept.
_DROP = frozenset({"id"})


# ------------------------------------------------------------------------------------------- clients


def client_for(settings: ConnectorSettings, secret: str, **kwargs: Any) -> ConnectorClient:
    """A `ConnectorClient` for a `vault` connector: the secret goes as `X-Vault-Token` on every request.

    `kwargs` are `ConnectorClient` options that override those taken from the settings."""
    cert = (settings.client_cert, settings.client_key or settings.client_cert) if settings.client_cert else None
    options: dict[str, Any] = {
        "timeout": (settings.connect_timeout, settings.read_timeout), "verify": settings.ca_bundle or True,
        "cert": cert, "concurrency": settings.concurrency, "rate_limit_per_s": settings.rate_limit,
        "headers": VAULT_HEADERS,
    }
    options.update(kwargs)  # tests and callers may override any of them (timeouts, retries, transport)
    return ConnectorClient(settings.name, settings.url, auth_header=lambda: {"X-Vault-Token": secret}, **options)


def _path(value: str, what: str) -> str:
    text = value.strip().strip("/")
    if not _PATH_RE.fullmatch(text) or ".." in text.split("/"):
        raise ValueError(f"{what} {value!r} is not a Vault path (letters, digits, '_', '-', '.', '/'; no '..')")
    return text


def _data(client: ConnectorClient, response: httpx.Response) -> dict[str, Any]:
    body = client._json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise UnexpectedResponseError(
            f"{response.status_code} from {client.name}: {response.request.method} {response.request.url.path} "
            "has no `data` object; check that the base URL is the Vault address",
            connector=client.name, status=response.status_code, method=response.request.method,
            path=response.request.url.path,
        )
    return {k: v for k, v in data.items() if k not in _DROP}


def _errors(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    return " ".join(" ".join(str(e).split()) for e in errors)


# ------------------------------------------------------------------------------------------- lookups


async def lookup_self(client: ConnectorClient) -> dict[str, Any]:
    """`GET auth/token/lookup-self` for the client's own token: its metadata, without `id`."""
    return _data(client, await client.request("GET", f"{API}auth/token/lookup-self"))


def whoami(settings: ConnectorSettings, secret: str) -> dict[str, Any]:
    """`stanch connector test` hook: who the responder's Vault token is (never the token itself)."""

    async def ask() -> dict[str, Any]:
        async with client_for(settings, secret) as client:
            data = await lookup_self(client)
        return {k: data.get(k) for k in ("display_name", "policies", "accessor", "ttl", "expire_time", "path",
                                         "orphan", "type", "entity_id")}

    return asyncio.run(ask())


async def lookup_accessor(client: ConnectorClient, accessor: str) -> dict[str, Any]:
    """`POST auth/token/lookup-accessor`: the token's metadata (policies, ttl, path, ...); never its id."""
    r = await client.request("POST", f"{API}auth/token/lookup-accessor", json={"accessor": accessor},
                             idempotent=True)
    return _data(client, r)


async def list_accessors(client: ConnectorClient) -> AsyncIterator[str]:
    """`LIST auth/token/accessors` (needs sudo): every service token's accessor. Batch tokens are not listed."""
    async for key in client.list_keys(f"{API}auth/token/accessors"):
        yield key


# ------------------------------------------------------------------------------------------- acts


async def revoke_accessor(client: ConnectorClient, accessor: str) -> dict[str, Any]:
    """Revoke the token behind `accessor`, **its child tokens** and its leases. Snapshot first.

    Returns `{"snapshot": <lookup-accessor metadata>, "status_code": <Vault's answer, 204>}`. Not retried:
    a revoke sent twice must be a choice. Follow it with `probe_accessor`.
    """
    snapshot = await lookup_accessor(client, accessor)
    r = await client.request("POST", f"{API}auth/token/revoke-accessor", json={"accessor": accessor})
    return {"snapshot": snapshot, "status_code": r.status_code}


async def revoke_orphan(client: ConnectorClient, raw_token: str) -> dict[str, Any]:
    """Revoke one token but keep its children (they become orphans). Needs sudo. Snapshot first.

    `raw_token` is the leaked token as the responder holds it: sent in the request body only, never kept,
    scrubbed from errors. The snapshot is `auth/token/lookup` of it, without `id`.
    """
    r = await client.request("POST", f"{API}auth/token/lookup", json={"token": raw_token}, idempotent=True)
    snapshot = _data(client, r)
    r = await client.request("POST", f"{API}auth/token/revoke-orphan", json={"token": raw_token})
    return {"snapshot": snapshot, "status_code": r.status_code}


async def revoke_lease_prefix(client: ConnectorClient, prefix: str, *, allow_own_token: bool = False) -> dict[str, Any]:
    """`POST sys/leases/revoke-prefix/<prefix>` (sync): revoke every lease, or every token by its creation
    path (`auth/token/create/<role>`, `auth/approle/login`), under `prefix`. Needs sudo.

    Vault matches `<prefix>/` against lease ids, so `auth/token/create` also takes every role's tokens and
    the dev root token. The responder's own token is checked first: when its creation path falls under the
    prefix the act is refused (`ValueError`) unless `allow_own_token`. The snapshot is the `LIST
    sys/leases/lookup/<prefix>/` answer (one level: lease ids and sub-prefixes).
    """
    p = _path(prefix, "lease prefix")
    own = await lookup_self(client)
    own_path = str(own.get("path") or "").strip("/")
    if not allow_own_token and own_path and f"{own_path}/".startswith(f"{p}/"):
        raise ValueError(f"lease prefix {p!r} covers the responder's own token (created at {own_path!r}); "
                         "narrow the prefix (e.g. auth/token/create/<role>) or pass allow_own_token")
    leases = [key async for key in client.list_keys(f"{API}sys/leases/lookup/{p}/")]
    r = await client.request("POST", f"{API}sys/leases/revoke-prefix/{p}", json={"sync": True})
    return {"snapshot": {"prefix": p, "leases": leases}, "status_code": r.status_code}


# ------------------------------------------------------------------------------------------- audit


async def audit_hash(client: ConnectorClient, device_path: str, raw_value: str) -> str:
    """The stanch credential key of `raw_value` (a token or accessor) in the log of audit device `device_path`.

    `POST sys/audit-hash/<device>` answers `hmac-sha256:<hex>` with that device's salt; the key is formed
    by the audit parser's own `value_key`, so it is exactly `vault-hmac:default:<hex>` as ingested logs
    file the same token.
    """
    from connectors import vault  # the parser module imports this one at its end

    device = _path(device_path, "audit device path")
    # `input` is not a secret-named field: name the value so the client scrubs it from errors anyway.
    r = await client.request("POST", f"{API}sys/audit-hash/{device}", json={"input": raw_value}, idempotent=True,
                             secrets=[raw_value])
    body = client._json(r)
    hashed = None
    if isinstance(body, dict):
        data = body.get("data")
        hashed = (data.get("hash") if isinstance(data, dict) else None) or body.get("hash")
    if not isinstance(hashed, str) or not hashed.startswith(vault.HMAC_PREFIX):
        raise UnexpectedResponseError(
            f"{r.status_code} from {client.name}: POST sys/audit-hash/{device} gave no `hmac-sha256:` hash; "
            "check the device path (`GET sys/audit` lists them) and that it does not log raw values",
            connector=client.name, status=r.status_code, method="POST", path=r.request.url.path,
        )
    keys = vault.value_key(hashed)
    if not keys:
        raise UnexpectedResponseError(f"{r.status_code} from {client.name}: empty hash from sys/audit-hash/{device}",
                                      connector=client.name, status=r.status_code, method="POST")
    return keys[0]


# ------------------------------------------------------------------------------------------- probes


async def _probe(call: Callable[[], Any], what: str) -> tuple[httpx.Response | None, Verdict | None]:
    try:
        return await call(), None
    except ConnectorError as e:
        return None, Verdict(UNVERIFIED, f"{what} failed, nothing proven: {e}", http_status=e.status)


async def probe_accessor(client: ConnectorClient, accessor: str) -> Verdict:
    """Is the token behind `accessor` dead? Only Vault's 400 `invalid accessor` proves it."""

    async def call() -> httpx.Response:
        return await client.request("POST", f"{API}auth/token/lookup-accessor", json={"accessor": accessor},
                                    idempotent=True, accept_status=(400, 403, 404))

    r, failed = await _probe(call, "lookup-accessor")
    if failed is not None or r is None:
        return failed or Verdict(UNVERIFIED, "lookup-accessor gave no answer")
    status, errors = r.status_code, _errors(r)
    if status == 400 and "invalid accessor" in errors.lower():
        return Verdict(VERIFIED, "lookup-accessor refused: 400 invalid accessor (no such token in Vault's store)",
                       http_status=status)
    if status == 200:
        try:
            data = _data(client, r)
        except ConnectorError as e:
            return Verdict(UNVERIFIED, f"lookup-accessor answered 200 without token data: {e}", http_status=status)
        if data.get("accessor") not in (None, accessor):
            return Verdict(UNVERIFIED, "lookup-accessor answered 200 for another accessor", http_status=status)
        return Verdict(LIVE, f"lookup-accessor answered 200: {_describe(data)}", http_status=status)
    if status == 403:
        return Verdict(UNVERIFIED, "lookup-accessor refused with 403: the responder's token lacks permission or "
                       "is itself revoked, so nothing is proven about the target", http_status=status)
    return Verdict(UNVERIFIED, f"lookup-accessor answered {status} ({errors or 'no error text'}); nothing proven",
                   http_status=status)


async def probe_token(client: ConnectorClient, raw_token: str) -> Verdict:
    """Is this token dead? `lookup-self` sent as the token itself; Vault's 403 `permission denied` proves it.

    The request goes over the caller's client with the raw token as `X-Vault-Token` for this one call
    (the client scrubs it from its journal and errors).
    """
    r, failed = await _probe(lambda: client.request("GET", f"{API}auth/token/lookup-self",
                                                    accept_status=(400, 401, 403),
                                                    auth={"X-Vault-Token": raw_token}), "lookup-self")
    if failed is not None or r is None:
        return failed or Verdict(UNVERIFIED, "lookup-self gave no answer")
    status, errors = r.status_code, _errors(r)
    if status == 403 and "permission denied" in errors.lower():
        return Verdict(VERIFIED, "lookup-self with the token refused: 403 permission denied", http_status=status)
    if status == 200:
        try:
            data = _data(client, r)
        except ConnectorError as e:
            return Verdict(UNVERIFIED, f"lookup-self answered 200 without token data: {e}", http_status=status)
        return Verdict(LIVE, f"lookup-self answered 200: {_describe(data)}", http_status=status)
    return Verdict(UNVERIFIED, f"lookup-self answered {status} ({errors or 'no error text'}); nothing proven",
                   http_status=status)


def _describe(data: dict[str, Any]) -> str:
    policies = data.get("policies")
    pol = ",".join(str(p) for p in policies) if isinstance(policies, list) else "?"
    return (f"{data.get('display_name') or '?'} (accessor {data.get('accessor') or '?'}, policies {pol}, "
            f"ttl {data.get('ttl')}, expires {data.get('expire_time') or 'never'})")
