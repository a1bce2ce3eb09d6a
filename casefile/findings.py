"""Findings: rules as data (YAML) run over the canonical columns, each hit carrying its evidence events and
its OWASP NHI Top 10 (2025), NIST CSF 2.0 (two-digit ids) and MITRE ATT&CK ids.

A rule file holds one or more YAML documents:

    id: stanch-ioc-hit                 # unique
    title: Activity from a published IOC
    severity: high                     # info | low | medium | high | critical
    kind: ioc                          # which evaluator runs it (KINDS)
    params: {}                         # the kind's parameters (checked on load)
    nhi: [NHI3:2025]
    csf: [DE.CM-01, ID.RA-02]
    attack: [T1550.001]
    author: stanch                     # kept on every finding (Sigma's DRL requires it for its rules)
    description: …

The kinds are the engine (vendor-free); the files say what to look for. Built-in rules are in
`casefile/rules/`; vendor rule files ship with their connector and register their folder
(`register_rules_dir`); users add their own with `--rules DIR`. IOC packs (`casefile/rules/iocs/*.yaml`, or
`--iocs FILE`) are data too. Policy values (`baseline_days`, `ttl_max`, …) and the incident window come from
the case (`stanch case set`). stanch's own calls (its user agent) never raise a finding.

Findings are computed on a read connection and written afterwards, in one audited transaction per run.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from casefile import audit
from casefile.case import Case, CaseError
from casefile.timeutil import micros_to_iso, now_iso, to_micros

SEVERITIES = ("info", "low", "medium", "high", "critical")
EVIDENCE_KEEP = 50
BUILTIN_DIR = Path(__file__).parent / "rules"
#: stanch's own probe and pull calls carry this user agent prefix (connectors.http.USER_AGENT).
OWN_AGENT = "stanch/"
NOT_OWN = f"coalesce(user_agent, '') NOT LIKE '{OWN_AGENT}%'"


class RuleError(CaseError):
    """A rule or IOC file that cannot be used; the message names the file, the rule and the field."""


@dataclass(slots=True)
class Finding:
    rule_id: str
    title: str
    severity: str
    subject: str | None
    summary: str
    evidence: list[str] = field(default_factory=list)  # event ids, the first EVIDENCE_KEEP
    count: int = 0
    first: str | None = None
    last: str | None = None
    nhi: list[str] = field(default_factory=list)
    csf: list[str] = field(default_factory=list)
    attack: list[str] = field(default_factory=list)
    source: str = "stanch"
    author: str | None = None
    license: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Rule:
    id: str
    title: str
    severity: str
    kind: str
    params: dict[str, Any]
    nhi: list[str]
    csf: list[str]
    attack: list[str]
    author: str | None
    license: str | None
    description: str
    file: str

    def finding(self, subject: str | None, summary: str, **kw: Any) -> Finding:
        return Finding(self.id, self.title, kw.pop("severity", self.severity), subject, summary, nhi=self.nhi,
                       csf=self.csf, attack=self.attack, source=f"stanch:{Path(self.file).name}", author=self.author,
                       license=self.license, **kw)


@dataclass(slots=True)
class IocPack:
    name: str
    source: str
    ips: set[str]
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    user_agents: set[str]  # lower case
    weak_user_agents: set[str]  # lower case: legitimate strings, significant only with another indicator
    asns: set[str]
    file: str


@dataclass(slots=True)
class Context:
    case: Case
    policy: dict[str, Any]
    window_start: int | None  # µs; the baseline is what came before (or each subject's first baseline_days)
    iocs: list[IocPack]
    suppressed: dict[str, int] = field(default_factory=dict)  # rule id -> hits not reported, and why in details

    @property
    def conn(self) -> Any:
        return self.case.conn

    def note_suppressed(self, rule: Rule, n: int) -> None:
        if n:
            self.suppressed[rule.id] = self.suppressed.get(rule.id, 0) + n


Evaluator = Callable[[Context, Rule], list[Finding]]
KINDS: dict[str, tuple[Evaluator, dict[str, type | tuple[type, ...]]]] = {}
_RULE_DIRS: list[Path] = [BUILTIN_DIR]


def kind(name: str, **params: type | tuple[type, ...]) -> Callable[[Evaluator], Evaluator]:
    """Register an evaluator for rule `kind: name` with the parameters it accepts (name -> type)."""
    def wrap(fn: Evaluator) -> Evaluator:
        KINDS[name] = (fn, params)
        return fn
    return wrap


def register_rules_dir(path: str | Path) -> None:
    """A connector's folder of vendor rule files, loaded with the built-in ones."""
    p = Path(path)
    if p not in _RULE_DIRS:
        _RULE_DIRS.append(p)


# ------------------------------------------------------------------------------------------- loading


def load_rules(extra_dirs: Iterable[str | Path] = ()) -> list[Rule]:
    """Built-in, connector and user rules. Raises RuleError naming the file, the rule and the field."""
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for d in [*_RULE_DIRS, *(Path(x) for x in extra_dirs)]:
        if not d.is_dir():
            raise RuleError(f"--rules {d}: not a folder of rule files (*.yaml)")
        for f in sorted(d.glob("*.y*ml")):
            for rule in _load_file(f):
                if rule.id in seen:
                    raise RuleError(f"{f}: rule {rule.id}: the id is already used by {seen[rule.id]}; ids are unique")
                seen[rule.id] = str(f)
                rules.append(rule)
    return rules


