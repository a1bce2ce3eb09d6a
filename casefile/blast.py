"""Blast radius: from one seed, everything a compromised credential reaches, as evidence, and what to revoke.

The engine runs over the canonical columns only (it knows no vendor). Vendor knowledge plugs in through two
registries that connector modules fill on import, the way parsers register:

- `OBJECT_READERS`: `(vendor, method, resource) -> [object names]` (Salesforce SOQL `FROM Account`,
  `/sobjects/Case/…`), for the "objects read" part;
- `REVOKERS`: `(credential) -> RevokeHow | None`, which connector kind can kill a credential, with which verb,
  and whether acting needs the raw secret, for the revocation set.

A seed is a credential key (`sha256:…`, `jti:…`, `vault-accessor:…`, `okta-token:…`, `aws-key:…`, …), a
credential number, a raw token (fingerprinted, never stored), `client:<issuer>:<client_id>` (`*` for any
issuer), `app:<name>` or `principal:<id>`.

The answer (`blast(...)`, JSON-ready) has these parts; every item carries its evidence (event count, first and
last time, and sample event ids, which `stanch events` and the timeline open):

- `credentials`: the seed's credentials, the credentials that minted them (`parent`), those minted from them
  recursively to `depth` (`minted`), and those linked as the same secret by hash (`same-secret`);
- `static`: apps (clients), tenants (issuers) and principals in reach, with the other credentials of each app
  (a stolen client secret reaches them all), scopes, TTL and sender binding;
- `runtime`: calls grouped by vendor, action, method and resource pattern (ids folded to `{id}`), objects read,
  secrets read, exports;
- `lineage`: parent → child edges with the event that minted each child;
- `revocation_set`: what to revoke or rotate, each with the reason, the connector kind that can act, the verb,
  and whether acting needs the raw secret.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from casefile.case import Case, CaseError
from casefile.identity import KeyError_, normalise_key
from casefile.patterns import OBJECT_READERS, register_object_reader, resource_pattern
from casefile.schema import TOKEN_USE
from casefile.secrets import fingerprint
from casefile.timeutil import micros_to_iso, now_iso, to_micros

SAMPLE_EVENTS = 5
DEFAULT_DEPTH = 3
# Actions that use a credential against a resource (runtime reach); lifecycle actions are lineage.
_LIFECYCLE = ("token.issue", "token.refresh", "token.revoke", "token.reuse")

@dataclass(frozen=True, slots=True)
class RevokeHow:
    """How a credential can be killed: by which connector kind and verb, and whether the raw secret is needed."""

    connector: str  # a connector kind (`okta`, `vault`, `aws`, `oauth`, …)
    verb: str  # the connector's verb (`revoke-app-token`, `revoke-accessor`, `deactivate-access-key`, …)
    target: str  # what the verb acts on (a token id, an accessor, a key id): never a raw secret
    needs_raw_secret: bool
    reversible: bool = False
    note: str = ""


Revoker = Callable[[dict[str, Any]], RevokeHow | None]

REVOKERS: list[Revoker] = []
_FALLBACK_REVOKERS: list[Revoker] = []


def register_revoker(fn: Revoker, *, fallback: bool = False) -> Revoker:
    """Register a revoker; `fallback` ones (a generic protocol such as RFC 7009) are asked after all others."""
    (_FALLBACK_REVOKERS if fallback else REVOKERS).append(fn)
    return fn


def revoke_how(credential: dict[str, Any]) -> RevokeHow | None:
    """The first registered answer for this credential (vendor revokers first, then fallbacks)."""
    for revoker in (*REVOKERS, *_FALLBACK_REVOKERS):
        how = revoker(credential)
        if how is not None:
            return how
    return None


# ------------------------------------------------------------------------------------------------ seeds


@dataclass(slots=True)
class Seed:
    text: str  # as given (a raw token is shown by its preview only)
    kind: str  # credential | client | app | principal
    credential_ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the keys the seed itself gave (a full sha256: the case may lack)
    app: str | None = None
    principal: str | None = None


def resolve_seed(case: Case, seed: str, raw_token: str | None = None) -> Seed:
    """The credentials a seed names. Raises CaseError (one line, naming the fix) when it names none."""
    c = case.conn
    if raw_token is not None:
        fp = fingerprint(raw_token)
        ids = _ids_for_keys(case, fp.keys)
        if not ids:
            raise CaseError(f"the token read from stdin ({fp.preview}) matches no credential in {case.path}; "
                            "its keys: " + ", ".join(fp.keys[:2]))
        return Seed(f"raw token {fp.preview}", "credential", ids, keys=list(fp.keys))
    text = seed.strip()
    kind, sep, rest = text.partition(":")
    if text.isdigit():
        if c.execute("SELECT 1 FROM credentials WHERE id = ?", (int(text),)).fetchone() is None:
            raise CaseError(f"seed {text}: no credential {text}; list them with `stanch credentials {case.path}`")
        return Seed(text, "credential", [int(text)])
    if sep and kind == "client":
        issuer, _, client_id = rest.rpartition(":")
        if not client_id:
            raise CaseError(f"seed {text}: expected client:<issuer>:<client_id> (issuer * for any)")
        sql, args = "SELECT id FROM credentials WHERE client = ?", [client_id]
        if issuer and issuer != "*":
            sql += " AND issuer = ?"
            args.append(issuer)
        ids = [r[0] for r in c.execute(sql + " ORDER BY id", args)]
        if not ids:
            raise CaseError(f"seed {text}: no credential of client {client_id!r}; the clients in the case are "
                            f"listed by `stanch credentials {case.path}`")
        return Seed(text, "client", ids, app=client_id)
    if sep and kind == "app":
        ids = [r[0] for r in c.execute(
            "SELECT id FROM credentials WHERE client = ?1 UNION SELECT DISTINCT credential_id FROM events "
            "WHERE client = ?1 AND credential_id IS NOT NULL ORDER BY 1", (rest,))]
        if not ids:
            raise CaseError(f"seed {text}: no credential or event of app {rest!r} in {case.path}")
        return Seed(text, "app", ids, app=rest)
    if sep and kind == "principal":
        ids = [r[0] for r in c.execute("SELECT id FROM credentials WHERE principal = ? ORDER BY id", (rest,))]
        if not ids:
            raise CaseError(f"seed {text}: no credential held by principal {rest!r} in {case.path}")
        return Seed(text, "principal", ids, principal=rest)
    try:
        key = normalise_key(text)
    except KeyError_ as e:
        raise CaseError(f"seed {text}: {e}; or client:<issuer>:<id>, app:<name>, principal:<id>, a credential "
                        "number, or - to read a raw token from stdin") from None
    ids = _ids_for_keys(case, (key,))
    if not ids:
        raise CaseError(f"seed {text}: no credential with that key in {case.path}; list keys with "
                        f"`stanch credentials {case.path}`")
    return Seed(text, "credential", ids, keys=[key])


def _ids_for_keys(case: Case, keys: Iterable[str]) -> list[int]:
    out: list[int] = []
    for key in keys:
        probe = [key]
        if key.startswith("sha256:") and len(key) >= 7 + 16:
            probe.append(f"sha256/16:{key[7:23]}")
        for k in probe:
            row = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (k,)).fetchone()
            if row is not None and row[0] not in out:
                out.append(int(row[0]))
    return out


# ------------------------------------------------------------------------------------------------ links


def same_secret_keys(keys: Iterable[str]) -> list[tuple[str, str]]:
    """Keys that name the same secret in another system's hash form, with the reason: a full `sha256:` key
    gives the OIDC `at_hash` form (base64url of the digest's left half, which Okta logs on token targets),
    and such a hash gives back the digest's first 16 hex digits (`sha256/16:`, what gateways log). A match of
    64 or 128 bits is the evidence; where a system uses another algorithm nothing matches."""
    out: list[tuple[str, str]] = []
    for key in keys:
        kind, _, rest = key.partition(":")
        if kind == "sha256" and len(rest) == 64:
            left = base64.urlsafe_b64encode(bytes.fromhex(rest)[:16]).decode().rstrip("=")
            out.append((f"okta-token:hash:{left}", "left half of its SHA-256 (at_hash form)"))
        elif kind == "okta-token" and rest.startswith("hash:"):
            value = rest[5:]
            try:
                raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except (binascii.Error, ValueError):
                continue
            if len(raw) == 16:
                out.append((f"sha256/16:{raw[:8].hex()}", "SHA-256 prefix of the at_hash form"))
    return out


# ------------------------------------------------------------------------------------------------ engine


@dataclass(slots=True)
class _Node:
    id: int
    role: str  # seed | same-secret | parent | minted | exposed
    depth: int
    via: str | None = None  # the event id that links it, or the key match
    same_as: int | None = None  # the credential it is the same secret as (another system's view of it)


_COLS = ("id", "kind", "issuer", "client", "principal", "scopes", "issued_at", "expires_at", "first_seen",
         "last_used", "binding", "status", "preview")


def blast(case: Case, seed: str, *, raw_token: str | None = None, depth: int = DEFAULT_DEPTH,
          since: str | None = None, until: str | None = None, as_of: str | None = None) -> dict[str, Any]:
    """The blast radius of `seed` (module docstring). `since`/`until` bound the runtime part (ISO times).
    `as_of` is the time against which expiry is judged (default: the case policy `as_of`, else now)."""
    if depth < 0:
        raise CaseError(f"--depth {depth}: must be 0 or more")
    s = resolve_seed(case, seed, raw_token)
    window = _window(since, until)
    nodes: dict[int, _Node] = {cid: _Node(cid, "seed", 0) for cid in s.credential_ids}
    extra = {s.credential_ids[0]: s.keys} if s.keys and s.credential_ids else None
    _link_same_secret(case, nodes, list(nodes), extra)
    lineage = _lineage(case, nodes, depth)
    reach = [n.id for n in nodes.values() if n.role != "parent"]
    runtime = _runtime(case, reach, window)
    exposure = _exposure(case, nodes, reach, runtime.pop("_segments"), runtime["objects_read"], window)
    exposed = [n.id for n in nodes.values() if n.role == "exposed"]
    if exposed:  # what the exposed credentials were used for is part of the compromise (second order)
        runtime = _runtime(case, reach + exposed, window)
        runtime.pop("_segments")
    creds = _credentials(case, nodes)
    static = _static(case, creds, reach)
    return {
        "seed": {"input": s.text, "kind": s.kind, "credentials": s.credential_ids},
        "window": {"since": since, "until": until},
        "depth": depth,
        "credentials": creds,
        "static": static,
        "runtime": runtime,
        "lineage": lineage,
        "exposure": exposure,
        "revocation_set": _revocation_set(creds, static, as_of or case.policy().get("as_of") or now_iso()),
    }


def _window(since: str | None, until: str | None) -> tuple[str, list[int]]:
    where, args = "", []
    if since:
        where += " AND ts >= ?"
        args.append(to_micros(since))
    if until:
        where += " AND ts <= ?"
        args.append(to_micros(until))
    return where, args


def _link_same_secret(case: Case, nodes: dict[int, _Node], ids: list[int], extra: dict[int, list[str]] | None = None
                      ) -> list[int]:
    """Add the credentials that are the same secret as `ids` in another system's hash form; returns them."""
    keys = _keys_of(case, ids)
    for cid, ks in (extra or {}).items():
        keys[cid] = [*keys.get(cid, []), *ks]
    added: list[int] = []
    for cid, ks in keys.items():
        for other_key, why in same_secret_keys(ks):
            row = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (other_key,)).fetchone()
            if row is not None and (row[0] not in nodes or nodes[row[0]].role == "parent"):
                nodes[row[0]] = _Node(row[0], "same-secret" if nodes[cid].role != "minted" else "minted",
                                      nodes[cid].depth, f"{other_key} ({why})", same_as=cid)
                added.append(row[0])
    return added


