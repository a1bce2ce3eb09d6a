"""What a probe proved about a credential: one verdict type for every connector (ARCHITECTURE §4).

Only positive evidence of death counts: `revoked-verified` needs an answer such as introspection's
`{"active": false}`, a lookup the vendor refuses, or a 401 through the gateway. Any error, timeout or
unsupported answer is `revoked-unverified`. A self-contained token nothing can revoke is `unrevocable`
(with its expiry); a credential still accepted is `still-live`. A verdict never holds the credential.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

REVOKED_VERIFIED: Final = "revoked-verified"
REVOKED_UNVERIFIED: Final = "revoked-unverified"
UNREVOCABLE: Final = "unrevocable"
STILL_LIVE: Final = "still-live"
VerdictStatus = Literal["revoked-verified", "revoked-unverified", "unrevocable", "still-live"]


def checked_now() -> str:
    """Now, UTC, millisecond precision, ending in `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Verdict:
    """What a probe proved about one credential, and when. Holds no credential."""

    status: str  # one of the four statuses above
    evidence: str  # one line: what the server answered (or failed to)
    expires_at: str | None = None  # UTC ISO 8601, when known (a JWT's `exp`)
    binding: str | None = None  # dpop | mtls | none, where the probe could tell
    checked_at: str = field(default_factory=checked_now)
    http_status: int | None = None  # None when no answer came (timeout, connection refused)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
