"""Merging another responder's case into this one (`stanch merge CASE OTHER`), without a server.

OTHER is opened read-only and must verify (`audit.verify`) before anything is taken from it: a tampered case is
refused, never laundered into this case's chain. Then, in one transaction of this case:

- sources: matched by SHA-256 (else path, format and start time); the others are copied;
- credentials: each of OTHER's credentials is re-resolved from its keys through `identity.Resolver`, the code path
  ingest uses (keys that meet merge credentials here too); its facts fill what this case lacks and its status fills
  an `unknown` one (a disagreement is reported, never overwritten);
- events: deduplicated by id (the `(ts, id)` key ingest uses), their credential and source ids mapped, their row
  hashes recomputed for the source they now belong to; rollups and full-text rows follow;
- exposures, notes, marks, snapshots, finding runs with their findings, plans with their items and journal are
  united (a row equal to one already here is not copied; a plan with the same hash and playbook is the same plan:
  its journal rows are united and its items take OTHER's state where OTHER's is newer);
- OTHER's audit chain is preserved as data: a `snapshots` row (connector `stanch`, what `stanch.audit-chain`,
  target `case:<hash of its first entry>`) holding every entry and its head, audited by this case's chain like any
  snapshot; `merged_chains` re-walks the stored copies;
- every audited table written gets its `merge.<table>` audit entry (events: one per EVENT_BATCH), and one `merge`
  entry closes the operation with what was added; sources and credentials are written as ingest writes them
  (not row-audited), and the `merge` entry names OTHER's sources beside this case's. A merge that would add
  nothing writes nothing (no rows, no audit entry): merging twice changes nothing.

Not merged: meta (title, incident window, policy) and pull cursors stay this case's. A plan copied from OTHER keeps
its approval as a record, but applying it here needs an approval in this case's chain (`check_approved`), and its
items name this case's credential numbers, so it usually needs planning again here before it can be approved.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time as _time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from casefile import audit
from casefile.case import APP_NAME, Case, CaseError
from casefile.identity import REF_FACTS, Resolver
from casefile.patterns import resource_pattern
from casefile.schema import FTS_DOC_SQL, SCHEMA_VERSION, ensure_derived, fold_rollups
from casefile.timeutil import now_iso, to_micros

#: How OTHER's audit chain is stored in this case (a `snapshots` row; see the module docstring).
CHAIN_CONNECTOR = "stanch"
CHAIN_WHAT = "stanch.audit-chain"
#: OTHER's events per audit entry (all in the merge's one transaction).
EVENT_BATCH = 50_000
_ALIAS = "mrg"  # OTHER, attached read-only
_AUDIT_COLS = ("seq", "time", "who", "operation", "details", "tbl", "row_lo", "row_hi", "row_count", "digest",
               "prev_hash", "hash")


@dataclass(slots=True)
class MergeSummary:
    """What a merge did. `changed` is False when OTHER held nothing this case lacks (nothing was written)."""

    other: str
    title: str | None
    origin: str
    head: str
    entries: int
    changed: bool = False
    added: dict[str, int] = field(default_factory=dict)
    credentials: dict[str, int] = field(default_factory=dict)
    status_conflicts: list[dict[str, Any]] = field(default_factory=list)
    items_updated: int = 0
    union_run: int | None = None
    sources: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _NothingNew(Exception):
    """Raised inside the merge transaction to roll it back when OTHER added nothing."""


def merge(case: Case, other_path: str | os.PathLike[str]) -> MergeSummary:
    """Merge the case at `other_path` into `case` (see the module docstring). Raises CaseError with one line."""
    started = _time.perf_counter()
    other = Path(other_path)
    ro = _open_other(case, other)
    try:
        ro.execute("BEGIN")  # one consistent read of OTHER for the checks below
        head, entries, problems = audit.verify(ro)
        if problems:
            raise CaseError(f"{other}: its audit chain does not verify ({len(problems)} problem(s), first: "
                            f"{problems[0]}); run `stanch verify {other}` and merge only a case that verifies")
        first = ro.execute("SELECT hash FROM audit ORDER BY seq LIMIT 1").fetchone()
        if first is None:
            raise CaseError(f"{other}: has no audit chain; create cases with `stanch new`")
        title = ro.execute("SELECT value FROM meta WHERE key = 'title'").fetchone()
        summary = MergeSummary(other=str(other), title=title[0] if title else None, origin=first[0], head=head,
                               entries=entries)
        chain = [list(r) for r in ro.execute(f"SELECT {', '.join(_AUDIT_COLS)} FROM audit ORDER BY seq")]
    except sqlite3.DatabaseError as e:
        raise CaseError(f"{other}: not a readable SQLite case ({e}); check the file") from e
    finally:
        ro.close()
    c = case.conn
    # Read-only where this SQLite reads URI names in ATTACH (it then never checkpoints or recovers OTHER's WAL).
    uri = any(r[0].startswith("USE_URI") for r in c.execute("PRAGMA compile_options"))
    try:
        c.execute(f"ATTACH DATABASE ? AS {_ALIAS}", (other.resolve().as_uri() + "?mode=ro" if uri
                                                      else str(other.resolve()),))
    except sqlite3.Error as e:
        raise CaseError(f"{other}: cannot be read ({e}); copy it to a local writable folder and merge the copy") from e
    try:
        attached = c.execute("SELECT file FROM pragma_database_list WHERE name = ?", (_ALIAS,)).fetchone()
        if attached is None or not attached[0] or not os.path.samefile(attached[0], other):
            raise CaseError(f"{other}: could not be attached for reading; copy it to a local folder and merge the copy")
        _register_functions(c)
        try:
            with case.transaction():
                now_head = c.execute(f"SELECT hash FROM {_ALIAS}.audit ORDER BY seq DESC LIMIT 1").fetchone()
                if now_head is None or now_head[0] != head:
                    raise CaseError(f"{other}: changed while it was being merged; merge again when it is closed")
                _Merger(case, summary, chain).run()
        except _NothingNew:
            summary.changed = False
    finally:
        with contextlib.suppress(sqlite3.Error):  # never hide the error that brought us here
            c.execute("DROP TABLE IF EXISTS temp.merge_src")
            c.execute("DROP TABLE IF EXISTS temp.merge_cred")
            c.execute(f"DETACH DATABASE {_ALIAS}")
    if summary.changed:
        ensure_derived(c)  # full-text rows the merge could not add in step with its events
    summary.seconds = round(_time.perf_counter() - started, 3)
    return summary


def _open_other(case: Case, other: Path) -> sqlite3.Connection:
    if not other.exists():
        raise CaseError(f"{other}: no such case file; give the path of the case to merge in")
    if other.is_dir():
        raise CaseError(f"{other}: is a directory, not a case file")
    if os.path.samefile(other, case.path):
        raise CaseError(f"{other}: is the case being merged into; name another case")
    with open(other, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise CaseError(f"{other}: not a stanch case (not an SQLite file)")
    try:
        ro = sqlite3.connect(other.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None, timeout=30)
    except sqlite3.Error as e:
        raise CaseError(f"{other}: cannot be opened read-only ({e}); copy it to a writable folder and merge the copy") from e
    try:
        ro.execute("PRAGMA trusted_schema = OFF")
        tables = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        app = ro.execute("SELECT value FROM meta WHERE key = 'app'").fetchone() if "meta" in tables else None
        if app is None or app[0] != APP_NAME:
            raise CaseError(f"{other}: not a stanch case (no stanch meta table)")
        version = int(ro.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CaseError(f"{other}: case schema v{version} is newer than this stanch understands "
                            f"(v{SCHEMA_VERSION}); upgrade stanch (pip install -U stanch)")
        if version < SCHEMA_VERSION:
            raise CaseError(f"{other}: case schema v{version} is older than v{SCHEMA_VERSION}; upgrade it first by "
                            f"opening it once with this stanch (`stanch info {other}`), then merge")
        return ro
    except sqlite3.DatabaseError as e:
        ro.close()
        raise CaseError(f"{other}: not a readable SQLite case ({e}); check the file") from e
    except CaseError:
        ro.close()
        raise


def _register_functions(c: sqlite3.Connection) -> None:
    def event_hash(event_id: str, source_id: int | None, *content: Any) -> str:
        return audit.event_row_hash(event_id, source_id, audit.event_content_hash(content))

    c.create_function("stanch_merge_event_hash", 2 + len(audit.EVENT_CONTENT), event_hash, deterministic=True)
    c.create_function("stanch_merge_pattern", 1, resource_pattern, deterministic=True)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class _Merger:
    """One merge, inside the case's write transaction, OTHER attached as `mrg`."""

    def __init__(self, case: Case, summary: MergeSummary, chain: list[list[Any]]) -> None:
        self.case = case
        self.c = case.conn
        self.who = case.analyst
        self.summary = summary
        self.chain = chain
        self.cred: dict[int, int] = {}  # OTHER credential id -> this case's
        self.src: dict[int, int] = {}  # OTHER source id -> this case's
        self.plan: dict[int, int] = {}  # OTHER plan id -> this case's
        self.runs: dict[int, int] = {}  # OTHER finding run id -> this case's

    # -- the operation ------------------------------------------------------------------------
    def run(self) -> None:
        creds_before = self._credentials_fingerprint()
        added = self.summary.added
        added["sources"] = self._sources()
        self._credentials()
        added["events"] = self._events()
        added["exposures"] = self._exposures()
        added["notes"] = self._notes()
        added["marks"] = self._marks()
        added["finding_runs"], added["findings"] = self._findings()
        added["plans"], added["journal"] = self._plans()
        added["snapshots"] = self._snapshots()
        creds_changed = self._credentials_fingerprint() != creds_before
        if not any(added.values()) and not creds_changed and not self.summary.items_updated:
            raise _NothingNew
        self.summary.changed = True
        audit.append(self.c, self.who, "merge", {
            "other": self.summary.other, "title": self.summary.title, "origin": self.summary.origin,
            "head": self.summary.head, "entries": self.summary.entries, "added": added,
            "credentials": self.summary.credentials, "items_updated": self.summary.items_updated,
            "union_run": self.summary.union_run, "sources": {str(k): v for k, v in self.summary.sources.items()},
        })

    def _record(self, tbl: str, before: int, seq: int, details: dict[str, Any]) -> int:
        return audit.record_rows(self.c, tbl, before, seq, self.who, f"merge.{tbl}",
                                 {"origin": self.summary.origin, **details})

    def _top(self, tbl: str) -> int:
        return int(self.c.execute(f"SELECT coalesce(max(rowid), 0) FROM main.{tbl}").fetchone()[0])

    def _credentials_fingerprint(self) -> tuple[str, int]:
        h = hashlib.sha256()
        for row in self.c.execute("SELECT * FROM main.credentials ORDER BY id"):
            h.update(orjson.dumps(list(row)))
        return h.hexdigest(), int(self.c.execute("SELECT count(*) FROM main.credential_keys").fetchone()[0])

    # -- sources ------------------------------------------------------------------------------
    def _sources(self) -> int:
        c = self.c
        cols = ("path", "vendor", "format", "parser_version", "sha256", "size", "started_at", "finished_at", "status",
                "events_seen", "events_added", "malformed", "skipped", "problems", "analyst")
        added = 0
        for oid, *values in c.execute(f"SELECT id, {', '.join(cols)} FROM {_ALIAS}.sources ORDER BY id").fetchall():
            row = dict(zip(cols, values, strict=True))
            if row["sha256"]:
                hit = c.execute("SELECT id FROM main.sources WHERE sha256 = ? ORDER BY status = 'done' DESC, id"
                                " LIMIT 1", (row["sha256"],)).fetchone()
            else:
                hit = c.execute("SELECT id FROM main.sources WHERE sha256 IS NULL AND path IS ? AND format IS ? AND"
                                " started_at IS ? LIMIT 1", (row["path"], row["format"], row["started_at"])).fetchone()
            if hit is None:
                if row["status"] == "running":  # OTHER's ingest never finished; here nobody is running it
                    row["status"] = "interrupted"
                cur = c.execute(f"INSERT INTO main.sources({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                [row[k] for k in cols])
                self.src[oid] = int(cur.lastrowid or 0)
                added += 1
            else:
                self.src[oid] = int(hit[0])
        self.summary.sources = dict(self.src)
        c.execute("CREATE TEMP TABLE merge_src(other INTEGER PRIMARY KEY, local INTEGER)")
        c.executemany("INSERT INTO temp.merge_src VALUES (?, ?)", self.src.items())
        return added

    # -- credentials --------------------------------------------------------------------------
    def _credentials(self) -> None:
        """Re-resolve each of OTHER's credentials from its keys, as ingest would (merging where keys meet)."""
        c = self.c
        keys_of: dict[int, list[tuple[str, int | None]]] = {}
        for key, cid, sid in c.execute(f"SELECT key, credential_id, source_id FROM {_ALIAS}.credential_keys"
                                       " ORDER BY credential_id, key"):
            keys_of.setdefault(cid, []).append((key, sid))
        resolver = Resolver(c, None)
        new_keys: list[tuple[int | None, str]] = []
        facts_sql = ", ".join(REF_FACTS)
        resolved = 0
        for oid, first_seen, last_used, *facts in c.execute(
                f"SELECT id, first_seen, last_used, {facts_sql} FROM {_ALIAS}.credentials ORDER BY id"
        ).fetchall():
            keys = keys_of.get(oid)
            if not keys:
                continue  # a credential with no key cannot be matched; its events keep no credential here
            for key, sid in keys:
                if c.execute("SELECT 1 FROM main.credential_keys WHERE key = ?", (key,)).fetchone() is None:
                    new_keys.append((self.src.get(sid) if sid is not None else None, key))
            names = [k for k, _ in keys]
            if first_seen:
                resolver.resolve_span(" ".join(names), facts, to_micros(first_seen),
                                      to_micros(last_used or first_seen))
            else:  # found in data only: no first or last use
                fact = dict(zip(REF_FACTS, facts, strict=True))
                cid = resolver.resolve_untimed(names, str(fact["kind"] or "unknown"), fact["preview"])
                others = [n for n in REF_FACTS if n not in ("kind", "preview")]
                c.execute(f"UPDATE main.credentials SET {', '.join(f'{n} = coalesce({n}, ?)' for n in others)}"
                          " WHERE id = ?", (*(fact[n] for n in others), cid))
            resolved += 1
        resolver.flush()
        c.executemany("UPDATE main.credential_keys SET source_id = ? WHERE key = ? AND source_id IS NULL",
                      [(sid, key) for sid, key in new_keys if sid is not None])
        # Where each of OTHER's credentials ended up, now that every merge is done.
        filled = 0
        for oid, keys in keys_of.items():
            row = c.execute("SELECT credential_id FROM main.credential_keys WHERE key = ?", (keys[0][0],)).fetchone()
            if row is not None:
                self.cred[oid] = int(row[0])
        for oid, status in c.execute(f"SELECT id, status FROM {_ALIAS}.credentials").fetchall():
            local = self.cred.get(oid)
            if local is None or status in (None, "unknown"):
                continue
            mine = c.execute("SELECT status FROM main.credentials WHERE id = ?", (local,)).fetchone()[0]
            if mine in (None, "unknown"):
                c.execute("UPDATE main.credentials SET status = ? WHERE id = ?", (status, local))
                filled += 1
            elif mine != status:
                self.summary.status_conflicts.append({"credential": local, "here": mine, "other": status})
        self.summary.credentials = {"resolved": resolved, "created": resolver.created, "merged": resolver.merged,
                                    "keys_added": len(new_keys), "status_filled": filled}
        c.execute("CREATE TEMP TABLE merge_cred(other INTEGER PRIMARY KEY, local INTEGER)")
        c.executemany("INSERT INTO temp.merge_cred VALUES (?, ?)", self.cred.items())

    def _ref(self, ref: str | None) -> str | None:
        """A note's `credential:<n>` / `source:<n>` in OTHER's numbering, in this case's."""
        if not ref:
            return ref
        kind, _, ident = ref.partition(":")
        table = {"credential": self.cred, "source": self.src}.get(kind)
        if table is None or not ident.isdigit():
            return ref
        local = table.get(int(ident))
        return f"{kind}:{local}" if local is not None else ref

    # -- events -------------------------------------------------------------------------------
    def _events(self) -> int:
        c = self.c
        cols = [r[1] for r in c.execute("PRAGMA main.table_info(events)") if r[1] != "rowid"]
        special = {
            "credential_id": "cm.local", "subject_credential_id": "sm2.local", "source_id": "sm.local",
            "audit_seq": "?3",
            "row_hash": f"stanch_merge_event_hash(o.id, sm.local, {', '.join('o.' + x for x in audit.EVENT_CONTENT)})",
            "pattern": "coalesce(o.pattern, stanch_merge_pattern(o.resource))",
        }
        sql = (f"INSERT OR IGNORE INTO main.events({', '.join(cols)}) "
               f"SELECT {', '.join(special.get(x, 'o.' + x) for x in cols)} FROM {_ALIAS}.events AS o"
               " LEFT JOIN temp.merge_src AS sm ON sm.other = o.source_id"
               " LEFT JOIN temp.merge_cred AS cm ON cm.other = o.credential_id"
               " LEFT JOIN temp.merge_cred AS sm2 ON sm2.other = o.subject_credential_id"
               " WHERE o.rowid > ?1 AND o.rowid <= ?2"
               " AND NOT EXISTS (SELECT 1 FROM main.events AS e WHERE e.ts = o.ts AND e.id = o.id) ORDER BY o.rowid")
        lo, hi = c.execute(f"SELECT coalesce(min(rowid), 1) - 1, coalesce(max(rowid), 0) FROM {_ALIAS}.events"
                           ).fetchone()
        total = 0
        pending_objects = False
        while lo < hi:
            upto = min(lo + EVENT_BATCH, hi)
            seq, _ = audit.next_seq(c)
            before = self._top("events")
            c.execute(sql, (lo, upto, seq))
            top = self._top("events")
            if top > before:
                fts = c.execute("SELECT value FROM main.meta WHERE key = 'fts_rowid'").fetchone()
                if fts is not None and int(fts[0]) == before:
                    c.execute(f"INSERT INTO main.events_fts(rowid, doc) SELECT rowid, {FTS_DOC_SQL} FROM main.events"
                              " WHERE rowid > ?", (before,))
                    c.execute("UPDATE main.meta SET value = ? WHERE key = 'fts_rowid'", (str(top),))
                fold_rollups(c, before)
                pending_objects = pending_objects or c.execute(
                    "SELECT 1 FROM main.events WHERE rowid > ? AND objects IS NULL AND resource IS NOT NULL LIMIT 1",
                    (before,)).fetchone() is not None
                total += self._record("events", before, seq, {"events": top - before})
            lo = upto
        if pending_objects:  # events stored before objects were derived: the blast radius reads theirs
            c.execute("INSERT INTO main.meta(key, value) VALUES ('objects_pending', '1')"
                      " ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        return total

    def _event_rowid(self, ts: int | None, event_id: str | None) -> int | None:
        if ts is None or event_id is None:
            return None
        row = self.c.execute("SELECT rowid FROM main.events WHERE ts = ? AND id = ?", (ts, event_id)).fetchone()
        return int(row[0]) if row else None

    # -- audited rows, copied -----------------------------------------------------------------
    def _insert(self, tbl: str, cols: Sequence[str], hashed: Sequence[str], rows: Iterable[dict[str, Any]],
                details: dict[str, Any]) -> int:
        """Insert rows into an audited table with fresh rowids, their row hashes over `hashed`, one audit entry."""
        c = self.c
        seq, _ = audit.next_seq(c)
        before = self._top(tbl)
        rowid = before
        for row in rows:
            rowid += 1
            row = {**row, "rowid": rowid, "audit_seq": seq}
            c.execute(f"INSERT INTO main.{tbl}({', '.join(cols)}, row_hash) VALUES ({', '.join('?' * (len(cols) + 1))})",
                      (*(row[k] for k in cols), audit.row_hash([row[k] for k in hashed])))
        return self._record(tbl, before, seq, details)

    def _exposures(self) -> int:
        c = self.c
        key = ("credential_id", "source_id", "event_id", "line", "object", "object_type", "field", "shape", "preview")
        have = set(c.execute(f"SELECT {', '.join(key)} FROM main.exposures").fetchall())
        rows = []
        for *values, ts in c.execute(f"SELECT {', '.join('x.' + k for k in key)}, e.ts FROM {_ALIAS}.exposures AS x"
                                     f" LEFT JOIN {_ALIAS}.events AS e ON e.rowid = x.event_rowid ORDER BY x.rowid"
                                     ).fetchall():
            row = dict(zip(key, values, strict=True))
            row["credential_id"] = self.cred.get(row["credential_id"])
            row["source_id"] = self.src.get(row["source_id"]) if row["source_id"] is not None else None
            t = tuple(row[k] for k in key)
            if row["credential_id"] is None or t in have:
                continue
            have.add(t)
            row["event_rowid"] = self._event_rowid(ts, row["event_id"]) if row["event_id"] else None
            rows.append(row)
        cols = ("rowid", *key, "audit_seq", "event_rowid")
        return self._insert("exposures", cols, audit.EXPOSURE_COLUMNS, rows, {"exposures": len(rows)})

    def _notes(self) -> int:
        key = ("time", "who", "text", "on_ref")
        have = set(self.c.execute(f"SELECT {', '.join(key)} FROM main.notes").fetchall())
        rows = []
        for values in self.c.execute(f"SELECT {', '.join(key)} FROM {_ALIAS}.notes ORDER BY rowid").fetchall():
            row = dict(zip(key, values, strict=True))
            row["on_ref"] = self._ref(row["on_ref"])
            t = tuple(row[k] for k in key)
            if t not in have:
                have.add(t)
                rows.append(row)
        return self._insert("notes", ("rowid", *key, "audit_seq"), audit.NOTE_COLUMNS, rows, {"notes": len(rows)})

    def _marks(self) -> int:
        """OTHER's marks, then, for an event whose latest mark by time is not its latest row (an older mark from OTHER
        appended after a newer one here), a row restating the latest: an event's mark stays the latest decision."""
        c = self.c
        key = ("time", "who", "event_id", "marked")
        have = set(c.execute(f"SELECT {', '.join(key)} FROM main.marks").fetchall())
        rows = []
        for values in c.execute(f"SELECT {', '.join(key)} FROM {_ALIAS}.marks ORDER BY rowid").fetchall():
            if values not in have:
                have.add(values)
                rows.append(dict(zip(key, values, strict=True)))
        touched = {r["event_id"] for r in rows}
        history: dict[str, list[tuple[str, int]]] = {}
        for event_id, t, marked in c.execute("SELECT event_id, time, marked FROM main.marks ORDER BY rowid"):
            if event_id in touched:
                history.setdefault(event_id, []).append((t, marked))
        for r in rows:
            history.setdefault(r["event_id"], []).append((r["time"], r["marked"]))
        restated = []
        now = now_iso()
        for event_id in sorted(touched):
            rows_in_order = history[event_id]
            by_time = max(range(len(rows_in_order)), key=lambda i: (rows_in_order[i][0], i))
            if rows_in_order[by_time][1] != rows_in_order[-1][1]:
                restated.append({"time": now, "who": self.who, "event_id": event_id,
                                 "marked": rows_in_order[by_time][1]})
        return self._insert("marks", ("rowid", *key, "audit_seq"), audit.MARK_COLUMNS, rows + restated,
                            {"marks": len(rows), "restated": len(restated)})

    def _snapshots(self) -> int:
        c = self.c
        key = ("time", "who", "connector", "what", "target", "body")
        have = set(c.execute(f"SELECT {', '.join(key)} FROM main.snapshots").fetchall())
        rows = []
        for values in c.execute(f"SELECT {', '.join(key)} FROM {_ALIAS}.snapshots ORDER BY rowid").fetchall():
            if values not in have:
                have.add(values)
                rows.append(dict(zip(key, values, strict=True)))
        target = f"case:{self.summary.origin}"
        stored = any(orjson.loads(b).get("head") == self.summary.head for (b,) in c.execute(
            "SELECT body FROM main.snapshots WHERE connector = ? AND what = ? AND target = ?",
            (CHAIN_CONNECTOR, CHAIN_WHAT, target)))
        own = c.execute("SELECT hash FROM main.audit WHERE seq = ?", (self.summary.entries,)).fetchone()
        if not stored and not (own is not None and own[0] == self.summary.head):  # OTHER's chain, unless it is ours
            body = {"origin": self.summary.origin, "title": self.summary.title, "path": self.summary.other,
                    "head": self.summary.head, "entries": self.summary.entries, "columns": list(_AUDIT_COLS),
                    "chain": self.chain}
            rows.append({"time": now_iso(), "who": self.who, "connector": CHAIN_CONNECTOR, "what": CHAIN_WHAT,
                         "target": target, "body": _json(body)})
        return self._insert("snapshots", ("rowid", *key, "audit_seq"), audit.SNAPSHOT_COLUMNS, rows,
                            {"snapshots": len(rows)})

    # -- findings -----------------------------------------------------------------------------
    _FINDING = ("rule_id", "rule_title", "rule_source", "rule_author", "rule_license", "severity", "subject",
                "summary", "first", "last", "count", "evidence", "nhi", "csf", "attack", "details")

    def _findings(self) -> tuple[int, int]:
        """OTHER's finding runs not here, with their findings; then, when OTHER's latest run is now the latest here
        and this case had one, a run uniting both latest runs (the report and console read the latest run)."""
        c = self.c
        run_key = ("time", "who", "rules", "findings", "seconds")
        have = {tuple(r[1:]): r[0] for r in c.execute(f"SELECT id, {', '.join(run_key)} FROM main.finding_runs")}
        latest_before = c.execute("SELECT max(id) FROM main.finding_runs").fetchone()[0]
        copied: list[int] = []
        seq, _ = audit.next_seq(c)
        before = self._top("findings")
        rowid = before
        other_runs = c.execute(f"SELECT id, {', '.join(run_key)}, details FROM {_ALIAS}.finding_runs ORDER BY id"
                               ).fetchall()
        for oid, *values, details in other_runs:
            hit = have.get(tuple(values))
            if hit is not None:
                self.runs[oid] = hit
                continue
            cur = c.execute(f"INSERT INTO main.finding_runs({', '.join(run_key)}, details) VALUES (?,?,?,?,?,?)",
                            (*values, details))
            self.runs[oid] = local = int(cur.lastrowid or 0)
            copied.append(local)
            for f in c.execute(f"SELECT {', '.join(self._FINDING)} FROM {_ALIAS}.findings WHERE run = ? ORDER BY rowid",
                               (oid,)).fetchall():
                rowid += 1
                self._finding_row(rowid, local, dict(zip(self._FINDING, f, strict=True)), seq, remap=True)
        union = None
        other_latest = self.runs.get(other_runs[-1][0]) if other_runs else None
        if latest_before is not None and other_latest in copied:
            union = self._union_run(latest_before, other_latest, seq, rowid)
        self.summary.union_run = union
        n_runs = len(copied) + (union is not None)
        details = {"runs": copied, "union_run": union}
        n = self._record("findings", before, seq, details)
        if n_runs and not n:
            audit.append(c, self.who, "merge.findings", {"origin": self.summary.origin, **details})
        return n_runs, n

    def _finding_row(self, rowid: int, run: int, f: dict[str, Any], seq: int, remap: bool) -> None:
        if remap:
            f["subject"] = self._ref(f["subject"])
        values = (rowid, run, *(f[k] for k in self._FINDING), seq)
        self.c.execute(f"INSERT INTO main.findings(rowid, run, {', '.join(self._FINDING)}, audit_seq, row_hash)"
                       f" VALUES ({', '.join('?' * (len(values) + 1))})", (*values, audit.row_hash(values)))

    def _union_run(self, mine: int, theirs: int, seq: int, rowid: int) -> int:
        c = self.c
        by_key: dict[tuple[Any, Any], dict[str, Any]] = {}
        for run in (mine, theirs):
            for f in c.execute(f"SELECT {', '.join(self._FINDING)} FROM main.findings WHERE run = ? ORDER BY rowid",
                               (run,)).fetchall():
                d = dict(zip(self._FINDING, f, strict=True))
                k = (d["rule_id"], d["subject"])
                if k not in by_key or d["count"] > by_key[k]["count"]:
                    by_key[k] = d
        rules = c.execute("SELECT max(rules) FROM main.finding_runs WHERE id IN (?, ?)", (mine, theirs)).fetchone()[0]
        cur = c.execute("INSERT INTO main.finding_runs(time, who, rules, findings, seconds, details) VALUES"
                        " (?,?,?,?,?,?)", (now_iso(), self.who, rules or 0, len(by_key), 0.0,
                                           _json({"union_of": [mine, theirs], "merged_from": self.summary.origin})))
        union = int(cur.lastrowid or 0)
        for d in by_key.values():
            rowid += 1
            self._finding_row(rowid, union, d, seq, remap=False)
        return union

    # -- plans --------------------------------------------------------------------------------
    _PLAN = ("playbook", "title", "created_at", "created_by", "inputs", "hash", "body")
    _ITEM = ("seq", "step", "kind", "connector", "connector_kind", "verb", "target", "preview", "credential_id",
             "secret_key", "needs_raw", "reversible", "rotation", "undo", "text", "idempotency_key", "state",
             "attempts", "verdict", "evidence", "note", "updated_at")
    _ITEM_STATE = ("state", "attempts", "verdict", "evidence", "note", "undo", "updated_at")

    def _plans(self) -> tuple[int, int]:
        """OTHER's plans not here (same hash and playbook: the same plan), with items and journal rows."""
        c = self.c
        have = {(h, p): i for i, h, p in c.execute("SELECT id, hash, playbook FROM main.plans")}
        seq, _ = audit.next_seq(c)
        before = self._top("plans")
        pid = before
        present: list[tuple[int, int]] = []
        for oid, *values, by, at, ahash in c.execute(
                f"SELECT id, {', '.join(self._PLAN)}, approved_by, approved_at, approved_hash FROM {_ALIAS}.plans"
                " ORDER BY id").fetchall():
            row = dict(zip(self._PLAN, values, strict=True))
            hit = have.get((row["hash"], row["playbook"]))
            if hit is not None:
                self.plan[oid] = hit
                present.append((oid, hit))
                continue
            pid += 1
            self.plan[oid] = pid
            have[(row["hash"], row["playbook"])] = pid
            hashed = (pid, *values, seq)
            c.execute(f"INSERT INTO main.plans(id, {', '.join(self._PLAN)}, approved_by, approved_at, approved_hash,"
                      f" audit_seq, row_hash) VALUES ({', '.join('?' * (len(self._PLAN) + 6))})",
                      (pid, *values, by, at, ahash, seq, audit.row_hash(hashed)))
            items = []
            for item in c.execute(f"SELECT {', '.join(self._ITEM)} FROM {_ALIAS}.plan_items WHERE plan_id = ?"
                                  " ORDER BY seq", (oid,)).fetchall():
                d = dict(zip(self._ITEM, item, strict=True))
                d["credential_id"] = self.cred.get(d["credential_id"]) if d["credential_id"] is not None else None
                items.append((pid, *(d[k] for k in self._ITEM)))
            c.executemany(f"INSERT INTO main.plan_items(plan_id, {', '.join(self._ITEM)}) VALUES"
                          f" ({', '.join('?' * (len(self._ITEM) + 1))})", items)
        n_plans = self._record("plans", before, seq, {"plans": pid - before})
        for oid, local in present:  # the same plan worked in both cases: the newer state of each item wins
            for item in c.execute(f"SELECT seq, {', '.join(self._ITEM_STATE)} FROM {_ALIAS}.plan_items"
                                  " WHERE plan_id = ?", (oid,)).fetchall():
                d = dict(zip(("seq", *self._ITEM_STATE), item, strict=True))
                cur = c.execute(f"UPDATE main.plan_items SET {', '.join(f'{k} = ?' for k in self._ITEM_STATE)}"
                                " WHERE plan_id = ? AND seq = ? AND ? IS NOT NULL AND (updated_at IS NULL OR"
                                " updated_at < ?)", (*(d[k] for k in self._ITEM_STATE), local, d["seq"],
                                                     d["updated_at"], d["updated_at"]))
                self.summary.items_updated += cur.rowcount
        key = ("plan_id", "seq", "time", "who", "phase", "state", "detail")
        have_j = set(c.execute(f"SELECT {', '.join(key)} FROM main.journal").fetchall())
        rows = []
        for values in c.execute(f"SELECT {', '.join(key)} FROM {_ALIAS}.journal ORDER BY rowid").fetchall():
            row = dict(zip(key, values, strict=True))
            row["plan_id"] = self.plan.get(row["plan_id"], row["plan_id"])
            t = tuple(row[k] for k in key)
            if t not in have_j:
                have_j.add(t)
                rows.append(row)
        n_journal = self._insert("journal", ("rowid", *key, "audit_seq"), audit.JOURNAL_COLUMNS, rows,
                                 {"journal": len(rows)})
        return n_plans, n_journal


# -- reading the preserved chains -------------------------------------------------------------

def merged_chains(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every audit chain merged into this case (one per stored copy, oldest first), each re-walked: its entries must
    chain from genesis, each hash must match its content, and the last must be the head recorded."""
    out = []
    for rowid, body in conn.execute("SELECT rowid, body FROM snapshots WHERE connector = ? AND what = ? ORDER BY rowid",
                                    (CHAIN_CONNECTOR, CHAIN_WHAT)):
        doc = orjson.loads(body)
        problems: list[str] = []
        prev = audit.GENESIS
        for i, entry in enumerate(doc["chain"], 1):
            seq, t, who, op, details, tbl, lo, hi, n, digest, prev_hash, h = entry
            if seq != i or prev_hash != prev:
                problems.append(f"entry {seq}: does not chain to the entry before it")
            if audit._entry_hash(prev_hash, seq, t, who, op, details, tbl, lo, hi, n, digest) != h:
                problems.append(f"entry {seq}: its hash does not match its content")
            prev = h
        if prev != doc["head"] or len(doc["chain"]) != doc["entries"]:
            problems.append(f"the stored chain ends at {prev[:16]}, not at the recorded head {doc['head'][:16]}")
        out.append({"origin": doc["origin"], "title": doc.get("title"), "path": doc.get("path"), "head": doc["head"],
                    "entries": doc["entries"], "snapshot": rowid, "problems": problems})
    return out
