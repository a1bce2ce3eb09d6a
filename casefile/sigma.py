"""Sigma rules over the case: pySigma's SQLite backend, one TEMP view (or temp table) per Sigma logsource.

How it works (measured in shared/reference/detections.md §2, "approach B"):

* A connector declares how one Sigma logsource maps onto its events with `register_sigma_source`: which
  `events.vendor` it is, and for each Sigma field name an SQL expression over `events` (a stanch column holding
  the vendor's value verbatim, or `json_field("$.a.b")`). Any field a rule needs that is not declared reads the
  same dotted path from `raw` (`$."a"."b"`), with JSON booleans turned into the strings 'true'/'false' (Sigma rules
  write `isProxy: 'true'`). casefile knows no vendor: the maps are registered by the connector modules.
* The pipeline only routes each rule's logsource to its relation (`SetStateTransformation("table", …)`); a rule
  whose logsource nobody registered is skipped with a message naming its file.
* The rules run on a separate READ-ONLY connection to the case file (`mode=ro`, temp_store=MEMORY). Views,
  materialised tables and the correlation runtime's scratch tables live in `temp` only, so a run never writes
  the case (the correlation runtime would otherwise `ALTER TABLE` the events table). Every relation exposes only
  `_id` (events.id), `_ts` (µs), `_rowid`, `_cred` and the Sigma-named columns (COLLATE NOCASE), so a Sigma field
  such as GitHub's `action` can never reach stanch's canonical `action`.
* stanch's own calls (user agent `stanch/…`) are left out of every relation: they never match.

Findings keep each rule's author and licence (SigmaHQ rules are under the Detection Rule License 1.1, which
requires the author on every message based on a match). Licence: the rule's `license` field; else "DRL-1.1" when
a `LICENSE.Detection.Rules.md` sits in the rule's folder or one above it (SigmaHQ checkouts, stanch's bundled
copies); else none.

stanch-specific tags map a rule to OWASP NHI Top 10 (2025) and NIST CSF 2.0 ids: `stanch.nhi3` → `NHI3:2025`,
`stanch.csf.de-cm-01` → `DE.CM-01`. ATT&CK ids come from `attack.tNNNN[.NNN]` tags (upper-cased).

Okta `target` is an array: a rule field `target.displayName` reads `$.target[0].displayName` (the first target
only; any-element matching would need `json_each`, which the backend cannot emit). Two SigmaHQ Okta rules use it.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from casefile.case import Case
from casefile.findings import EVIDENCE_KEEP, OWN_AGENT, Finding
from casefile.timeutil import micros_to_iso

BUILTIN_DIR = Path(__file__).parent / "rules" / "sigma"
LEVELS = {"informational": "info", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
DRL_FILE = "LICENSE.Detection.Rules.md"
#: relation routed to when no source matches: it does not exist, so a missed route fails loudly
UNMAPPED = "sigma_unmapped_logsource"
#: above this many rules on one relation, it is materialised into a temp table first (detections.md §2.4)
MATERIALISE_FROM = 4

_SEG = re.compile(r"[A-Za-z0-9_@$-]+")
_ARRAY_FIRST = re.compile(r"^(target)(\.|$)")  # Okta's target[] (detections.md §2.3 #6): the first element


@dataclass(frozen=True, slots=True)
class SigmaSource:
    product: str
    service: str | None
    category: str | None
    vendor: str  # events.vendor, or "*" for every vendor
    columns: dict[str, str]
    where: str | None
    view: str

    def expr(self, field: str) -> str:
        """The SQL expression for a Sigma field: declared (exact name, else case-insensitively), else from raw."""
        if field in self.columns:
            return self.columns[field]
        low = field.lower()
        for k, v in self.columns.items():
            if k.lower() == low:
                return v
        return json_field(_raw_path(field))


_SOURCES: dict[tuple[str, str | None, str | None], SigmaSource] = {}


def register_sigma_source(product: str, service: str | None, vendor: str, columns: dict[str, str], *,
                          category: str | None = None, where: str | None = None) -> SigmaSource:
    """Declare how one Sigma logsource (product, service, category) maps onto the events of `vendor`.

    `columns`: Sigma field name -> SQL expression over `events` (a column holding the vendor's value verbatim,
    such as vendor_type/src_ip/user_agent/principal, or `json_field(...)`). Undeclared fields read `raw`.
    `where`: an extra SQL filter over `events` (e.g. only sign-in records of a vendor that also logs audits).
    `vendor="*"`: every vendor (stanch's canonical logsource). Registering the same logsource again replaces it."""
    name = "_".join(re.sub(r"[^a-z0-9]+", "_", x.lower()) for x in (product, service, category) if x)
    src = SigmaSource(product, service, category, vendor, dict(columns), where, f"sigma_{name}")
    _SOURCES[(product, service, category)] = src
    return src


def sources() -> list[SigmaSource]:
    return list(_SOURCES.values())


def json_field(*paths: str) -> str:
    """SQL reading the first non-null of JSON `paths` in `raw`; JSON true/false become 'true'/'false'."""
    for p in paths:
        if "'" in p:
            raise ValueError(f"json path {p!r}: quotes are not allowed")
    # TEXT affinity: a rule's `ResultType: 50126` then matches a JSON number and a JSON string alike
    parts = [f"CAST(CASE json_type(raw, '{p}') WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
             f"ELSE json_extract(raw, '{p}') END AS TEXT)" for p in paths]
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _raw_path(field: str) -> str:
    segs = field.split(".")
    if not all(_SEG.fullmatch(s) for s in segs):
        raise ValueError(f"field {field!r}: not a dotted path of plain names")
    first = "[0]" if _ARRAY_FIRST.match(field) and len(segs) > 1 else ""
    return "$" + "".join(f'."{s}"' + (first if i == 0 else "") for i, s in enumerate(segs))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------------------------- the canonical logsource

#: stanch's own logsource over the canonical columns of every vendor: `product: stanch, category: api_call`.
register_sigma_source("stanch", None, "*", {
    "resource": "resource", "method": "method", "src_ip": "src_ip", "user_agent": "user_agent",
    "credential": "credential_id", "principal": "principal", "client": "client", "status": "status",
    "action": "action", "outcome": "outcome", "vendor": "vendor", "country": "country", "asn": "asn",
}, category="api_call")


# ------------------------------------------------------------------------------------------- loading


@dataclass(slots=True)
class _Loaded:
    rule: Any  # SigmaRule | SigmaCorrelationRule
    file: Path
    license: str | None


def _rule_files(paths: Iterable[str | Path], problems: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in (Path(x) for x in paths):
        if p.is_dir():
            out += sorted([*p.rglob("*.yml"), *p.rglob("*.yaml")])
        elif p.is_file():
            out.append(p)
        else:
            problems.append(f"{p}: no such file or folder of Sigma rules (*.yml)")
    return out


def _drl_near(f: Path) -> bool:
    """A DRL text beside the rule or in a folder above it (stanch's bundled copies, shared rule folders), or a
    SigmaHQ checkout's LICENSE pointing at the Detection Rule License."""
    for d in list(f.resolve().parents)[:8]:
        if (d / DRL_FILE).is_file():
            return True
        lic = d / "LICENSE"
        if lic.is_file() and lic.stat().st_size < 200_000:
            try:
                if "Detection Rule License" in lic.read_text(encoding="utf-8", errors="replace"):
                    return True
            except OSError:
                pass
    return False


def _license(rule: Any, f: Path) -> str | None:
    lic = getattr(rule, "license", None)
    if isinstance(lic, str) and lic.strip():
        text = lic.strip()
        return "DRL-1.1" if re.fullmatch(r"(?i)drl[- ]?1\.1|detection rule license.*", text) else text
    return "DRL-1.1" if _drl_near(f) else None


def _load(paths: Iterable[str | Path], problems: list[str]) -> tuple[Any, list[_Loaded]]:
    """A fresh SigmaCollection (pySigma mutates rules while converting), and each rule's file and licence."""
    from sigma.collection import SigmaCollection

    loaded: list[_Loaded] = []
    collections = []
    for f in _rule_files(paths, problems):
        try:
            text = f.read_text(encoding="utf-8")
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
            if not docs or not all(isinstance(d, dict) for d in docs):
                problems.append(f"{f.name}: not a Sigma rule file (no rule mappings); skipped")
                continue
            col = SigmaCollection.from_dicts(docs, collect_errors=True, resolve_references=False)
        except Exception as e:  # any broken file: report it, never stop the run
            problems.append(f"{f.name}: not a valid Sigma rule file ({_short(e)}); skipped")
            continue
        good = []
        for rule in col.rules:
            errs = getattr(rule, "errors", None)
            if errs:
                problems.append(f"{f.name}: rule {rule.title or rule.id}: {_short(errs[0])}; skipped")
                continue
            good.append(rule)
            loaded.append(_Loaded(rule, f, _license(rule, f)))
        col.rules = good
        collections.append(col)
    try:
        merged = SigmaCollection.merge(collections, resolve_references=True)
    except Exception as e:  # a correlation naming a rule that is not loaded
        problems.append(f"correlation references: {_short(e)}")
        merged = SigmaCollection.merge(collections, resolve_references=False)
        bad = {id(r) for r in merged.rules if _is_correlation(r)}
        merged.rules = [r for r in merged.rules if id(r) not in bad]
        merged.resolve_rule_references()
        loaded = [x for x in loaded if id(x.rule) not in bad]
    return merged, loaded


def _is_correlation(rule: Any) -> bool:
    from sigma.correlations import SigmaCorrelationRule
    return isinstance(rule, SigmaCorrelationRule)


def _short(e: object) -> str:
    return " ".join(str(e).split())[:200]


# ------------------------------------------------------------------------------------------- converting


def _backend(placeholders: dict[str, list[str]] | None) -> Any:
    from sigma.backends.sqlite import sqliteBackend
    from sigma.processing.conditions import LogsourceCondition
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import SetStateTransformation, ValueListPlaceholderTransformation

    items = [ProcessingItem(SetStateTransformation("table", s.view),
                            rule_conditions=[LogsourceCondition(product=s.product, service=s.service,
                                                                category=s.category)])
             for s in _SOURCES.values()]
    pl: dict[str, Any] = {}
    if placeholders:
        items.insert(0, ProcessingItem(ValueListPlaceholderTransformation(include=list(placeholders))))
        pl["vars"] = {k: list(v) for k, v in placeholders.items()}
    pipeline = ProcessingPipeline(name="stanch sigma sources", priority=20, items=items, **pl)
    return sqliteBackend(pipeline, table=UNMAPPED, collate_nocase=True, timestamp_field="_ts",
                         timestamp_format="unix_us", event_id_field="_id")


def _convert(collection: Any, loaded: list[_Loaded], placeholders: dict[str, list[str]] | None,
             problems: list[str]) -> list[tuple[_Loaded, dict[str, Any]]]:
    by_rule = {id(x.rule): x for x in loaded}
    backend = _backend(placeholders)
    out: list[tuple[_Loaded, dict[str, Any]]] = []
    failed: set[int] = set()
    for rule in collection.rules:
        where = by_rule.get(id(rule))
        if where is None:
            continue
        name = f"{where.file.name}: rule {rule.title or rule.id}"
        if _is_correlation(rule) and any(id(r.rule) in failed for r in rule.rules if r.rule is not None):
            problems.append(f"{name}: skipped, a rule it correlates could not be converted")
            failed.add(id(rule))
            continue
        try:
            if _is_correlation(rule):
                queries = backend.convert_correlation_rule(rule, "zircolite")
            else:
                queries = backend.convert_rule(rule, "zircolite")
        except Exception as e:
            failed.add(id(rule))
            msg = _short(e)
            if "placeholder" in msg.lower():
                problems.append(f"{name}: needs placeholder values ({msg}); skipped")
            else:
                problems.append(f"{name}: cannot be converted ({msg}); skipped")
            continue
        for q in queries or []:
            if not isinstance(q, dict):
                continue
            if q.get("result_type") == "event" and q.get("source_table") in (UNMAPPED, _q(UNMAPPED)):
                ls = q.get("logsource") or {}
                problems.append(f"{name}: no stanch source for logsource "
                                f"{', '.join(f'{k}: {v}' for k, v in ls.items()) or '(none)'}; skipped")
                continue
            out.append((where, q))
    return out


# ------------------------------------------------------------------------------------------- running


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and _compiled(pattern).search(str(value)) is not None


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """A separate read-only connection to the case file, with REGEXP registered and temp data in memory."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    con.execute("PRAGMA temp_store=MEMORY")
    con.create_function("regexp", 2, _regexp, deterministic=True)
    return con


def _relation_sql(src: SigmaSource, fields: list[str], collate: bool) -> tuple[str, list[str]]:
    cols, names, seen = [], [], set()
    for f in fields:
        if f.lower() in seen or f.startswith("_"):
            continue
        seen.add(f.lower())
        cols.append(f"{src.expr(f)}{' COLLATE NOCASE' if collate else ''} AS {_q(f)}")
        names.append(f)
    where = [f"coalesce(user_agent, '') NOT LIKE '{OWN_AGENT}%'"]
    if src.vendor != "*":
        where.append(f"vendor = '{src.vendor.replace(chr(39), '')}'")
    if src.where:
        where.append(f"({src.where})")
    select = ", ".join(["id AS _id", "ts AS _ts", "rowid AS _rowid", "credential_id AS _cred", *cols])
    return f"SELECT {select} FROM main.events WHERE {' AND '.join(where)}", names


def _create_relations(con: sqlite3.Connection, plans: list[tuple[_Loaded, dict[str, Any]]],
                      problems: list[str]) -> set[str]:
    """One temp relation per source in use; columns = the fields its rules need. Returns the relations made."""
    by_view = {s.view: s for s in _SOURCES.values()}
    fields: dict[str, set[str]] = {}
    uses: dict[str, int] = {}
    for _, q in plans:
        if q.get("result_type") == "correlation":
            for table, fs in (q["correlation_plan"].get("required_fields") or {}).items():
                fields.setdefault(table.strip('"`'), set()).update(fs)
        else:
            t = str(q.get("source_table", "")).strip('"`')
            fields.setdefault(t, set()).update(q.get("required_fields") or [])
            uses[t] = uses.get(t, 0) + 1
    made: set[str] = set()
    for view, fs in fields.items():
        src = by_view.get(view)
        if src is None:
            continue
        materialise = uses.get(view, 0) >= MATERIALISE_FROM
        try:
            # a view keeps each column's COLLATE NOCASE; a temp table declares it on its columns
            select, names = _relation_sql(src, sorted(fs), collate=not materialise)
        except ValueError as e:
            problems.append(f"source {src.product}/{src.service or src.category}: {e}")
            continue
        if materialise:
            decl = ", ".join(["_id TEXT", "_ts INTEGER", "_rowid INTEGER", "_cred INTEGER",
                              *(f"{_q(n)} COLLATE NOCASE" for n in names)])
            con.execute(f"CREATE TEMP TABLE {view} ({decl})")
            con.execute(f"INSERT INTO temp.{view} {select}")
            con.execute(f"CREATE INDEX temp.{view}_ts ON {view} (_ts)")
        else:
            con.execute(f"CREATE TEMP VIEW {view} AS {select}")
        made.add(view)
    return made


def _tags(tags: list[str]) -> tuple[list[str], list[str], list[str]]:
    attack, nhi, csf = [], [], []
    for t in tags:
        low = t.lower()
        m = re.fullmatch(r"attack\.(t\d{4}(?:\.\d{3})?)", low)
        if m:
            attack.append(m.group(1).upper())
        m = re.fullmatch(r"stanch\.nhi(10|[1-9])", low)
        if m:
            nhi.append(f"NHI{m.group(1)}:2025")
        m = re.fullmatch(r"stanch\.csf\.(gv|id|pr|de|rs|rc)-([a-z]{2})-(\d{2})", low)
        if m:
            csf.append(f"{m.group(1).upper()}.{m.group(2).upper()}-{m.group(3)}")
    return sorted(set(attack)), sorted(set(nhi)), sorted(set(csf))


def _finding(loaded: _Loaded, q: dict[str, Any], rows: list[tuple[str, int, int | None]],
             extra: dict[str, Any] | None = None) -> Finding:
    rule = loaded.rule
    rows = sorted(rows, key=lambda r: r[1])
    attack, nhi, csf = _tags([str(t) for t in (q.get("tags") or [])])
    level = str(q.get("level") or "medium")
    first_cred = rows[0][2] if rows else None
    author = str(q.get("author") or "") or None
    title = str(q.get("title") or rule.title or "")
    creds = {r[2] for r in rows if r[2] is not None}
    summary = f"Sigma: {title}: {len(rows)} event{'s' if len(rows) != 1 else ''}"
    if len(creds) > 1:
        summary += f" on {len(creds)} credentials"
    if author:
        summary += f" (rule by {author})"
    details: dict[str, Any] = {"level": level, "status": str(q.get("status") or ""),
                               "references": [str(r) for r in (getattr(rule, "references", None) or [])]}
    if extra:
        details.update(extra)
    return Finding(
        rule_id=str(q.get("id") or getattr(rule, "name", None) or title), title=title,
        severity=LEVELS.get(level, "medium"), subject=f"credential:{first_cred}" if first_cred is not None else None,
        summary=summary, evidence=[r[0] for r in rows[:EVIDENCE_KEEP]], count=len(rows),
        first=micros_to_iso(rows[0][1]) if rows else None, last=micros_to_iso(rows[-1][1]) if rows else None,
        nhi=nhi, csf=csf, attack=attack, source=f"sigma:{loaded.file.name}", author=author, license=loaded.license,
        details=details)


def run_sigma(case: Case, rule_paths: Iterable[str | Path], *,
              placeholders: dict[str, list[str]] | None = None) -> tuple[list[Finding], list[str]]:
    """Run every Sigma rule (*.yml, *.yaml) under `rule_paths` over the case; return findings and problems.

    The case file is opened a second time, read-only: nothing is written. Store the findings with
    `findings.run(case, extra=found)`. `placeholders`: values for `%name%` placeholders (rules using a
    placeholder not given here are skipped and reported)."""
    problems: list[str] = []
    collection, loaded = _load(rule_paths, problems)
    plans = _convert(collection, loaded, placeholders, problems)
    found: list[Finding] = []
    if not plans:
        return found, problems
    from sigma.backends.sqlite.runtime import execute_plan

    con = connect_read_only(case.path)
    try:
        made = _create_relations(con, plans, problems)
        for where, q in plans:
            name = f"{where.file.name}: rule {q.get('title') or where.rule.title}"
            try:
                if q.get("result_type") == "correlation":
                    plan = q["correlation_plan"]
                    if not all(t.strip('"`') in made for t in plan["source_tables"].values()):
                        problems.append(f"{name}: a correlated rule's source is not available; skipped")
                        continue
                    alerts, _ = execute_plan(con, plan, include_events=False)
                    # overlapping windows of one group are one finding: the union of their events
                    groups: dict[str, tuple[dict[str, Any], set[str], int]] = {}
                    for alert in alerts:
                        keys = alert.get("group_keys") or {}
                        g = groups.setdefault(json.dumps(keys, sort_keys=True, default=str), (keys, set(), 0))
                        g[1].update(str(i).split(":", 1)[1] for i in alert["event_ids"])
                        groups[json.dumps(keys, sort_keys=True, default=str)] = (g[0], g[1], g[2] + 1)
                    for keys, ids, windows in groups.values():
                        found.append(_finding(where, q, _event_rows(con, sorted(ids)),
                                              {"group": keys, "correlation": True, "windows": windows}))
                else:
                    rows = []
                    for sql in q.get("rule") or []:
                        cur = con.execute(sql)
                        cols = [d[0] for d in cur.description]
                        i, t, c = cols.index("_id"), cols.index("_ts"), cols.index("_cred")
                        rows += [(r[i], r[t], r[c]) for r in cur]
                    if rows:
                        found.append(_finding(where, q, list({r[0]: r for r in rows}.values())))
            except sqlite3.Error as e:
                problems.append(f"{name}: query failed ({_short(e)}); skipped")
    finally:
        con.close()
    return found, problems


def _event_rows(con: sqlite3.Connection, ids: list[str]) -> list[tuple[str, int, int | None]]:
    return [(r[0], r[1], r[2]) for r in con.execute(
        "SELECT id, ts, credential_id FROM main.events WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),))]


def timed_run(case: Case, rule_paths: Iterable[str | Path], **kw: Any) -> tuple[list[Finding], list[str], float]:
    """run_sigma and the seconds it took (for the CLI's run details)."""
    t = time.perf_counter()
    found, problems = run_sigma(case, rule_paths, **kw)
    return found, problems, round(time.perf_counter() - t, 3)
