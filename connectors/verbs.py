"""One interface to every connector's acts and probes, for the playbook engine.

A playbook item names a connector kind, a verb and a target (an id: an Okta token `app/id`, a Vault accessor, an
AWS key id — never a raw secret). `act(...)` runs the verb and `probe(...)` proves its effect, through the vendor
module's own functions; the engine never calls a vendor module directly.

Each vendor module registers its verbs with `register(kind, verb, act=..., probe=..., reversible=..., undo=...,
rotation=...)`:

- `act(settings, secret, target, *, raw, snapshot) -> dict` performs the change and returns the vendor's answer
  summary (`{"status_code": …, "snapshot": …}`); `raw` is the raw credential when the verb needs it (RFC 7009,
  GitHub's revocation API), else None; `snapshot(what, target, body)` must be called before destroying anything
  (connectors/act.py).
- `probe(settings, secret, target, *, raw) -> Verdict` proves the effect (connectors/verdict.py): only positive
  evidence gives `revoked-verified`.
- `reversible`: the verb can be undone, and `undo` names the verb that undoes it (deactivate → reactivate).
- `rotation`: the verb replaces a secret (a client-secret rotation): after a crash it is never sent twice.
- `needs_raw`: the verb needs the raw credential.

Both callables are `async`: the engine runs them in its event loop with per-connector concurrency. A verb opens
its own client from `settings` and `secret` (the connector's credential, from the keyring).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from connectors.act import SnapshotFn
from connectors.config import ConnectorSettings
from connectors.http import ConnectorError
from connectors.verdict import Verdict

ActFn = Callable[..., Awaitable[dict[str, Any]]]
ProbeFn = Callable[..., Awaitable[Verdict]]


@dataclass(frozen=True, slots=True)
class Verb:
    kind: str
    name: str
    act: ActFn
    probe: ProbeFn | None
    needs_raw: bool = False
    reversible: bool = False
    undo: str | None = None
    rotation: bool = False
    description: str = ""


VERBS: dict[tuple[str, str], Verb] = {}


def register(kind: str, name: str, *, act: ActFn, probe: ProbeFn | None, needs_raw: bool = False,
             reversible: bool = False, undo: str | None = None, rotation: bool = False,
             description: str = "") -> Verb:
    verb = Verb(kind, name, act, probe, needs_raw, reversible, undo, rotation, description)
    VERBS[(kind, name)] = verb
    return verb


def get(kind: str, name: str) -> Verb | None:
    """The registered verb, or None. Importing `connectors` registers every module's verbs."""
    return VERBS.get((kind, name))


async def act(verb: Verb, settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
              snapshot: SnapshotFn) -> dict[str, Any]:
    if verb.needs_raw and not raw:
        raise ValueError(f"{verb.kind} {verb.name} {target}: needs the raw credential (--secrets-from)")
    return await verb.act(settings, secret, target, raw=raw, snapshot=snapshot)


async def probe(verb: Verb, settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
    if verb.probe is None:
        from connectors.verdict import REVOKED_UNVERIFIED

        return Verdict(REVOKED_UNVERIFIED, f"{verb.kind} {verb.name} has no probe: nothing proves the act")
    return await verb.probe(settings, secret, target, raw=raw)


# ------------------------------------------------------------------------------------------- helpers for the verbs


def answer(result: dict[str, Any] | list[Any] | int, **extra: Any) -> dict[str, Any]:
    """A vendor verb's return value as the small JSON-ready dict an act returns: `status_code` and the vendor's
    other plain facts, and `snapshot` when it is JSON-ready (a vendor verb's snapshot is its secret-free view
    already). An answer that is not JSON-ready keeps its `status_code` only."""
    import orjson

    out: dict[str, Any] = dict(result) if isinstance(result, dict) else {"status_code": result} \
        if isinstance(result, int) else {"snapshot": result}
    out.update(extra)
    try:
        orjson.dumps(out)
    except TypeError:
        return {"status_code": out.get("status_code")}
    return out


def check_raw(kind: str, verb: str, target: str, raw: str | None) -> str:
    """The raw credential given for a `needs_raw` verb, checked against a `sha256:` / `sha256/16:` target (the
    key the revocation set names): a raw value of another credential is refused before anything is sent."""
    if not raw or not raw.strip():
        raise ValueError(f"{kind} {verb} {target}: needs the raw credential (--secrets-from)")
    if target.startswith(("sha256:", "sha256/16:")):
        from casefile.secrets import fingerprint

        if target not in fingerprint(raw).keys:
            raise ValueError(f"{kind} {verb} {target}: the raw credential given is not the one the target names "
                             "(its fingerprint differs)")
    return raw


class NotAutomatableError(ConnectorError):
    """A verb that cannot be done through the vendor's API: the message says exactly what to do by hand."""


def guarded(probe_fn: ProbeFn) -> ProbeFn:
    """`probe_fn` that never raises: a bad target, a missing raw credential or a failed request is a
    `revoked-unverified` verdict naming the failure (a probe proves, it never stops a run)."""

    async def run(settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
        from connectors.verdict import REVOKED_UNVERIFIED

        try:
            return await probe_fn(settings, secret, target, raw=raw)
        except (ConnectorError, ValueError, OSError) as e:
            text = str(e)
            if raw and raw in text:
                text = text.replace(raw, "[credential]")
            return Verdict(REVOKED_UNVERIFIED, f"probe of {target} failed, nothing proven: {text}"[:500],
                           http_status=getattr(e, "status", None))

    run.__name__ = getattr(probe_fn, "__name__", "probe")
    run.__doc__ = probe_fn.__doc__
    return run