def _keys_of(case: Case, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        for key, cid in case.conn.execute(
                f"SELECT key, credential_id FROM credential_keys WHERE credential_id IN ({_qs(chunk)}) ORDER BY key",
                chunk):
            out[cid].append(key)
    return out


def _lineage(case: Case, nodes: dict[int, _Node], depth: int) -> list[dict[str, Any]]:
    """Parents of the seed credentials (one level) and children of everything in reach, to `depth`."""
    c = case.conn
    edges: list[dict[str, Any]] = []
    roots = list(nodes)
    # Who minted the seed's credentials.
    for chunk in _chunks(roots):
        for parent, child, eid, action, time in c.execute(
                f"SELECT credential_id, subject_credential_id, id, action, time FROM events WHERE subject_credential_id"
                f" IN ({_qs(chunk)}) AND credential_id IS NOT NULL AND credential_id != subject_credential_id"
                f" AND action IN ('token.issue', 'token.refresh') ORDER BY ts", chunk):
            edges.append({"parent": parent, "child": child, "action": action, "event": eid, "time": time})
            if parent not in nodes:
                nodes[parent] = _Node(parent, "parent", -1, eid)
    for parent, child, eid, action, time, why in _inferred_parents(case, roots):
        edges.append({"parent": parent, "child": child, "action": action, "event": eid, "time": time,
                      "inferred": why})
        if parent not in nodes:
            nodes[parent] = _Node(parent, "parent", -1, eid)
    frontier = [n for n in roots if nodes[n].role in ("seed", "same-secret")]
    for level in range(1, depth + 1):
        found: list[tuple[int, int, str, str, str, str | None]] = []
        for chunk in _chunks(frontier):
            found += [(*r, None) for r in c.execute(
                f"SELECT credential_id, subject_credential_id, id, action, time FROM events WHERE credential_id"
                f" IN ({_qs(chunk)}) AND subject_credential_id IS NOT NULL AND subject_credential_id != credential_id"
                f" AND action IN ('token.issue', 'token.refresh') ORDER BY ts", chunk)]
        found += _inferred_children(case, frontier)
        nxt: list[int] = []
        for parent, child, eid, action, time, inferred in found:
            if child in nodes and nodes[child].role != "parent":
                continue
            edge = {"parent": parent, "child": child, "action": action, "event": eid, "time": time}
            if inferred:
                edge["inferred"] = inferred
            edges.append(edge)
            nodes[child] = _Node(child, "minted", level, eid)
            nxt.append(child)
        nxt += _link_same_secret(case, nodes, nxt)
        frontier = nxt
        if not frontier:
            break
    if depth > 0:
        edges += _same_identity(case, nodes)
    return edges


#: Kinds of credential a person or workload creates for itself (not the OAuth tokens a client is issued).
_CREATED_KINDS = ("api-key", "pat", "aws-key", "client-secret", "vault-token", "private-key")


def _same_identity(case: Case, nodes: dict[int, _Node]) -> list[dict[str, Any]]:
    """Keys and tokens created by the identity behind the reach while the reach was in use (CloudTrail
    CreateAccessKey, Okta system.api_token.create, a GitHub token created): inferred `minted`, one level."""
    c = case.conn
    ids = [n.id for n in nodes.values() if n.role != "parent"]
    principals: set[str] = set()
    lo = hi = None
    for chunk in _chunks(ids):
        for principal, first, last in c.execute(
                f"SELECT principal, first_seen, last_used FROM credentials WHERE id IN ({_qs(chunk)})", chunk):
            if principal:
                principals.add(principal)
            if first:
                lo = first if lo is None or first < lo else lo
            if last:
                hi = last if hi is None or last > hi else hi
    if not principals or lo is None or hi is None:
        return []
    kinds = ",".join(f"'{k}'" for k in _CREATED_KINDS)
    edges = []
    names = sorted(principals)
    # Driven from the (few) credentials of a created kind, then their minting events through events_subject.
    for child, eid, action, time, principal in c.execute(
            "SELECT e.subject_credential_id, e.id, e.action, e.time, e.principal FROM credentials AS k"
            " CROSS JOIN events AS e ON e.subject_credential_id = k.id"
            f" WHERE k.kind IN ({kinds}) AND e.action = 'token.issue' AND e.ts BETWEEN ? AND ?"
            f" AND e.principal IN ({_qs(names)}) ORDER BY e.ts", (to_micros(lo), to_micros(hi), *names)):
        if child in nodes:
            continue
        nodes[child] = _Node(child, "minted", 1, eid)
        edges.append({"parent": None, "child": child, "action": action, "event": eid, "time": time,
                      "inferred": f"created by {principal}, the identity behind the reach, while it was in use"})
    return edges


def _exposure(case: Case, nodes: dict[int, _Node], reach: list[int], segments: set[str],
              objects_read: list[dict[str, Any]], window: tuple[str, list[int]]) -> list[dict[str, Any]]:
    """Credentials found in data (`stanch ingest-data`) whose record the reach read: by record id in a resource
    the reach called, or by record type among the objects it read (a `SELECT … FROM Case` reads every Case).
    Each becomes an `exposed` credential with the reads that prove it."""
    types = {o["object"] for o in objects_read}
    out: list[dict[str, Any]] = []
    # Credentials found in the payload of an event in reach (a token in a request body, a key in a response).
    for rowid, cid, fld, shape, preview, line, path, event_id in case.conn.execute(
            "SELECT x.rowid, x.credential_id, x.field, x.shape, x.preview, x.line, s.path, x.event_id FROM exposures"
            " AS x JOIN events AS ev ON ev.rowid = x.event_rowid LEFT JOIN sources AS s ON s.id = x.source_id"
            " WHERE x.event_rowid IS NOT NULL AND ev.credential_id IN (SELECT cid FROM temp.blast_reach)"
            " ORDER BY x.rowid").fetchall():
        if cid in nodes and nodes[cid].role != "exposed":
            continue
        if cid not in nodes:
            nodes[cid] = _Node(cid, "exposed", 0, f"found in the payload of event {event_id} ({fld or 'text'})")
        out.append({"credential": cid, "preview": preview, "shape": shape,
                    "found_in": {"file": path, "line": line, "object": None, "object_type": None, "field": fld},
                    "matched_by": "event payload", "read_by": [event_id], "exposure_row": rowid})
    rows = case.conn.execute(
        "SELECT x.rowid, x.credential_id, x.object, x.object_type, x.field, x.shape, x.preview, x.line, s.path"
        " FROM exposures AS x LEFT JOIN sources AS s ON s.id = x.source_id ORDER BY x.rowid").fetchall()
    where, wargs = window
    for rowid, cid, obj, otype, fld, shape, preview, line, path in rows:
        by_id = obj is not None and obj in segments
        by_type = otype is not None and otype in types
        if not (by_id or by_type) or cid in nodes and nodes[cid].role != "exposed":
            continue
        reads: list[str] = []
        if by_id:
            for chunk in _chunks(reach):
                reads += [r[0] for r in case.conn.execute(
                    f"SELECT id FROM events WHERE credential_id IN ({_qs(chunk)}) AND instr(resource, ?) > 0{where}"
                    " ORDER BY ts LIMIT ?", [*chunk, obj, *wargs, SAMPLE_EVENTS])]
        found_in = {"file": path, "line": line, "object": obj, "object_type": otype, "field": fld}
        how = f"record {obj} was read" if by_id else f"its {otype} records were read"
        if cid not in nodes:
            nodes[cid] = _Node(cid, "exposed", 0, f"found in {path}:{line} ({fld or 'text'}); {how}")
        out.append({"credential": cid, "preview": preview, "shape": shape, "found_in": found_in,
                    "matched_by": "record id" if by_id else "record type", "read_by": reads[:SAMPLE_EVENTS],
                    "exposure_row": rowid})
    return out


#: How close in time a token endpoint call and an unattributed grant must be to be joined (seconds).
INFER_WINDOW_S = 5
_INFER_WHY = (f"minted at the token endpoint from the same address within {INFER_WINDOW_S} s of this credential's "
              "use there (the grant event does not name the refresh token)")


_U_TOKEN_USE = TOKEN_USE.replace("action", "u.action").replace("resource", "u.resource")


def _inferred_children(case: Case, frontier: list[int]) -> list[tuple[int, int, str, str, str, str | None]]:
    """Grants that name no parent (an IdP logs the access token it mints, not the refresh token it took) joined
    to a credential in reach that was used at a token endpoint from the same address within INFER_WINDOW_S."""
    span = INFER_WINDOW_S * 1_000_000
    out: list[tuple[int, int, str, str, str, str | None]] = []
    for chunk in _chunks(frontier):
        out += [(*r, _INFER_WHY) for r in case.conn.execute(
            "SELECT DISTINCT u.credential_id, g.subject_credential_id, g.id, g.action, g.time FROM events AS u"
            " JOIN events AS g ON g.ts BETWEEN u.ts - ? AND u.ts + ? AND g.src_ip = u.src_ip"
            f" WHERE u.credential_id IN ({_qs(chunk)}) AND {_U_TOKEN_USE}"
            " AND u.src_ip IS NOT NULL"
            " AND g.credential_id IS NULL AND g.subject_credential_id IS NOT NULL"
            " AND g.action IN ('token.issue', 'token.refresh')", [span, span, *chunk])]
    return out


def _inferred_parents(case: Case, roots: list[int]) -> list[tuple[int, int, str, str, str, str]]:
    """For seed credentials minted by a grant that names no parent: the credentials used at a token endpoint
    from the grant's address within INFER_WINDOW_S (the refresh token that minted them)."""
    c = case.conn
    grants: list[tuple[int, int, str, str, str, str]] = []
    for chunk in _chunks(roots):
        grants += c.execute(
            f"SELECT subject_credential_id, ts, src_ip, id, action, time FROM events WHERE subject_credential_id IN"
            f" ({_qs(chunk)}) AND credential_id IS NULL AND src_ip IS NOT NULL AND action IN ('token.issue',"
            " 'token.refresh')", chunk).fetchall()
    span = INFER_WINDOW_S * 1_000_000
    out: list[tuple[int, int, str, str, str, str]] = []
    for child, ts, ip, eid, action, time in grants:
        for (parent,) in c.execute(
                "SELECT DISTINCT credential_id FROM events WHERE ts BETWEEN ? AND ? AND src_ip = ? AND credential_id"
                f" IS NOT NULL AND credential_id != ? AND {TOKEN_USE}", (ts - span, ts + span, ip, child)):
            out.append((parent, child, eid, action, time, _INFER_WHY))
    return out


def _credentials(case: Case, nodes: dict[int, _Node]) -> list[dict[str, Any]]:
    ids = list(nodes)
    keys = _keys_of(case, ids)
    out: list[dict[str, Any]] = []
    for chunk in _chunks(ids):
        for r in case.conn.execute(f"SELECT {', '.join(_COLS)} FROM credentials WHERE id IN ({_qs(chunk)})", chunk):
            d = dict(zip(_COLS, r, strict=True))
            n = nodes[d["id"]]
            d["role"], d["depth"], d["via"], d["same_as"] = n.role, n.depth, n.via, n.same_as
            d["keys"] = keys.get(d["id"], [])
            d["ttl_seconds"] = _ttl(d["issued_at"], d["expires_at"])
            d["binding"] = d["binding"] or "none"
            out.append(d)
    order = {"seed": 0, "same-secret": 1, "parent": 2, "minted": 3, "exposed": 4}
    out.sort(key=lambda d: (order[d["role"]], d["depth"], d["id"]))
    return out


def _ttl(issued: str | None, expires: str | None) -> int | None:
    if not issued or not expires:
        return None
    try:
        return (to_micros(expires) - to_micros(issued)) // 1_000_000
    except ValueError:
        return None


_SEGMENT_SPLIT = re.compile(r"[/?&=,+ ]+")


def _runtime(case: Case, reach: list[int], window: tuple[str, list[int]]) -> dict[str, Any]:
    """Calls grouped by resource pattern, objects and secrets read, exports: aggregates in SQLite over the
    derived columns ingest stored (`events.pattern`, `events.objects`; see casefile.patterns)."""
    where, wargs = window
    c = case.conn
    lifecycle = ",".join(f"'{a}'" for a in _LIFECYCLE)
    c.execute("CREATE TEMP TABLE IF NOT EXISTS blast_reach(cid INTEGER PRIMARY KEY)")
    c.execute("DELETE FROM temp.blast_reach")
    c.executemany("INSERT OR IGNORE INTO temp.blast_reach(cid) VALUES (?)", ((x,) for x in reach))
    scope = f"credential_id IN (SELECT cid FROM temp.blast_reach) AND action NOT IN ({lifecycle}){where}"
    agg = "count(*), min(time), max(time), sum(bytes), sum(rows), sum(outcome = 'failure'), min(rowid)"
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    objects: dict[str, dict[str, Any]] = {}
    addrs: dict[tuple[str, str], tuple[set[str], set[str]]] = {}  # (method, pattern) -> addresses, agents
    if not where:
        # No time window: the rollups ingest keeps (casefile.schema, v8) already hold each group.
        rows = c.execute(
            "SELECT vendor, action, method, pattern, objects, sum(n), min(lo), max(hi), sum(bytes), sum(rows),"
            " sum(failures), min(first_rowid), max(last_rowid) FROM rollup WHERE credential_id IN"
            " (SELECT cid FROM temp.blast_reach) GROUP BY 1, 2, 3, 4, 5").fetchall()
        for method, pattern, ip, ua in c.execute(
                "SELECT DISTINCT method, pattern, src_ip, user_agent FROM rollup_addr WHERE credential_id IN"
                " (SELECT cid FROM temp.blast_reach)"):
            ips, uas = addrs.setdefault((method, pattern), (set(), set()))
            if ip:
                ips.add(ip)
            if ua:
                uas.add(ua)
    else:
        rows = c.execute(
            "SELECT vendor, action, coalesce(method, ''), coalesce(pattern, ''), coalesce(objects, ''), count(*),"
            " min(ts), max(ts), sum(bytes), sum(rows), sum(outcome = 'failure'), min(rowid), max(rowid),"
            f" group_concat(DISTINCT src_ip), group_concat(DISTINCT user_agent) FROM events WHERE {scope}"
            " GROUP BY 1, 2, 3, 4, 5", wargs).fetchall()
    # Evidence per group: its first and last event by rowid; `stanch events` lists them all.
    for row in rows:
        vendor, action, method, pattern, objs, n, lo, hi, nbytes, nrows, failed, rowid, last_rowid = row[:13]
        first, last = micros_to_iso(lo), micros_to_iso(hi)
        key = (vendor, action, method or None, pattern)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"vendor": vendor, "action": action, "method": method or None, "resource": pattern,
                               "count": 0, "failures": 0, "first": first, "last": last, "bytes": None, "rows": None,
                               "ips": set(), "user_agents": set(), "_rowids": []}
        _merge(g, n, first, last, nbytes, nrows, failed, rowid)
        if last_rowid != rowid and len(g["_rowids"]) < SAMPLE_EVENTS:
            g["_rowids"].append(last_rowid)
        if len(row) > 13:
            g["ips"].update(_split(row[13]))
            g["user_agents"].update(_split(row[14]))
        else:
            ips, uas = addrs.get((method, pattern), (set(), set()))
            g["ips"].update(ips)
            g["user_agents"].update(uas)
        for obj in (objs or "").split(","):
            if obj:
                _tally(objects, obj, n, first, last, rowid, failed, nrows)
    calls = sorted(groups.values(), key=lambda g: (-g["count"], g["resource"]))
    for g in calls:
        g["ips"], g["user_agents"] = sorted(g["ips"]), sorted(g["user_agents"])
    if OBJECT_READERS and case.meta().get("objects_pending") == "1":
        # events stored before objects were derived (a case migrated to v7): read theirs now
        for vendor, method, resource, n, first, last, _nbytes, nrows, failed, rowid in c.execute(
                f"SELECT vendor, method, resource, {agg} FROM events WHERE {scope} AND objects IS NULL"
                " AND resource IS NOT NULL GROUP BY 1, 2, 3", wargs):
            for obj in {o for reader in OBJECT_READERS for o in reader(vendor, method, resource)}:
                _tally(objects, obj, n, first, last, rowid, failed, nrows)
    secrets: dict[str, dict[str, Any]] = {}
    for g in calls:  # a secret's path has no ids to fold: its pattern is the path
        if g["action"] == "secret.read":
            _tally(secrets, g["resource"], g["count"], g["first"], g["last"], g["_rowids"][0], g["failures"])
    exports: dict[str, dict[str, Any]] = {}
    for g in calls:
        if g["action"] == "data.export":
            _tally(exports, g["resource"], g["count"], g["first"], g["last"], g["_rowids"][0], g["failures"], g["rows"])
    segments: set[str] = set()  # path segments and query values the reach touched: record ids, for exposure
    if c.execute("SELECT 1 FROM exposures LIMIT 1").fetchone() is not None:
        for (resource,) in c.execute(f"SELECT DISTINCT resource FROM events WHERE {scope} AND resource IS NOT NULL",
                                     wargs):
            segments.update(_SEGMENT_SPLIT.split(resource))
    _attach_samples(case, [*calls, *objects.values(), *secrets.values(), *exports.values()])
    return {
        "calls": calls,
        "objects_read": _named(objects, "object"),
        "secrets_read": _named(secrets, "path"),
        "exports": _named(exports, "resource"),
        "_segments": segments,
        "totals": {"events": sum(g["count"] for g in calls), "failures": sum(g["failures"] for g in calls),
                   "ips": len({ip for g in calls for ip in g["ips"]}),
                   "user_agents": len({ua for g in calls for ua in g["user_agents"]})},
    }