def _load_file(f: Path) -> list[Rule]:
    try:
        docs = [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise RuleError(f"{f}{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the file") from None
    return [_rule(f, n, d) for n, d in enumerate(docs, 1)]


def _rule(f: Path, n: int, d: Any) -> Rule:
    where = f"{f}: rule {n}"
    if not isinstance(d, dict):
        raise RuleError(f"{where}: expected a mapping with id, title, severity, kind")
    rid = d.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise RuleError(f"{where}: field id: required, a non-empty string")
    where = f"{f}: rule {rid}"
    for name in ("title", "kind"):
        if not isinstance(d.get(name), str) or not d[name].strip():
            raise RuleError(f"{where}: field {name}: required, a non-empty string")
    if d.get("severity") not in SEVERITIES:
        raise RuleError(f"{where}: field severity: one of {', '.join(SEVERITIES)}; got {d.get('severity')!r}")
    if d["kind"] not in KINDS:
        raise RuleError(f"{where}: field kind: unknown kind {d['kind']!r}; one of {', '.join(sorted(KINDS))}")
    params = d.get("params") or {}
    if not isinstance(params, dict):
        raise RuleError(f"{where}: field params: a mapping")
    accepted = KINDS[d["kind"]][1]
    for k, v in params.items():
        if k not in accepted:
            raise RuleError(f"{where}: field params.{k}: kind {d['kind']} takes {', '.join(accepted) or 'no params'}")
        if not isinstance(v, accepted[k]):
            raise RuleError(f"{where}: field params.{k}: wrong type {type(v).__name__}")
    lists: dict[str, list[str]] = {}
    for name in ("nhi", "csf", "attack"):
        v = d.get(name) or []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise RuleError(f"{where}: field {name}: a list of ids")
        lists[name] = v
    for csf in lists["csf"]:
        if not _CSF.fullmatch(csf):
            raise RuleError(f"{where}: field csf: {csf!r} is not a NIST CSF 2.0 id (two digits: PR.AA-01)")
    for nhi in lists["nhi"]:
        if not _NHI.fullmatch(nhi):
            raise RuleError(f"{where}: field nhi: {nhi!r} is not an OWASP NHI Top 10 (2025) id (NHI1:2025 … NHI10:2025)")
    return Rule(rid, d["title"], d["severity"], d["kind"], params, lists["nhi"], lists["csf"], lists["attack"],
                d.get("author"), d.get("license"), str(d.get("description") or ""), str(f))



_CSF = re.compile(r"(GV|ID|PR|DE|RS|RC)\.[A-Z]{2}-\d{2}")
_NHI = re.compile(r"NHI(?:[1-9]|10):2025")


def load_iocs(files: Iterable[str | Path] = ()) -> list[IocPack]:
    paths = sorted((BUILTIN_DIR / "iocs").glob("*.y*ml")) + [Path(p) for p in files]
    return [_ioc(p) for p in paths]


def _ioc(p: Path) -> IocPack:
    if not p.is_file():
        raise RuleError(f"--iocs {p}: no such file")
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RuleError(f"{p}: not valid YAML ({e}); fix the file") from None
    if not isinstance(d, dict) or not isinstance(d.get("pack"), str):
        raise RuleError(f"{p}: an IOC pack needs `pack: <name>` and lists ips, user_agents, asns")
    ips: set[str] = set()
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for i, v in enumerate(d.get("ips") or [], 1):
        try:
            net = ipaddress.ip_network(str(v), strict=False)
        except ValueError:
            raise RuleError(f"{p}: field ips[{i}]: {v!r} is not an IP address or network") from None
        if net.num_addresses == 1:
            ips.add(str(net.network_address))
        else:
            nets.append(net)
    uas = {str(u).lower() for u in d.get("user_agents") or []}
    weak = {str(u).lower() for u in d.get("weak_user_agents") or []}
    return IocPack(d["pack"], str(d.get("source") or ""), ips, nets, uas | weak, weak,
                   {str(a).upper().removeprefix("AS") for a in d.get("asns") or []}, str(p))


# ------------------------------------------------------------------------------------------- running


def run(case: Case, *, rule_dirs: Iterable[str | Path] = (), ioc_files: Iterable[str | Path] = (),
        extra: Iterable[Finding] = (), only: Iterable[str] = ()) -> dict[str, Any]:
    """Run every rule, store the findings (one audited run), and return the run with its findings.

    `extra`: findings computed elsewhere (Sigma) stored in the same run. `only`: rule ids to run."""
    started = time.perf_counter()
    rules = load_rules(rule_dirs)
    wanted = set(only)
    if wanted:
        unknown = wanted - {r.id for r in rules}
        if unknown:
            raise RuleError(f"--rule {', '.join(sorted(unknown))}: no such rule; `stanch findings --list-rules`")
        rules = [r for r in rules if r.id in wanted]
    meta = case.meta()
    start = meta.get("window_start")
    ctx = Context(case, case.policy(), to_micros(start) if start else None, load_iocs(ioc_files))
    found: list[Finding] = []
    timings: dict[str, float] = {}
    for rule in rules:
        t = time.perf_counter()
        found += KINDS[rule.kind][0](ctx, rule)
        timings[rule.id] = round(time.perf_counter() - t, 3)
    found += list(extra)
    found.sort(key=lambda f: (-SEVERITIES.index(f.severity), f.rule_id, f.subject or ""))
    seconds = time.perf_counter() - started
    run_id = _store(case, found, len(rules), seconds, {"suppressed": ctx.suppressed, "seconds": timings,
                                                        "iocs": [p.name for p in ctx.iocs]})
    return {"run": run_id, "rules": len(rules), "seconds": round(seconds, 3), "suppressed": ctx.suppressed,
            "findings": [f.as_dict() for f in found]}


def _store(case: Case, found: list[Finding], n_rules: int, seconds: float, details: dict[str, Any]) -> int:
    with case.transaction() as c:
        cur = c.execute("INSERT INTO finding_runs(time, who, rules, findings, seconds, details) VALUES (?,?,?,?,?,?)",
                        (now_iso(), case.analyst, n_rules, len(found), seconds, orjson.dumps(details).decode()))
        run_id = int(cur.lastrowid or 0)
        seq, _ = audit.next_seq(c)
        before = c.execute("SELECT coalesce(max(rowid), 0) FROM findings").fetchone()[0]
        for i, f in enumerate(found, before + 1):
            values = (i, run_id, f.rule_id, f.title, f.source, f.author, f.license, f.severity, f.subject, f.summary,
                      f.first, f.last, f.count, orjson.dumps(f.evidence[:EVIDENCE_KEEP]).decode(), ",".join(f.nhi),
                      ",".join(f.csf), ",".join(f.attack), orjson.dumps(f.details, option=orjson.OPT_SORT_KEYS).decode(),
                      seq)
            c.execute(f"INSERT INTO findings(rowid, run, rule_id, rule_title, rule_source, rule_author, rule_license,"
                      f" severity, subject, summary, first, last, count, evidence, nhi, csf, attack, details, audit_seq,"
                      f" row_hash) VALUES ({','.join('?' * 20)})", (*values, audit.row_hash(values)))
        if found:
            audit.record_rows(c, "findings", before, seq, case.analyst, "findings.run",
                              {"run": run_id, "rules": n_rules, "findings": len(found)})
        else:
            audit.append(c, case.analyst, "findings.run", {"run": run_id, "rules": n_rules, "findings": 0})
    return run_id


def latest(case: Case) -> dict[str, Any] | None:
    """The last run and its findings, or None when findings never ran."""
    row = case.conn.execute("SELECT id, time, who, rules, findings, seconds, details FROM finding_runs"
                            " ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    cols = ("rule_id", "rule_title", "rule_source", "rule_author", "rule_license", "severity", "subject", "summary",
            "first", "last", "count", "evidence", "nhi", "csf", "attack", "details")
    out = []
    for r in case.conn.execute(f"SELECT {', '.join(cols)} FROM findings WHERE run = ? ORDER BY rowid", (row[0],)):
        d = dict(zip(cols, r, strict=True))
        d["evidence"] = orjson.loads(d["evidence"])
        d["details"] = orjson.loads(d["details"]) if d["details"] else {}
        for k in ("nhi", "csf", "attack"):
            d[k] = [x for x in (d[k] or "").split(",") if x]
        out.append(d)
    details = orjson.loads(row[6]) if row[6] else {}
    return {"run": row[0], "time": row[1], "who": row[2], "rules": row[3], "seconds": row[5],
            "suppressed": details.get("suppressed", {}), "findings": out}


# ------------------------------------------------------------------------------------------- helpers


def _evidence(ctx: Context, where: str, args: list[Any], limit: int = EVIDENCE_KEEP) -> list[str]:
    return [r[0] for r in ctx.conn.execute(f"SELECT id FROM events WHERE {where} ORDER BY ts LIMIT {int(limit)}", args)]


def _subject(cid: int | None, principal: str | None = None) -> str | None:
    return f"credential:{cid}" if cid is not None else (f"principal:{principal}" if principal else None)


def _baseline_end(ctx: Context, first_ts: int) -> int:
    """Where a subject's baseline ends: the incident window's start, else its first `baseline_days`."""
    if ctx.window_start is not None:
        return ctx.window_start
    return first_ts + int(float(ctx.policy.get("baseline_days", 7)) * 86_400_000_000)


def _iso(ts: int | None) -> str | None:
    return micros_to_iso(ts) if ts is not None else None


# ------------------------------------------------------------------------------------------- kinds


@kind("ioc", min_events=int)
def _ioc_hits(ctx: Context, rule: Rule) -> list[Finding]:
    """Events from an IOC pack's addresses, networks, ASNs or user agents, grouped by credential. A hit on an
    indicator the same principal (else credential) already used before its baseline ended is not reported (an
    employee's Tor exit, a library user agent in daily use: counted as suppressed), nor is a credential whose
    only hits are `weak_user_agents` (Unit 42: the aiohttp string is a legitimate library's)."""
    out: list[Finding] = []
    for pack in ctx.iocs:
        if not (pack.ips or pack.networks or pack.user_agents or pack.asns):
            continue
        conds, args = [], []
        if pack.ips:
            conds.append(f"src_ip IN ({','.join('?' * len(pack.ips))})")
            args += sorted(pack.ips)
        if pack.user_agents:
            conds.append(f"lower(user_agent) IN ({','.join('?' * len(pack.user_agents))})")
            args += sorted(pack.user_agents)
        if pack.asns:
            conds.append(f"upper(replace(asn, 'AS', '')) IN ({','.join('?' * len(pack.asns))})")
            args += sorted(pack.asns)
        if pack.networks:
            conds.append("ioc_net(src_ip) = 1")
            nets = pack.networks
            ctx.conn.create_function("ioc_net", 1, lambda ip, nets=nets: _in_nets(ip, nets), deterministic=True)
        if pack.networks or pack.asns:  # CIDR and ASN indicators need the events themselves
            rows = ctx.conn.execute(
                "SELECT credential_id, principal, src_ip, lower(user_agent), asn, count(*), min(ts), max(ts) FROM events"
                f" WHERE ({' OR '.join(conds)}) AND {NOT_OWN} GROUP BY 1, 2, 3, 4, 5", args).fetchall()
        else:
            # Credentials' calls from the rollups (addresses and agents per credential); events that name no
            # credential (an IdP's grants and sign-ins) through the index, as they are few.
            rollup_conds = " OR ".join(x.replace("src_ip", "a.src_ip").replace("lower(user_agent)", "lower(a.user_agent)")
                                       for x in conds)
            rows = ctx.conn.execute(
                "SELECT a.credential_id, NULL, a.src_ip, lower(a.user_agent), NULL, sum(a.n), min(a.lo), max(a.hi)"
                f" FROM rollup_addr AS a WHERE ({rollup_conds}) AND a.user_agent NOT LIKE '{OWN_AGENT}%'"
                " GROUP BY 1, 3, 4", args).fetchall()
            rows += ctx.conn.execute(
                "SELECT credential_id, principal, src_ip, lower(user_agent), asn, count(*), min(ts), max(ts) FROM events"
                f" WHERE credential_id IS NULL AND ({' OR '.join(conds)}) AND {NOT_OWN} GROUP BY 1, 2, 3, 4, 5",
                args).fetchall()
        # Hits are grouped by credential; events that name none (an IdP's grant, a sign-in) by principal, else
        # by address.
        groups: dict[tuple[str, Any], list[tuple[Any, ...]]] = {}
        for r in rows:
            key = ("credential", r[0]) if r[0] is not None else (("principal", r[1]) if r[1] else ("ip", r[2]))
            groups.setdefault(key, []).append(r)
        principals = _principals(ctx, [k[1] for k in groups if k[0] == "credential"])
        for (gkind, gval), hits in groups.items():
            cid = gval if gkind == "credential" else None
            who = principals.get(cid) if cid is not None else (gval if gkind == "principal" else None)
            strong, n, first, last = False, 0, None, None
            indicators: set[str] = set()
            suppressed = 0
            for _, principal, ip, ua, asn, count, lo, hi in hits:
                matched = []
                if ip in pack.ips or (pack.networks and _in_nets(ip, pack.networks)):
                    matched.append(("ip", ip))
                if ua in pack.user_agents:
                    matched.append(("ua", ua))
                if asn and asn.upper().removeprefix("AS") in pack.asns:
                    matched.append(("asn", asn))
                known = [m for m in matched if _seen_before(ctx, m, cid, principal or who, lo)]
                live = [m for m in matched if m not in known]
                if not live:
                    suppressed += count
                    continue
                strong |= any(k != "ua" or v not in pack.weak_user_agents for k, v in live)
                indicators.update(f"{k}:{v}" for k, v in live)
                n += count
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
            if not n or not strong:
                ctx.note_suppressed(rule, suppressed + n)
                continue
            ctx.note_suppressed(rule, suppressed)
            if gkind == "credential":
                where, ev_args = "credential_id = ?", [gval]
            elif gkind == "principal":
                where, ev_args = "credential_id IS NULL AND principal = ?", [gval]
            else:
                where, ev_args = "credential_id IS NULL AND principal IS NULL AND src_ip = ?", [gval]
            ips = sorted(i.split(":", 1)[1] for i in indicators if i.startswith("ip:"))
            uas = sorted(i.split(":", 1)[1] for i in indicators if i.startswith("ua:"))
            sub = " OR ".join([*(["src_ip IN (" + ",".join("?" * len(ips)) + ")"] if ips else []),
                               *(["lower(user_agent) IN (" + ",".join("?" * len(uas)) + ")"] if uas else [])]) or "1"
            evidence = _evidence(ctx, f"{where} AND ({sub}) AND {NOT_OWN}", [*ev_args, *ips, *uas])
            subject = _subject(cid, who) or f"ip:{gval}"
            out.append(rule.finding(
                subject, f"{n} events matching {pack.name} ({', '.join(sorted(indicators))[:300]})"
                + (f" by {who}" if who else ""), evidence=evidence, count=n, first=_iso(first), last=_iso(last),
                details={"pack": pack.name, "source": pack.source, "indicators": sorted(indicators)}))
    return out


def _in_nets(ip: str | None, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in n for n in nets)


def _principals(ctx: Context, cids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for i in range(0, len(cids), 500):
        chunk = cids[i:i + 500]
        out.update((r[0], r[1]) for r in ctx.conn.execute(
            f"SELECT id, principal FROM credentials WHERE id IN ({','.join('?' * len(chunk))}) AND principal IS NOT NULL",
            chunk))
    return out


def _seen_before(ctx: Context, indicator: tuple[str, str], cid: int | None, principal: str | None, hit_ts: int) -> bool:
    """Whether the principal (else the credential) used this indicator before its baseline ended. Each query
    walks the (credential, time) index: the principal's credentials, then the events that name no credential."""
    col = {"ip": "src_ip", "ua": "lower(user_agent)", "asn": "asn"}[indicator[0]]
    end = ctx.window_start if ctx.window_start is not None else hit_ts
    creds = [cid] if cid is not None else []
    if principal:
        creds += [r[0] for r in ctx.conn.execute("SELECT id FROM credentials WHERE principal = ?", (principal,))]
    for i in range(0, len(creds), 500):
        chunk = creds[i:i + 500]
        if ctx.conn.execute(f"SELECT 1 FROM events WHERE credential_id IN ({','.join('?' * len(chunk))}) AND ts < ?"
                            f" AND {col} = ? LIMIT 1", (*chunk, end, indicator[1])).fetchone() is not None:
            return True
    if principal:
        return ctx.conn.execute(f"SELECT 1 FROM events WHERE credential_id IS NULL AND ts < ? AND principal = ?"
                                f" AND {col} = ? LIMIT 1", (end, principal, indicator[1])).fetchone() is not None
    return False


@kind("first_seen", field=str, min_baseline_events=int)
def _first_seen(ctx: Context, rule: Rule) -> list[Finding]:
    """Values of `field` (src_ip, asn, user_agent, country) a credential used for the first time after its
    baseline (before the incident window, else its first `baseline_days`), for credentials with at least
    `min_baseline_events` events in their baseline (too little history says nothing)."""
    col = {"src_ip": "src_ip", "asn": "asn", "user_agent": "user_agent", "country": "country"}.get(
        str(rule.params.get("field", "src_ip")))
    if col is None:
        raise RuleError(f"{rule.file}: rule {rule.id}: field params.field: one of src_ip, asn, user_agent, country")
    min_base = int(rule.params.get("min_baseline_events", 20))
    if col in ("src_ip", "user_agent"):
        # The rollups hold each credential's addresses and agents with first and last use (non-lifecycle
        # events, as the baseline should be): far fewer rows than the events.
        own = "user_agent NOT LIKE 'stanch/%'"
        firsts = ctx.conn.execute(
            f"SELECT credential_id, min(lo), sum(n) FROM rollup_addr WHERE {own} GROUP BY credential_id").fetchall()
        rows = ctx.conn.execute(
            f"SELECT credential_id, {col}, min(lo), max(hi), sum(n) FROM rollup_addr WHERE {col} != '' AND {own}"
            f" GROUP BY credential_id, {col}").fetchall()
    else:
        firsts = ctx.conn.execute("SELECT credential_id, min(lo), sum(n) FROM rollup GROUP BY credential_id").fetchall()
        # One pass over the table (the credential index would fetch every row at random).
        rows = ctx.conn.execute(
            f"SELECT credential_id, {col}, min(ts), max(ts), count(*) FROM events NOT INDEXED WHERE credential_id IS"
            f" NOT NULL AND {col} IS NOT NULL AND {NOT_OWN} GROUP BY credential_id, {col}").fetchall()
    ends = {cid: _baseline_end(ctx, lo) for cid, lo, _ in firsts}
    rows = [r for r in rows if r[0] in ends]
    base_count: dict[int, int] = {}
    new: dict[int, list[tuple[str, int, int, int]]] = {}
    for cid, value, lo, hi, n in rows:
        if lo < ends[cid]:
            base_count[cid] = base_count.get(cid, 0) + n
        else:
            new.setdefault(cid, []).append((value, lo, hi, n))
    principals = _principals(ctx, list(new))
    out = []
    for cid, values in new.items():
        if base_count.get(cid, 0) < min_base:
            continue
        n = sum(v[3] for v in values)
        vals = sorted({v[0] for v in values})
        evidence = _evidence(ctx, f"credential_id = ? AND {col} IN ({','.join('?' * len(vals))}) AND {NOT_OWN}",
                             [cid, *vals])
        who = principals.get(cid)
        out.append(rule.finding(
            _subject(cid, who), f"{len(vals)} {rule.params.get('field', 'src_ip')} value(s) new after the baseline: "
            f"{', '.join(vals)[:300]}" + (f" ({who})" if who else ""), evidence=evidence, count=n,
            first=_iso(min(v[1] for v in values)), last=_iso(max(v[2] for v in values)),
            details={"field": rule.params.get("field", "src_ip"), "new_values": vals[:100],
                     "baseline_events": base_count.get(cid, 0)}))
    return out


@kind("volume_spike", factor=(int, float), min_events=int, bucket_minutes=int, min_baseline_buckets=int)
def _volume_spike(ctx: Context, rule: Rule) -> list[Finding]:
    """Buckets (default one hour) in which a credential made more than `factor` × its busiest baseline bucket
    and at least `min_events` calls."""
    factor = float(rule.params.get("factor", 3))
    min_events = int(rule.params.get("min_events", 100))
    bucket = int(rule.params.get("bucket_minutes", 60)) * 60_000_000
    min_buckets = int(rule.params.get("min_baseline_buckets", 3))
    # Counted from the (credential, time) index alone; stanch's own calls are taken out of the buckets that
    # look like spikes below (they are few, and reading every row's user agent would cost a table scan).
    rows = ctx.conn.execute(
        f"SELECT credential_id, ts / {bucket}, count(*), min(ts), max(ts) FROM events INDEXED BY events_credential_ts"
        " WHERE credential_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    per: dict[int, list[tuple[int, int, int, int]]] = {}
    for cid, b, n, lo, hi in rows:
        per.setdefault(cid, []).append((b, n, lo, hi))
    out = []
    principals = _principals(ctx, list(per))
    for cid, buckets in per.items():
        end = _baseline_end(ctx, buckets[0][2])
        base = [n for b, n, lo, hi in buckets if hi < end]
        if len(base) < min_buckets:
            continue
        limit = max(max(base) * factor, min_events)
        spikes = []
        for b, n, lo, hi in buckets:
            if lo >= end and n > limit:
                own = ctx.conn.execute(f"SELECT count(*) FROM events WHERE credential_id = ? AND ts BETWEEN ? AND ?"
                                       f" AND NOT ({NOT_OWN})", (cid, lo, hi)).fetchone()[0]
                if n - own > limit:
                    spikes.append((b, n - own, lo, hi))
        if not spikes:
            continue
        peak = max(spikes, key=lambda s: s[1])
        evidence = _evidence(ctx, f"credential_id = ? AND ts BETWEEN ? AND ? AND {NOT_OWN}", [cid, peak[2], peak[3]])
        who = principals.get(cid)
        out.append(rule.finding(
            _subject(cid, who), f"{len(spikes)} bucket(s) above {factor:g}× the baseline peak of {max(base)} "
            f"(highest {peak[1]} calls at {_iso(peak[2])})" + (f" ({who})" if who else ""), evidence=evidence,
            count=sum(s[1] for s in spikes), first=_iso(spikes[0][2]), last=_iso(spikes[-1][3]),
            details={"baseline_peak": max(base), "spikes": [[_iso(s[2]), s[1]] for s in spikes[:50]]}))
    return out


@kind("sql", query=str, summary=str, suppress_routine=bool)
def _sql(ctx: Context, rule: Rule) -> list[Finding]:
    """A vendor rule's own query over the canonical columns: it returns (credential_id, event rowid) rows; the
    hits are grouped by credential. `:window_start` is bound (µs, or 0). stanch's own calls are removed.
    `suppress_routine`: when the incident window is set, a client (else principal) that already matched before
    it does this routinely (a nightly reporting job): its hits are counted as suppressed, not reported."""
    q = str(rule.params.get("query", ""))
    try:
        rows = ctx.conn.execute(q, {"window_start": ctx.window_start or 0}).fetchall()
    except Exception as e:  # a rule file's SQL: name the rule, never crash the run
        raise RuleError(f"{rule.file}: rule {rule.id}: field params.query: {e}") from None
    per: dict[Any, list[int]] = {}
    for cid, rowid in rows:
        per.setdefault(cid, []).append(rowid)
    if rule.params.get("suppress_routine") and ctx.window_start is not None and per:
        per = _drop_routine(ctx, rule, per)
    out = []
    principals = _principals(ctx, [c for c in per if c is not None])
    for cid, rowids in per.items():
        chunk = rowids[:5000]
        ev = ctx.conn.execute(
            f"SELECT id, ts FROM events WHERE rowid IN ({','.join('?' * len(chunk))}) AND {NOT_OWN} ORDER BY ts",
            chunk).fetchall()
        if not ev:
            continue
        who = principals.get(cid) if cid is not None else None
        summary = str(rule.params.get("summary", rule.title)).format(count=len(rowids), principal=who or "?")
        out.append(rule.finding(_subject(cid, who), summary, evidence=[e[0] for e in ev[:EVIDENCE_KEEP]],
                                count=len(rowids), first=_iso(ev[0][1]), last=_iso(ev[-1][1])))
    return out


def _drop_routine(ctx: Context, rule: Rule, per: dict[Any, list[int]]) -> dict[Any, list[int]]:
    owner: dict[Any, str] = {}
    cids = [c for c in per if c is not None]
    for i in range(0, len(cids), 500):
        chunk = cids[i:i + 500]
        for cid, client, principal in ctx.conn.execute(
                f"SELECT id, client, principal FROM credentials WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            owner[cid] = f"client:{client}" if client else (f"principal:{principal}" if principal else f"cred:{cid}")
    earliest: dict[str, int] = {}
    for cid, rowids in per.items():
        if cid is None:
            continue
        chunk = rowids[:5000]
        lo = ctx.conn.execute(f"SELECT min(ts) FROM events WHERE rowid IN ({','.join('?' * len(chunk))})",
                              chunk).fetchone()[0]
        o = owner.get(cid, f"cred:{cid}")
        if lo is not None:
            earliest[o] = min(earliest.get(o, lo), lo)
    routine = {o for o, lo in earliest.items() if ctx.window_start is not None and lo < ctx.window_start}
    kept = {}
    for cid, rowids in per.items():
        if cid is not None and owner.get(cid, f"cred:{cid}") in routine:
            ctx.note_suppressed(rule, len(rowids))
        else:
            kept[cid] = rowids
    return kept


@kind("credential", check=str, limit_seconds=int, scopes=list, kinds=list)
def _credential_check(ctx: Context, rule: Rule) -> list[Finding]:
    """Checks on the credentials themselves: `ttl_above_policy` (NHI7), `broad_scopes` (NHI5),
    `possession_only` (bearer tokens where the same issuer binds others with DPoP or mTLS), `shared` (NHI9: one
    credential used from several clients or user-agent families), `interactive_agent` (NHI10: a browser user
    agent on a service credential), `third_party` (NHI3: tokens held by clients not listed as first party),
    `exposed` (NHI2: found in data or payloads)."""
    check = str(rule.params.get("check", ""))
    fn = _CHECKS.get(check)
    if fn is None:
        raise RuleError(f"{rule.file}: rule {rule.id}: field params.check: one of {', '.join(sorted(_CHECKS))}")
    return fn(ctx, rule)


def _cred_rows(ctx: Context, where: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cols = ("id", "kind", "issuer", "client", "principal", "scopes", "issued_at", "expires_at", "binding", "status",
            "preview", "first_seen", "last_used")
    return [dict(zip(cols, r, strict=True)) for r in
            ctx.conn.execute(f"SELECT {', '.join(cols)} FROM credentials WHERE {where}", list(args))]


def _events_of(ctx: Context, cid: int) -> tuple[list[str], int]:
    n = ctx.conn.execute(f"SELECT count(*) FROM events WHERE credential_id = ? AND {NOT_OWN}", (cid,)).fetchone()[0]
    return _evidence(ctx, f"(credential_id = ? OR subject_credential_id = ?) AND {NOT_OWN}", [cid, cid], 10), n


def _ttl_above(ctx: Context, rule: Rule) -> list[Finding]:
    default = int(rule.params.get("limit_seconds", 0)) or int(ctx.policy.get("ttl_max", 90 * 86400))
    kinds = set(rule.params.get("kinds") or [])
    out = []
    for c in _cred_rows(ctx, "issued_at IS NOT NULL AND expires_at IS NOT NULL"):
        if kinds and c["kind"] not in kinds:
            continue
        limit = int(ctx.policy.get(f"ttl_max_{c['kind']}", default))
        try:
            ttl = (to_micros(c["expires_at"]) - to_micros(c["issued_at"])) // 1_000_000
        except ValueError:
            continue
        if ttl > limit:
            ev, n = _events_of(ctx, c["id"])
            out.append(rule.finding(f"credential:{c['id']}", f"{c['kind']} {c['preview'] or ''} lives {ttl // 3600} h, "
                                    f"above the policy's {limit // 3600} h ({c['client'] or c['principal'] or '?'})",
                                    evidence=ev, count=n, first=c["issued_at"], last=c["expires_at"],
                                    details={"ttl_seconds": ttl, "limit_seconds": limit}))
    return out


def _broad_scopes(ctx: Context, rule: Rule) -> list[Finding]:
    broad = {str(s) for s in rule.params.get("scopes") or ["full", "refresh_token", "offline_access", "api",
                                                             "admin", "*"]}
    out = []
    seen: set[tuple[str | None, str]] = set()
    for c in _cred_rows(ctx, "scopes IS NOT NULL AND client IS NOT NULL"):
        hit = sorted(broad & set((c["scopes"] or "").split()))
        if not hit or (c["client"], " ".join(hit)) in seen:
            continue
        seen.add((c["client"], " ".join(hit)))
        n = ctx.conn.execute("SELECT count(*) FROM credentials WHERE client = ? AND scopes LIKE ?",
                             (c["client"], f"%{hit[0]}%")).fetchone()[0]
        ev, _ = _events_of(ctx, c["id"])
        out.append(rule.finding(f"app:{c['client']}", f"client {c['client']} holds broad scopes {' '.join(hit)} on "
                                f"{n} credential(s)", evidence=ev, count=n, details={"scopes": hit}))
    return out


def _possession_only(ctx: Context, rule: Rule) -> list[Finding]:
    capable = set(ctx.policy.get("binding_capable_issuers") or [])
    capable |= {r[0] for r in ctx.conn.execute(
        "SELECT DISTINCT issuer FROM credentials WHERE binding IN ('dpop', 'mtls') AND issuer IS NOT NULL")}
    out = []
    for issuer in sorted(capable):
        rows = _cred_rows(ctx, "issuer = ? AND coalesce(binding, 'none') = 'none' AND kind IN ('access', 'refresh')",
                          [issuer])
        if not rows:
            continue
        used = [c for c in rows if c["last_used"]]
        ev, _ = _events_of(ctx, (used or rows)[0]["id"])
        out.append(rule.finding(f"issuer:{issuer}", f"{len(rows)} bearer token(s) of {issuer} are not sender-bound "
                                "although the issuer binds tokens with DPoP or mTLS: anyone holding one can use it",
                                evidence=ev, count=len(rows), details={"credentials": [c["id"] for c in rows[:200]]}))
    return out


_BROWSER = ("mozilla/", "opera/")


def _shared(ctx: Context, rule: Rule) -> list[Finding]:
    rows = ctx.conn.execute(
        "SELECT credential_id, count(DISTINCT client), count(DISTINCT substr(lower(user_agent), 1, instr(user_agent ||"
        f" '/', '/'))), group_concat(DISTINCT client) FROM events NOT INDEXED WHERE credential_id IS NOT NULL AND client IS NOT NULL"
        f" AND {NOT_OWN}"
        " GROUP BY credential_id HAVING count(DISTINCT client) > 1").fetchall()
    out = []
    for cid, nclients, _families, clients in rows:
        ev, n = _events_of(ctx, cid)
        out.append(rule.finding(f"credential:{cid}", f"one credential used by {nclients} clients: {clients}",
                                evidence=ev, count=n, details={"clients": (clients or "").split(",")}))
    return out


def _interactive(ctx: Context, rule: Rule) -> list[Finding]:
    kinds = set(rule.params.get("kinds") or ["api-key", "pat", "vault-token", "aws-key", "client-secret"])
    service = {c["id"]: c for c in _cred_rows(ctx, f"kind IN ({','.join('?' * len(kinds))})", sorted(kinds))}
    if not service:
        return []
    rows = ctx.conn.execute(
        "SELECT credential_id, count(*), min(ts), max(ts) FROM events WHERE credential_id IS NOT NULL AND"
        f" (lower(user_agent) LIKE 'mozilla/%' OR lower(user_agent) LIKE 'opera/%') AND {NOT_OWN}"
        " GROUP BY credential_id").fetchall()
    out = []
    for cid, n, lo, hi in rows:
        if cid not in service:
            continue
        ev = _evidence(ctx, "credential_id = ? AND (lower(user_agent) LIKE 'mozilla/%' OR lower(user_agent) LIKE"
                            f" 'opera/%') AND {NOT_OWN}", [cid])
        c = service[cid]
        out.append(rule.finding(f"credential:{cid}", f"service credential {c['kind']} {c['preview'] or ''} used from "
                                f"a browser {n} time(s)", evidence=ev, count=n, first=_iso(lo), last=_iso(hi)))
    return out


def _third_party(ctx: Context, rule: Rule) -> list[Finding]:
    first_party = set(ctx.policy.get("first_party_clients") or [])
    rows = ctx.conn.execute(
        "SELECT client, count(*), sum(kind = 'refresh'), group_concat(DISTINCT principal) FROM credentials WHERE"
        " client IS NOT NULL AND kind IN ('access', 'refresh') GROUP BY client HAVING sum(kind = 'refresh') > 0"
    ).fetchall()
    out = []
    for client, n, refresh, principals in rows:
        if client in first_party:
            continue
        cid = ctx.conn.execute("SELECT id FROM credentials WHERE client = ? AND kind = 'refresh' LIMIT 1",
                               (client,)).fetchone()[0]
        ev, _ = _events_of(ctx, cid)
        out.append(rule.finding(f"app:{client}", f"client {client} holds {refresh} refresh token(s) ({n} tokens) "
                                f"for {principals or '?'}; list it in the policy's first_party_clients if it is yours",
                                evidence=ev, count=n, details={"refresh_tokens": refresh}))
    return out


def _exposed(ctx: Context, rule: Rule) -> list[Finding]:
    rows = ctx.conn.execute(
        "SELECT x.credential_id, count(*), group_concat(DISTINCT coalesce(x.object, '') || ' ' || coalesce(x.field,"
        " '')), group_concat(DISTINCT s.path), c.kind, c.preview FROM exposures x LEFT JOIN sources s ON"
        " s.id = x.source_id LEFT JOIN credentials c ON c.id = x.credential_id GROUP BY x.credential_id").fetchall()
    out = []
    for cid, n, where, files, kind_, preview in rows:
        ev, used = _events_of(ctx, cid)
        out.append(rule.finding(f"credential:{cid}", f"{kind_ or 'secret'} {preview or ''} found in data {n} time(s) "
                                f"({(files or '').split(',')[0]}; {where[:200] if where else ''})"
                                + (f"; used in {used} events" if used else ""), evidence=ev, count=n,
                                details={"files": (files or "").split(","), "used_in_events": used}))
    return out


def _retired(ctx: Context, rule: Rule) -> list[Finding]:
    """NHI1: credentials used after their app was retired or their owner offboarded, by the policy's lists
    (`stanch case set --policy 'retired_apps={"<client>": "<ISO time>"}'`, `offboarded={"<principal>": …}`;
    a value of true means since ever). Vendor rules find retirements in the logs themselves (Okta)."""
    out: list[Finding] = []
    for field_name, col, label in (("retired_apps", "client", "app"), ("offboarded", "principal", "owner")):
        entries = ctx.policy.get(field_name) or {}
        if not isinstance(entries, dict):
            raise RuleError(f"policy {field_name}: expected a JSON object of {col} -> ISO time (or true)")
        for who, when in entries.items():
            since = 0 if when is True else to_micros(str(when))
            for c in _cred_rows(ctx, f"{col} = ?", [who]):
                n, lo, hi = ctx.conn.execute(
                    f"SELECT count(*), min(ts), max(ts) FROM events WHERE credential_id = ? AND ts > ? AND {NOT_OWN}",
                    (c["id"], since)).fetchone()
                if not n:
                    continue
                ev = _evidence(ctx, f"credential_id = ? AND ts > ? AND {NOT_OWN}", [c["id"], since])
                out.append(rule.finding(f"credential:{c['id']}", f"{c['kind']} {c['preview'] or ''} used {n} time(s) "
                                        f"after its {label} {who} was retired" + (f" ({when})" if when is not True else ""),
                                        evidence=ev, count=n, first=_iso(lo), last=_iso(hi)))
    return out


_CHECKS: dict[str, Callable[[Context, Rule], list[Finding]]] = {
    "retired": _retired,
    "ttl_above_policy": _ttl_above, "broad_scopes": _broad_scopes, "possession_only": _possession_only,
    "shared": _shared, "interactive_agent": _interactive, "third_party": _third_party, "exposed": _exposed,
}
