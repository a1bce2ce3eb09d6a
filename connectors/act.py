"""What every destructive connector verb shares: the snapshot taken before it destroys anything.

Revoking deletes vendor rows that are evidence (Salesforce `OauthToken` with its `UseCount`, a Vault
token's policies and TTL, an Okta API token's `lastUpdated`). So a verb that deletes, revokes, rotates or
disables first reads what it is about to change and hands it to `snapshot(what, target, body)` **before**
sending the destructive request; the caller stores it in the case (`casefile.snapshots.store`), and a
snapshot that cannot be stored stops the act (the callback raises). `what` names the vendor object
(`vault.token`, `okta.api_token`), `target` its id (an accessor, a token id: never a raw secret), `body`
the vendor's JSON answer as received; the case redacts it on the way in.

Verbs return `{"snapshot": body, "status_code": <the vendor's answer>}` too, so a caller without a case
(a test, a dry run) still sees what was there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SnapshotFn = Callable[[str, str, Any], None]


def take(snapshot: SnapshotFn | None, what: str, target: str, body: Any) -> None:
    """Hand `body` to `snapshot` when one is given (it raises to stop the act)."""
    if snapshot is not None:
        snapshot(what, target, body)
