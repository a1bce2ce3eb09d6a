"""Canonical records: what every parser yields and every ingest stores.

A parser is vendor knowledge; it turns one vendor line into an `Event`, naming the
credential it used by keys (`CredentialRef`), never by raw value. Raw values that a
parser meets are fingerprinted on the spot with `casefile.secrets.fingerprint`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The canonical action vocabulary. Parsers map vendor event types onto these.
ACTIONS = frozenset(
    {
        "token.issue",  # a credential was minted (access/refresh token, API key, Vault child token, session)
        "token.use",  # a credential was presented (introspection, lookup, auth check)
        "token.refresh",  # a refresh token was exchanged
        "token.revoke",  # a credential was revoked, deleted, expired by an admin
        "token.reuse",  # a one-time token was replayed (refresh-token reuse detection)
        "secret.read",  # a secret value was read (Vault kv, GetSecretValue)
        "secret.write",  # a secret value was written
        "login",  # an interactive or API sign-in
        "logout",  # a session ended
        "api.call",  # any other authenticated API request
        "data.export",  # bulk export
        "admin.change",  # configuration change (apps, policies, clients)
        "auth.fail",  # authentication/authorisation refused
        "other",
    }
)

OUTCOMES = frozenset({"success", "failure", "unknown"})

CREDENTIAL_KINDS = frozenset(
    {"access", "refresh", "id", "api-key", "pat", "vault-token", "aws-key", "session", "client-secret",
     "jwt", "webhook", "private-key", "certificate", "unknown"}
)


@dataclass(slots=True)
class CredentialRef:
    """A credential named by an event: every key the event gives for it, plus what the event tells about it.

    `keys` must name one secret (`sha256:`, `sha256/16:`, `jti:`, `vault-accessor:`, `vault-hmac:`,
    `okta-token:`, `github-token:`, `aws-key:`, `sf-token:`). Client, app and principal are facts,
    never keys: every token of an app would otherwise collapse into one credential.
    """

    keys: tuple[str, ...]
    kind: str = "unknown"
    issuer: str | None = None
    client: str | None = None
    principal: str | None = None
    scopes: str | None = None
    preview: str | None = None
    binding: str | None = None  # none | dpop | mtls
    issued_at: str | None = None
    expires_at: str | None = None


@dataclass(slots=True)
class Event:
    """One canonical event. `time` is ISO 8601 UTC with the source's own precision, ending in `Z`."""

    time: str
    vendor: str
    action: str
    raw: dict[str, Any] | str  # the vendor record; redacted by ingest before it is stored
    vendor_type: str | None = None
    vendor_id: str | None = None  # the vendor's own event id, when the format has one
    outcome: str = "unknown"
    credential: CredentialRef | None = None  # the credential presented
    subject: CredentialRef | None = None  # the credential minted, refreshed or revoked by this event
    principal: str | None = None
    client: str | None = None  # OAuth client id / integration / app
    src_ip: str | None = None
    user_agent: str | None = None
    country: str | None = None
    city: str | None = None
    asn: str | None = None
    method: str | None = None
    resource: str | None = None  # URL path, SOQL, Vault path, API operation
    status: int | None = None
    bytes: int | None = None
    rows: int | None = None
    request_id: str | None = None
    session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Problem:
    """A line that did not become an event. `kind` is `malformed` (bad data) or `skipped` (header, blank, noise)."""

    line: int
    kind: str
    reason: str


@dataclass(slots=True)
class Parsed:
    """An event with the line (or record offset) it came from and the normalised text its id may hash."""

    line: int
    event: Event
    id_text: str | None = None  # when the vendor has no id: the normalised line the stable id hashes