def _merge(g: dict[str, Any], n: int, first: str, last: str, nbytes: int | None, nrows: int | None,
           failed: int | None, rowid: int) -> None:
    g["count"] += n
    g["failures"] += int(failed or 0)
    g["first"] = min(g["first"], first)
    g["last"] = max(g["last"], last)
    if nbytes is not None:
        g["bytes"] = (g["bytes"] or 0) + nbytes
    if nrows is not None:
        g["rows"] = (g["rows"] or 0) + nrows
    if len(g["_rowids"]) < SAMPLE_EVENTS:
        g["_rowids"].append(rowid)


def _tally(into: dict[str, dict[str, Any]], name: str, n: int, first: str, last: str, rowid: int,
           failed: int | None, nrows: int | None = None) -> None:
    g = into.get(name)
    if g is None:
        g = into[name] = {"count": 0, "failures": 0, "first": first, "last": last, "bytes": None, "rows": None,
                          "_rowids": []}
    _merge(g, n, first, last, None, nrows, failed, rowid)


def _named(groups: dict[str, dict[str, Any]], label: str) -> list[dict[str, Any]]:
    out = []
    for name, g in sorted(groups.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
        d = {label: name, **g}
        d.pop("bytes", None)
        out.append(d)
    return out


def _attach_samples(case: Case, groups: list[dict[str, Any]]) -> None:
    """Replace each group's sample rowids by event ids (one query for all)."""
    rowids = sorted({r for g in groups for r in g["_rowids"]})
    ids: dict[int, str] = {}
    for chunk in _chunks(rowids):
        ids.update(case.conn.execute(f"SELECT rowid, id FROM events WHERE rowid IN ({_qs(chunk)})", chunk))
    for g in groups:
        g["events"] = [ids[r] for r in sorted(g.pop("_rowids")) if r in ids]


def _split(text: str | None) -> list[str]:
    return [t for t in (text or "").split(",") if t]


def _static(case: Case, creds: list[dict[str, Any]], reach: list[int]) -> dict[str, Any]:
    c = case.conn
    in_reach = set(reach)
    apps: dict[str, dict[str, Any]] = {}
    for d in creds:
        if d["role"] == "parent" or not d["client"]:
            continue
        a = apps.setdefault(d["client"], {"client": d["client"], "issuers": set(), "principals": set(),
                                           "scopes": set(), "credentials_in_reach": [], "other_credentials": 0,
                                           "other_sample": []})
        a["issuers"].add(d["issuer"] or "")
        if d["principal"]:
            a["principals"].add(d["principal"])
        a["scopes"].update((d["scopes"] or "").split())
        a["credentials_in_reach"].append(d["id"])
    for name, a in apps.items():
        others = [r[0] for r in c.execute("SELECT id FROM credentials WHERE client = ? ORDER BY id", (name,))
                  if r[0] not in in_reach]
        a["other_credentials"] = len(others)
        a["other_sample"] = others[:SAMPLE_EVENTS]
        a["issuers"] = sorted(i for i in a["issuers"] if i)
        a["principals"] = sorted(a["principals"])
        a["scopes"] = sorted(s for s in a["scopes"] if s)
    tenants = sorted({d["issuer"] for d in creds if d["issuer"] and d["role"] != "parent"})
    principals: dict[str, list[int]] = {}
    for d in creds:
        if d["principal"] and d["role"] != "parent":
            principals.setdefault(d["principal"], []).append(d["id"])
    bindings: dict[str, int] = {}
    for d in creds:
        if d["role"] != "parent":
            bindings[d["binding"]] = bindings.get(d["binding"], 0) + 1
    return {
        "apps": sorted(apps.values(), key=lambda a: a["client"]),
        "tenants": tenants,
        "principals": [{"principal": p, "credentials": ids} for p, ids in sorted(principals.items())],
        "bindings": bindings,
    }


def _revocation_set(creds: list[dict[str, Any]], static: dict[str, Any], as_of: str) -> dict[str, Any]:
    """One item per secret (the views of one secret in several systems are one item, acted on through the
    connector that needs no raw secret when there is one); secrets already dead or past their expiry are
    counted, not listed."""
    reasons = {"seed": "the seed credential", "same-secret": "the seed credential",
               "parent": "minted a credential in reach: whoever holds it can mint more",
               "minted": "minted from a credential in reach",
               "exposed": "exposed in data a credential in reach read"}
    by_id = {d["id"]: d for d in creds}

    def root(cid: int) -> int:
        seen = set()
        while by_id[cid]["same_as"] is not None and by_id[cid]["same_as"] in by_id and cid not in seen:
            seen.add(cid)
            cid = by_id[cid]["same_as"]
        return cid

    groups: dict[int, list[dict[str, Any]]] = {}
    for d in creds:
        groups.setdefault(root(d["id"]), []).append(d)
    items: list[dict[str, Any]] = []
    skipped = {"revoked": 0, "expired": 0}
    for members in groups.values():
        if any(m["status"] == "revoked-verified" for m in members):
            skipped["revoked"] += 1
            continue
        expiries = [m["expires_at"] for m in members if m["expires_at"]]
        expires = max(expiries) if expiries else None
        if expires and _before(expires, as_of):
            skipped["expired"] += 1
            continue
        hows = [(h, m) for m in members if (h := revoke_how(m)) is not None]
        hows.sort(key=lambda hm: (hm[0].needs_raw_secret, hm[1]["id"]))
        first = members[0]
        kind = hows[0][1]["kind"] if hows else first["kind"]
        item: dict[str, Any] = {
            "credentials": [m["id"] for m in members], "kind": kind, "role": first["role"],
            "preview": next((m["preview"] for m in members if m["preview"]), None),
            "keys": [k for m in members for k in m["keys"]][:6],
            "reason": reasons[first["role"]] + (f": {first['via']}" if first["role"] == "exposed" else ""),
            "client": next((m["client"] for m in members if m["client"]), None),
            "principal": next((m["principal"] for m in members if m["principal"]), None),
            "expires_at": expires,
        }
        if hows:
            item.update(asdict(hows[0][0]))
        else:
            item.update({"connector": None, "verb": None, "target": None, "needs_raw_secret": True,
                         "reversible": False, "note": "no connector registered for this credential's keys; revoke "
                                                      "it at its issuer by hand"})
        items.append(item)
    for app in static["apps"]:
        if app["other_credentials"]:
            items.append({"credentials": [], "kind": "app", "role": "app", "client": app["client"],
                          "reason": f"{app['other_credentials']} other credentials of this client are not in reach; "
                                    "if the client secret is exposed, rotate it",
                          "connector": None, "verb": "review-client", "target": app["client"],
                          "needs_raw_secret": False, "reversible": False, "note": ""})
    items.sort(key=lambda i: (i["reason"] != reasons["seed"], i["kind"] == "app", i["needs_raw_secret"]))
    return {"as_of": as_of, "items": items, "not_listed": skipped}


def _before(a: str, b: str) -> bool:
    try:
        return to_micros(a) < to_micros(b)
    except ValueError:
        return False


def _qs(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


__all__ = ["OBJECT_READERS", "REVOKERS", "RevokeHow", "blast", "register_object_reader", "register_revoker",
           "resolve_seed", "resource_pattern", "revoke_how", "same_secret_keys"]
