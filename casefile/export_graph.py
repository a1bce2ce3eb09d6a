"""Graph exports of the blast radius: BloodHound OpenGraph JSON, Graphviz DOT and a Mermaid flowchart of one
graph, and the revocation set as JSON. Written from what the case holds (fingerprints and masked previews, never
a raw token) to a temporary file renamed into place (mode 0600); every format succeeds on any case.

What the graph covers (`radius`):

- **with a seed**: the blast radius of that seed (`casefile.blast.blast`, same seed syntax as `stanch blast`, same
  depth, window and `as_of`);
- **without a seed, the whole case**: the union of the blast radii of every *flagged* credential — the subjects of the
  latest findings run (`credential:N`, `app:<client>`, `principal:<id>`; by severity, highest first) and the
  credentials of every plan — at most `max_seeds` (MAX_SEEDS) of them; the case node says how many were left out.
  Nothing flagged (findings never ran, no plan) means a graph with the case node only and an empty revocation
  set: "revoke everything in the case" is never the answer, run `stanch findings` first. A case-wide map of every
  credential is `stanch credentials`, not a blast radius.

The graph (one model, three renderings). Every edge points the way reach goes — whoever holds the start reaches the
end — so BloodHound's path finding from a seed walks the blast radius; kinds are prefixed `Stanch` so none reuses a
built-in kind:

    nodes  StanchCase, StanchCredential, StanchApp, StanchPrincipal, StanchTenant, StanchSecretPath,
           StanchObjectType, StanchResource, StanchRecord, StanchConnector
    edges  StanchSeed        case -> seed credential
           StanchFlagged     case -> flagged credential, app or principal
           StanchMinted      parent credential -> credential minted from it
           StanchCreated     principal -> key it created while the reach was in use
           StanchSameSecret  credential -> its view in another system (same secret by hash)
           StanchExposes     record -> credential found in it
           StanchReadRecord  credential -> record it read
           StanchContains    object type -> record of that type
           StanchReadSecret  credential -> secret path
           StanchExported    credential -> export resource
           StanchReadObject  credential -> object type read
           StanchCanRevoke   connector -> credential (from the revocation set: verb, target, raw secret needed)
           StanchIssuedTo    credential -> app (OAuth client)
           StanchActsAs      credential -> principal
           StanchIssuedBy    credential -> tenant (issuer)
           StanchCalled      credential -> resource pattern (vendor, method, path with ids folded)

`StanchCalled` keeps the MAX_CALLS_PER_CREDENTIAL busiest resource patterns of each credential (the credential's
`calls_not_shown` counts the rest); secrets, objects and exports are never capped. DOT and Mermaid are pictures:
they show at most MAX_PICTURE_NODES nodes (case, seeds and flagged nodes first; resource patterns last) and
MAX_PICTURE_EDGES edges (lineage and exposure first, calls last; Mermaid renders no more than 500 by default), and
say so in a comment when they drop some.

Node ids: BloodHound ids may not contain `:`, and our keys do (`sha256:…`, `okta-token:…`). A node's id is its key
percent-encoded (RFC 3986, `urllib.parse.quote(key, safe="/")`: every byte but unreserved characters and `/` becomes
`%XX`), so `sha256:ab12…` is `sha256%3Aab12…`; `decode_id` (`urllib.parse.unquote`) gives the key back, and the
node's `key` property holds it too. A credential's key is its full `sha256:` key when it has one (so the same
secret gets the same id in every case uploaded), else its smallest key. Property names are lowercase; nothing
case-sensitive relies on `name` (BloodHound upper-cases it on ingest; `displayname` keeps the case); no `objectid`,
no `lastseen`.

The revocation-set JSON: `format`, `stanch_version`, `case` (title, created_at), `seed` (or `seeds` for the whole
case), `window`, `depth`, `as_of`, `items` (blast's revocation items; for the whole case one item per secret across
the radii, each naming the `seeds` that brought it in) and `not_listed` (from a seed: blast's count of secrets
already revoked or expired; for the whole case the same count per credential), with sorted keys so two exports of
one case diff cleanly.

Untrusted text (principals, client ids, paths, previews) reaches the pictures as literal text only: in DOT inside a
double-quoted string (backslash and quote escaped, control characters made spaces); in Mermaid inside a quoted label
where everything but `[A-Za-z0-9 .,:/_@+=-]` becomes a `#NNN;` entity code. Node ids in the pictures are `n0`, `n1`…

Revocation needs the connectors' revokers registered (`import connectors`, as the CLI does); without them the
revocation set says "no connector registered" for every item and there are no StanchCanRevoke edges.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson

from casefile.atomic import atomic_write
from casefile.blast import DEFAULT_DEPTH, blast
from casefile.case import APP_VERSION, Case, CaseError
from casefile.timeutil import micros_to_iso, now_iso, to_micros

GRAPH_FORMATS = ("opengraph", "dot", "mermaid", "revocation-set")
SOURCE_KIND = "Stanch"
MAX_SEEDS = 100
MAX_CALLS_PER_CREDENTIAL = 20
MAX_PICTURE_NODES = 250
MAX_PICTURE_EDGES = 500  # Mermaid's default `maxEdges`: a flowchart with more does not render
_LABEL_MAX = 72
_SEVERITIES = ("info", "low", "medium", "high", "critical")
_ROLE_RANK = {"seed": 0, "same-secret": 1, "minted": 2, "exposed": 3, "parent": 4}
_LIFECYCLE = ("token.issue", "token.refresh", "token.revoke", "token.reuse")

# node type -> (OpenGraph kind, picture colour)
NODE_KINDS: dict[str, tuple[str, str]] = {
    "case": ("StanchCase", "#eeeeee"),
    "credential": ("StanchCredential", "#f6d5d5"),
    "app": ("StanchApp", "#dbe9f6"),
    "principal": ("StanchPrincipal", "#e3f1dc"),
    "tenant": ("StanchTenant", "#ece3f5"),
    "connector": ("StanchConnector", "#fff2cc"),
    "secret": ("StanchSecretPath", "#fbe3c9"),
    "object": ("StanchObjectType", "#d9f2f2"),
    "record": ("StanchRecord", "#f2f2d9"),
    "resource": ("StanchResource", "#f4f4f4"),
}
_TYPE_ORDER = {t: i for i, t in enumerate(NODE_KINDS)}
# In the order a picture keeps them when it must drop some.
EDGE_KINDS = ("StanchSeed", "StanchFlagged", "StanchMinted", "StanchCreated", "StanchSameSecret", "StanchExposes",
              "StanchReadRecord", "StanchContains", "StanchReadSecret", "StanchExported", "StanchReadObject",
              "StanchCanRevoke", "StanchIssuedTo", "StanchActsAs", "StanchIssuedBy", "StanchCalled")


def encode_id(key: str) -> str:
    """A node key as an OpenGraph node id: percent-encoded, so it holds no `:` (reversible: `decode_id`)."""
    return quote(key, safe="/")


def decode_id(node_id: str) -> str:
    """The key a node id encodes."""
    return unquote(node_id, errors="strict")


# ------------------------------------------------------------------------------------------------ model


@dataclass(slots=True)
class Node:
    key: str
    type: str  # a NODE_KINDS key
    label: list[str]  # lines, untrusted text: each renderer escapes it
    props: dict[str, Any] = field(default_factory=dict)
    rank: tuple[Any, ...] = ()  # order among nodes of its type (pictures keep the first ones)


@dataclass(slots=True)
class Edge:
    kind: str
    start: str  # node keys
    end: str
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], Edge] = field(default_factory=dict)

    def node(self, key: str, type_: str, label: list[str], rank: tuple[Any, ...] = (), **props: Any) -> Node:
        """Add the node, or fill in what an earlier add left empty."""
        n = self.nodes.get(key)
        if n is None:
            n = self.nodes[key] = Node(key, type_, label, {}, rank)
        for k, v in props.items():
            if v is not None and n.props.get(k) is None:
                n.props[k] = v
        return n

    def update(self, key: str, **props: Any) -> None:
        """Fill in properties of a node already added (a key not in the graph is ignored)."""
        n = self.nodes.get(key)
        if n is not None:
            for k, v in props.items():
                if v is not None and n.props.get(k) is None:
                    n.props[k] = v

    def edge(self, kind: str, start: str, end: str, **props: Any) -> Edge:
        e = self.edges.get((kind, start, end))
        if e is None:
            e = self.edges[(kind, start, end)] = Edge(kind, start, end, {})
        for k, v in props.items():
            if v is not None and e.props.get(k) is None:
                e.props[k] = v
        return e

    def sorted_nodes(self) -> list[Node]:
        return sorted(self.nodes.values(), key=lambda n: (_TYPE_ORDER[n.type], n.rank, n.key))

    def sorted_edges(self) -> list[Edge]:
        return sorted(self.edges.values(), key=lambda e: (EDGE_KINDS.index(e.kind), e.start, e.end))


# ------------------------------------------------------------------------------------------------ radius


@dataclass(slots=True)
class Radius:
    """What an export covers: one blast per seed (one seed, or the case's flagged ones)."""

    mode: str  # seed | case
    as_of: str
    window: dict[str, str | None]
    depth: int
    docs: list[dict[str, Any]]  # blast() answers, in seed order
    flags: dict[str, dict[str, Any]]  # subject (`credential:N`, `app:X`, `principal:X`) -> severity, rules, plans
    seeds_over_cap: int = 0
    seeds_unresolved: list[dict[str, str]] = field(default_factory=list)


def radius(case: Case, seed: str | None = None, *, raw_token: str | None = None, depth: int = DEFAULT_DEPTH,
           since: str | None = None, until: str | None = None, as_of: str | None = None,
           max_seeds: int = MAX_SEEDS) -> Radius:
    """The blast radius of `seed`, or without one the union of the flagged credentials' radii (module docstring).
    A seed that names nothing raises CaseError (one line, naming the fix)."""
    as_of = as_of or case.policy().get("as_of") or now_iso()
    flags = _flags(case)
    window: dict[str, str | None] = {"since": since, "until": until}
    if seed is not None or raw_token is not None:
        doc = blast(case, seed or "-", raw_token=raw_token, depth=depth, since=since, until=until, as_of=as_of)
        return Radius("seed", as_of, window, depth, [doc], flags)
    seeds = _flagged_seeds(flags)
    r = Radius("case", as_of, window, depth, [], flags, seeds_over_cap=max(0, len(seeds) - max_seeds))
    for subject, text in seeds[:max_seeds]:
        try:
            r.docs.append(blast(case, text, depth=depth, since=since, until=until, as_of=as_of))
        except CaseError as e:  # a subject the case no longer resolves (e.g. an app seen only in findings)
            r.seeds_unresolved.append({"subject": subject, "why": str(e)})
    return r


def _flags(case: Case) -> dict[str, dict[str, Any]]:
    """What marks a subject: the latest findings run (highest severity, rule ids, count) and plans."""
    from casefile import findings as findings_mod

    flags: dict[str, dict[str, Any]] = {}
    run = findings_mod.latest(case)
    for f in run["findings"] if run else []:
        subject = f["subject"]
        if not subject:
            continue
        d = flags.setdefault(subject, {"severity": None, "rules": [], "findings": 0, "plans": []})
        if d["severity"] is None or _sev(f["severity"]) > _sev(d["severity"]):
            d["severity"] = f["severity"]
        if f["rule_id"] not in d["rules"]:
            d["rules"].append(f["rule_id"])
        d["findings"] += 1
    for plan_id, cid in case.conn.execute(
            "SELECT DISTINCT plan_id, credential_id FROM plan_items WHERE credential_id IS NOT NULL"
            " ORDER BY plan_id, credential_id"):
        d = flags.setdefault(f"credential:{cid}", {"severity": None, "rules": [], "findings": 0, "plans": []})
        if plan_id not in d["plans"]:
            d["plans"].append(plan_id)
    return flags


def _sev(severity: str | None) -> int:
    return _SEVERITIES.index(severity) if severity in _SEVERITIES else -1


def _flagged_seeds(flags: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(subject, blast seed) for every flagged subject blast can start from: highest severity first, then planned."""
    out: list[tuple[str, str]] = []
    order = sorted(flags.items(), key=lambda kv: (-_sev(kv[1]["severity"]), not kv[1]["plans"], kv[0]))
    for subject, _ in order:
        kind, _, rest = subject.partition(":")
        if kind == "credential" and rest.isdigit():
            out.append((subject, rest))
        elif kind in ("app", "principal") and rest:
            out.append((subject, subject))
    return out


# ------------------------------------------------------------------------------------------------ graph


def build_graph(case: Case, r: Radius) -> Graph:
    """The graph of a radius (module docstring)."""
    g = Graph()
    meta = case.meta()
    case_key = f"case:{meta.get('created_at') or ''}"
    g.node(case_key, "case", ["case", meta.get("title") or Path(case.path).name], (),
           title=meta.get("title"), created_at=meta.get("created_at"), mode=r.mode, as_of=r.as_of, depth=r.depth,
           since=r.window["since"], until=r.window["until"], stanch_version=APP_VERSION,
           seed=r.docs[0]["seed"]["input"] if r.mode == "seed" else None,
           seeds_run=len(r.docs), seeds_over_cap=r.seeds_over_cap, seeds_unresolved=len(r.seeds_unresolved))

    creds: dict[int, dict[str, Any]] = {}
    for doc in r.docs:
        for d in doc["credentials"]:
            have = creds.get(d["id"])
            if have is None or (_ROLE_RANK[d["role"]], d["depth"]) < (_ROLE_RANK[have["role"]], have["depth"]):
                creds[d["id"]] = d
    ckey = {cid: _credential_key(d) for cid, d in creds.items()}

    for cid, d in creds.items():
        flag = r.flags.get(f"credential:{cid}", {})
        g.node(ckey[cid], "credential", [f"{d['kind'] or 'credential'} {cid}", d["preview"] or _short(ckey[cid]),
                                        d["role"] + (f", {flag['severity']}" if flag.get("severity") else "")],
               (_ROLE_RANK[d["role"]], d["depth"], cid),
               credential=cid, kind=d["kind"], preview=d["preview"], issuer=d["issuer"], client=d["client"],
               principal=d["principal"], scopes=(d["scopes"] or "").split() or None, issued_at=d["issued_at"],
               expires_at=d["expires_at"], first_seen=d["first_seen"], last_used=d["last_used"], status=d["status"],
               binding=d["binding"], role=d["role"], depth=d["depth"], via=d["via"], keys=d["keys"] or None,
               ttl_seconds=d["ttl_seconds"], **_flag_props(flag))
        if d["client"]:
            g.node(f"app:{d['client']}", "app", ["app", d["client"]], (), client=d["client"])
            g.edge("StanchIssuedTo", ckey[cid], f"app:{d['client']}")
        if d["principal"]:
            g.node(f"principal:{d['principal']}", "principal", ["principal", d["principal"]], (),
                   principal=d["principal"])
            g.edge("StanchActsAs", ckey[cid], f"principal:{d['principal']}")
        if d["issuer"]:
            g.node(f"issuer:{d['issuer']}", "tenant", ["issuer", d["issuer"]], (), issuer=d["issuer"])
            g.edge("StanchIssuedBy", ckey[cid], f"issuer:{d['issuer']}")
        if d["same_as"] is not None and d["same_as"] in ckey:
            g.edge("StanchSameSecret", ckey[d["same_as"]], ckey[cid], via=d["via"])

    exposures: dict[tuple[int, str], dict[str, Any]] = {}  # one exposure is in several radii: its readers found once
    for doc in r.docs:
        for app in doc["static"]["apps"]:
            g.node(f"app:{app['client']}", "app", ["app", app["client"]], (), client=app["client"],
                   issuers=app["issuers"] or None, scopes=app["scopes"] or None,
                   principals=app["principals"] or None, other_credentials=app["other_credentials"])
        for e in doc["lineage"]:
            child = creds.get(e["child"])
            if child is None:
                continue
            props = {"action": e["action"], "event": e["event"], "time": e["time"], "inferred": e.get("inferred")}
            if e["parent"] is not None and e["parent"] in ckey:
                g.edge("StanchMinted", ckey[e["parent"]], ckey[e["child"]], **props)
            elif e["parent"] is None and child["principal"]:
                g.edge("StanchCreated", f"principal:{child['principal']}", ckey[e["child"]], **props)
        for x in doc["exposure"]:
            have = exposures.setdefault((x["exposure_row"], x["matched_by"]), {**x, "read_by": []})
            have["read_by"] += [e for e in x["read_by"] if e not in have["read_by"]]
        if r.mode == "seed":
            for cid in doc["seed"]["credentials"]:
                if cid in ckey:
                    g.edge("StanchSeed", case_key, ckey[cid], seed=doc["seed"]["input"])
        _revocation_edges(g, doc["revocation_set"], ckey)

    reach = [cid for cid, d in creds.items() if d["role"] != "parent"]
    for x in exposures.values():
        _exposure(case, g, x, ckey, reach, r.window)
    _runtime(case, g, {cid: ckey[cid] for cid in reach}, r.window)

    for subject, flag in r.flags.items():
        kind, _, rest = subject.partition(":")
        key = (ckey.get(int(rest)) if kind == "credential" and rest.isdigit() else
               f"{kind}:{rest}" if kind in ("app", "principal") else None)
        if key is None or key not in g.nodes:
            continue
        g.update(key, **_flag_props(flag))
        if r.mode == "case":
            g.edge("StanchFlagged", case_key, key, **_flag_props(flag))
    return g


def _credential_key(d: dict[str, Any]) -> str:
    keys = sorted(d["keys"])
    full = [k for k in keys if k.startswith("sha256:")]
    return (full or keys or [f"credential:{d['id']}"])[0]


def _flag_props(flag: dict[str, Any]) -> dict[str, Any]:
    return {"severity": flag.get("severity"), "findings": flag.get("findings") or None,
            "rules": flag.get("rules") or None, "plans": flag.get("plans") or None}


def _short(key: str) -> str:
    return key if len(key) <= 28 else key[:27] + "…"


def _exposure(case: Case, g: Graph, x: dict[str, Any], ckey: dict[int, str], reach: list[int],
              window: dict[str, str | None]) -> None:
    """Record -> exposed credential; object type -> record; the credentials in reach that read the record."""
    if x["credential"] not in ckey:
        return
    where = x["found_in"]
    if x["matched_by"] == "event payload" and x["read_by"]:
        rkey, label = f"event:{x['read_by'][0]}", ["event payload", x["read_by"][0]]
    elif where.get("object"):
        rkey, label = f"record:{where.get('object_type') or ''}:{where['object']}", [
            "record", f"{where.get('object_type') or ''} {where['object']}".strip()]
    else:
        rkey, label = f"found:{where.get('file') or ''}:{where.get('line') or ''}", [
            "found in", f"{Path(where.get('file') or '').name}:{where.get('line') or ''}"]
    g.node(rkey, "record", label, (), object=where.get("object"), object_type=where.get("object_type"),
           file=where.get("file"), line=where.get("line"))
    g.edge("StanchExposes", rkey, ckey[x["credential"]], field=where.get("field"), shape=x["shape"],
           matched_by=x["matched_by"], file=where.get("file"), line=where.get("line"))
    if where.get("object_type"):
        okey = f"object:{where['object_type']}"
        g.node(okey, "object", ["object", where["object_type"]], (), object=where["object_type"])
        g.edge("StanchContains", okey, rkey)
    readers: list[int] = []
    if x["matched_by"] == "event payload":
        readers = [r[0] for r in case.conn.execute(
            "SELECT ev.credential_id FROM exposures AS x JOIN events AS ev ON ev.rowid = x.event_rowid"
            " WHERE x.rowid = ? AND ev.credential_id IS NOT NULL", (x["exposure_row"],))]
    elif x["matched_by"] == "record id" and where.get("object"):
        wsql, wargs = _window_sql(window)
        for chunk in _chunks(reach):
            readers += [r[0] for r in case.conn.execute(
                f"SELECT DISTINCT credential_id FROM events WHERE credential_id IN ({_qs(chunk)})"
                f" AND instr(resource, ?) > 0{wsql}", [*chunk, where["object"], *wargs])]
    for cid in sorted(set(readers)):
        if cid in ckey:
            g.edge("StanchReadRecord", ckey[cid], rkey, events=x["read_by"][:5] or None)


def _revocation_edges(g: Graph, rs: dict[str, Any], ckey: dict[int, str]) -> None:
    for item in rs["items"]:
        if item["kind"] == "app" and not item["credentials"]:
            g.update(f"app:{item['client']}", review_client=True)
            continue
        for cid in item["credentials"]:
            if cid not in ckey:
                continue
            g.update(ckey[cid], in_revocation_set=True, revoke_with=item["connector"] or "by hand",
                     revoke_verb=item["verb"], needs_raw_secret=item["needs_raw_secret"])
            if item["connector"]:
                conn_key = f"connector:{item['connector']}"
                g.node(conn_key, "connector", ["connector", item["connector"]], (), connector=item["connector"])
                g.edge("StanchCanRevoke", conn_key, ckey[cid], verb=item["verb"], target=item["target"],
                       needs_raw_secret=item["needs_raw_secret"], reversible=item["reversible"],
                       note=item["note"] or None)


def _runtime(case: Case, g: Graph, reach: dict[int, str], window: dict[str, str | None]) -> None:
    """Per credential in reach: secrets read, object types read, exports and the busiest resource patterns (the
    rollups ingest keeps; the events themselves when a window is set)."""
    wsql, wargs = _window_sql(window)
    lifecycle = ",".join(f"'{a}'" for a in _LIFECYCLE)
    ids = sorted(reach)
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(ids):
        if not wsql:
            rows += case.conn.execute(
                "SELECT credential_id, vendor, action, method, pattern, objects, sum(n), min(lo), max(hi),"
                f" sum(failures) FROM rollup WHERE credential_id IN ({_qs(chunk)}) AND action NOT IN ({lifecycle})"
                " GROUP BY 1, 2, 3, 4, 5, 6", chunk).fetchall()
        else:
            rows += case.conn.execute(
                "SELECT credential_id, vendor, action, coalesce(method, ''), coalesce(pattern, ''),"
                " coalesce(objects, ''), count(*), min(ts), max(ts), sum(outcome = 'failure') FROM events"
                f" WHERE credential_id IN ({_qs(chunk)}) AND action NOT IN ({lifecycle}){wsql}"
                " GROUP BY 1, 2, 3, 4, 5, 6", [*chunk, *wargs]).fetchall()
    calls: dict[int, dict[str, dict[str, Any]]] = {}
    for cid, vendor, action, method, pattern, objects, n, lo, hi, failed in rows:
        ck = reach[cid]
        span = {"count": n, "first": micros_to_iso(lo), "last": micros_to_iso(hi), "failures": int(failed or 0)}
        for obj in (objects or "").split(","):
            if obj:
                g.node(f"object:{obj}", "object", ["object", obj], (), object=obj)
                _add_span(g.edge("StanchReadObject", ck, f"object:{obj}"), span)
        if action == "secret.read" and pattern:
            g.node(f"secret:{pattern}", "secret", ["secret", pattern], (), path=pattern, vendor=vendor)
            _add_span(g.edge("StanchReadSecret", ck, f"secret:{pattern}"), span)
            continue
        rkey = f"resource:{vendor}:{method or ''}:{pattern or ''}"
        c = calls.setdefault(cid, {}).setdefault(rkey, {"vendor": vendor, "method": method, "pattern": pattern,
                                                         "actions": set(), "count": 0, "first": span["first"],
                                                         "last": span["last"], "failures": 0})
        c["actions"].add(action)
        c["count"] += n
        c["failures"] += span["failures"]
        c["first"], c["last"] = min(c["first"], span["first"]), max(c["last"], span["last"])
    for cid, per in calls.items():
        ranked = sorted(per.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
        shown = [kv for kv in ranked if "data.export" in kv[1]["actions"]]
        rest = [kv for kv in ranked if "data.export" not in kv[1]["actions"]]
        shown += rest[:MAX_CALLS_PER_CREDENTIAL]
        if len(rest) > MAX_CALLS_PER_CREDENTIAL:
            g.update(reach[cid], calls_not_shown=len(rest) - MAX_CALLS_PER_CREDENTIAL)
        for rkey, c in shown:
            what = f"{c['vendor']} {c['method'] or ''}".strip()
            g.node(rkey, "resource", [what, c["pattern"] or "-"], (-c["count"],), vendor=c["vendor"],
                   method=c["method"] or None, pattern=c["pattern"] or None)
            kind = "StanchExported" if "data.export" in c["actions"] else "StanchCalled"
            _add_span(g.edge(kind, reach[cid], rkey, actions=sorted(c["actions"])), c)


def _add_span(e: Edge, span: dict[str, Any]) -> None:
    p = e.props
    p["count"] = p.get("count", 0) + span["count"]
    p["failures"] = p.get("failures", 0) + span["failures"]
    p["first"] = min(p.get("first") or span["first"], span["first"])
    p["last"] = max(p.get("last") or span["last"], span["last"])


def _window_sql(window: dict[str, str | None]) -> tuple[str, list[int]]:
    where, args = "", []
    if window.get("since"):
        where += " AND ts >= ?"
        args.append(to_micros(str(window["since"])))
    if window.get("until"):
        where += " AND ts <= ?"
        args.append(to_micros(str(window["until"])))
    return where, args


def _qs(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


# ------------------------------------------------------------------------------------------------ revocation set


def revocation_set(case: Case, r: Radius) -> dict[str, Any]:
    """The radius's revocation set as an export document (module docstring)."""
    meta = case.meta()
    doc: dict[str, Any] = {
        "format": "stanch-revocation-set/1", "stanch_version": APP_VERSION,
        "case": {"title": meta.get("title"), "created_at": meta.get("created_at")},
        "window": r.window, "depth": r.depth, "as_of": r.as_of,
    }
    if r.mode == "seed":
        rs = r.docs[0]["revocation_set"]
        doc.update(seed=r.docs[0]["seed"], items=rs["items"], not_listed=rs["not_listed"])
        return doc
    # One item per secret across the radii: an item sharing a credential with an earlier one is that item (the
    # first radius's reason and verb stay; it gains the seed and any further view of the secret).
    items: list[dict[str, Any]] = []
    by_cred: dict[int, dict[str, Any]] = {}
    apps: dict[str | None, dict[str, Any]] = {}
    creds: dict[int, dict[str, Any]] = {}
    for d in r.docs:
        for c in d["credentials"]:
            creds.setdefault(c["id"], c)
        for item in d["revocation_set"]["items"]:
            have = (apps.get(item.get("client")) if not item["credentials"] else
                    next((by_cred[c] for c in item["credentials"] if c in by_cred), None))
            if have is None:
                have = {**item, "credentials": list(item["credentials"]), "seeds": []}
                items.append(have)
                if not item["credentials"]:
                    apps[item.get("client")] = have
            for c in item["credentials"]:
                if c not in have["credentials"]:
                    have["credentials"].append(c)
                by_cred[c] = have
            if d["seed"]["input"] not in have["seeds"]:
                have["seeds"].append(d["seed"]["input"])
    listed = set(by_cred)
    # Credentials in the union not listed: dead already, or past their expiry at as_of (counted per credential).
    not_listed = {"revoked": 0, "expired": 0}
    for cid, c in creds.items():
        if cid in listed:
            continue
        if c["status"] == "revoked-verified":
            not_listed["revoked"] += 1
        elif c["expires_at"] and _before(c["expires_at"], r.as_of):
            not_listed["expired"] += 1
    doc.update(seeds=[{**d["seed"], "flags": r.flags.get(_subject(d["seed"]), {})} for d in r.docs],
               seeds_over_cap=r.seeds_over_cap, seeds_unresolved=r.seeds_unresolved, items=items,
               not_listed=not_listed)
    return doc


def _subject(seed: dict[str, Any]) -> str:
    text = seed["input"]
    return f"credential:{text}" if text.isdigit() else text


def _before(a: str, b: str) -> bool:
    try:
        return to_micros(a) < to_micros(b)
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------ renderers


def opengraph(g: Graph) -> dict[str, Any]:
    """BloodHound OpenGraph payload: `metadata.source_kind`, `graph.nodes[]`, `graph.edges[]`."""
    nodes = []
    for n in g.sorted_nodes():
        name = " ".join(line for line in n.label if line)
        props = {"name": name, "displayname": name, "key": n.key, **n.props}
        nodes.append({"id": encode_id(n.key), "kinds": [NODE_KINDS[n.type][0]], "properties": _og_props(props)})
    edges = [{"kind": e.kind, "start": {"value": encode_id(e.start), "match_by": "id"},
              "end": {"value": encode_id(e.end), "match_by": "id"}, "properties": _og_props(e.props)}
             for e in g.sorted_edges()]
    return {"metadata": {"source_kind": SOURCE_KIND}, "graph": {"nodes": nodes, "edges": edges}}


def _og_props(props: dict[str, Any]) -> dict[str, Any]:
    """OpenGraph property values: string, number, boolean or a homogeneous array of them; no null, no objects."""
    out: dict[str, Any] = {}
    for k, v in props.items():
        if v is None or k == "objectid":
            continue
        if isinstance(v, set | tuple):
            v = sorted(v)
        if isinstance(v, list):
            if not v:
                continue
            if len({type(x) for x in v}) != 1 or not isinstance(v[0], str | int | float | bool):
                v = [str(x) for x in v]
        elif not isinstance(v, str | int | float | bool):
            v = str(v)
        out[k.lower()] = v
    return out


def _picture(g: Graph, cap: int, max_edges: int) -> tuple[list[Node], list[Edge], str]:
    """The nodes a picture shows (at most `cap`, by `_tier`), the edges between them (at most `max_edges`, in
    EDGE_KINDS order), and what it leaves out, said in words."""
    pinned = {e.end for e in g.edges.values() if e.kind in ("StanchSeed", "StanchFlagged")}
    nodes = sorted(g.nodes.values(), key=lambda n: (_tier(n, pinned), _TYPE_ORDER[n.type], n.rank, n.key))
    keep = {n.key for n in nodes[:cap]}
    edges = [e for e in g.sorted_edges() if e.start in keep and e.end in keep]
    left = [f"{len(nodes) - cap} more nodes" if len(nodes) > cap else "",
            f"{len(edges) - max_edges} more edges" if len(edges) > max_edges else ""]
    note = " and ".join(x for x in left if x)
    return nodes[:cap], edges[:max_edges], (f"; {note} not shown (the opengraph export has them all)" if note else "")


def _tier(n: Node, pinned: set[str]) -> int:
    """What a picture keeps first: the case, the seed and flagged nodes and exposed credentials; then apps,
    principals, tenants, connectors, secrets, objects and records (few, and they carry the structure); then the
    other credentials; resource patterns last."""
    if n.type == "case" or n.key in pinned or n.props.get("role") == "exposed":
        return 0
    return {"credential": 2, "resource": 3}.get(n.type, 1)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _clip(text: object) -> str:
    s = _CONTROL.sub(" ", "" if text is None else str(text))
    return s if len(s) <= _LABEL_MAX else s[:_LABEL_MAX - 1] + "…"


def dot_string(text: object) -> str:
    """Untrusted text as the inside of a DOT double-quoted string: backslash and quote escaped, no control
    characters (so no line break, no escString sequence, no way out of the quotes)."""
    return _clip(text).replace("\\", "\\\\").replace('"', '\\"')


_MM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,:/_@+=-")


def mermaid_text(text: object) -> str:
    """Untrusted text for inside a Mermaid quoted label: every character but [A-Za-z0-9 .,:/_@+=-] as an entity
    code (`#34;`), so no quote, bracket, pipe, `<`, `;`, `%` or backtick reaches the parser or the HTML."""
    return "".join(ch if ch in _MM_SAFE else f"#{ord(ch)};" for ch in _clip(text))


def render_dot(g: Graph, cap: int = MAX_PICTURE_NODES, max_edges: int = MAX_PICTURE_EDGES) -> tuple[str, int]:
    """The graph as Graphviz DOT, and how many nodes it shows."""
    nodes, edges, note = _picture(g, cap, max_edges)
    ids = {n.key: f"n{i}" for i, n in enumerate(nodes)}
    out = [f"// stanch blast-radius graph: {len(nodes)} nodes, {len(edges)} edges{note}",
           "digraph stanch {",
           '  graph [rankdir=LR, fontname="Helvetica", fontsize=10];',
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=8];']
    for n in nodes:
        label = "\\n".join(dot_string(line) for line in n.label if line)
        out.append(f'  {ids[n.key]} [label="{label}", fillcolor="{NODE_KINDS[n.type][1]}"];')
    for e in edges:
        out.append(f'  {ids[e.start]} -> {ids[e.end]} [label="{e.kind.removeprefix("Stanch")}"];')
    out.append("}")
    return "\n".join(out) + "\n", len(nodes)


def render_mermaid(g: Graph, cap: int = MAX_PICTURE_NODES, max_edges: int = MAX_PICTURE_EDGES) -> tuple[str, int]:
    """The graph as a Mermaid flowchart, and how many nodes it shows."""
    nodes, edges, note = _picture(g, cap, max_edges)
    ids = {n.key: f"n{i}" for i, n in enumerate(nodes)}
    out = ["flowchart LR", f"    %% stanch blast-radius graph: {len(nodes)} nodes, {len(edges)} edges{note}"]
    for n in nodes:
        label = "<br/>".join(mermaid_text(line) for line in n.label if line)
        out.append(f'    {ids[n.key]}["{label}"]')
    for e in edges:
        out.append(f"    {ids[e.start]} -->|{e.kind.removeprefix('Stanch')}| {ids[e.end]}")
    by_type: dict[str, list[str]] = {}
    for n in nodes:
        by_type.setdefault(n.type, []).append(ids[n.key])
    for t, members in by_type.items():
        out.append(f"    classDef {t} fill:{NODE_KINDS[t][1]},stroke:#555555")
        out.append(f"    class {','.join(members)} {t}")
    return "\n".join(out) + "\n", len(nodes)


# ------------------------------------------------------------------------------------------------ export


def export_graph(case: Case, fmt: str, out: str | os.PathLike[str], seed: str | None = None, *,
                 raw_token: str | None = None, depth: int = DEFAULT_DEPTH, since: str | None = None,
                 until: str | None = None, as_of: str | None = None, max_seeds: int = MAX_SEEDS) -> int:
    """Write `fmt` (one of GRAPH_FORMATS) of `seed`'s blast radius, or of the case's flagged credentials without a
    seed, to `out`. Returns the nodes written (opengraph: all; dot/mermaid: those shown) or, for `revocation-set`,
    the items. Raises ValueError for an unknown format, CaseError for a seed that names nothing."""
    if fmt not in GRAPH_FORMATS:
        raise ValueError(f"unknown graph format {fmt!r}; one of {', '.join(GRAPH_FORMATS)}")
    r = radius(case, seed, raw_token=raw_token, depth=depth, since=since, until=until, as_of=as_of,
               max_seeds=max_seeds)
    if fmt == "revocation-set":
        doc = revocation_set(case, r)
        body = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
        n = len(doc["items"])
    else:
        g = build_graph(case, r)
        if fmt == "opengraph":
            payload = opengraph(g)
            body = orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
            n = len(payload["graph"]["nodes"])
        else:
            text, n = render_dot(g) if fmt == "dot" else render_mermaid(g)
            body = text.encode()
    with atomic_write(out) as f:
        f.write(body)
    return n


__all__ = ["EDGE_KINDS", "GRAPH_FORMATS", "MAX_CALLS_PER_CREDENTIAL", "MAX_PICTURE_NODES", "MAX_SEEDS", "NODE_KINDS",
           "Edge", "Graph", "Node", "Radius", "build_graph", "decode_id", "dot_string", "encode_id", "export_graph",
           "mermaid_text", "opengraph", "radius", "render_dot", "render_mermaid", "revocation_set"]
