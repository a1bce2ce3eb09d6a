"""Streaming ingest: parse → redact → resolve credentials → batched, audited inserts.

Constant memory per file (a batch at a time), one transaction per batch, each batch audited.
Re-ingesting a file already ingested adds nothing: a finished source with the same SHA-256 is
skipped, and every event has a stable id (vendor id, or the hash of its normalised line plus
its occurrence number in the file) so a re-read of a partly ingested file inserts only the rest.
"""

from __future__ import annotations

import hashlib
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from casefile import audit, formats
from casefile.case import Case, CaseError
from casefile.identity import KeyError_, Resolver
from casefile.records import ACTIONS, CredentialRef, Parsed, Problem
from casefile.redact import redact
from casefile.secrets import Fingerprint
from casefile.sources import FileSource, expand
from casefile.timeutil import TimeError, micros_to_iso, now_iso, to_micros, to_utc_iso

BATCH = 5000
KEEP_PROBLEMS = 100

# Column order of the INSERT; rowid is assigned by stanch so the row hash can cover it.
_INSERT_COLS = ("rowid", "id", "ts", "time", "vendor", "action", "outcome", "credential_id", "subject_credential_id",
                "cred_keys", "subject_keys", "principal", "client", "src_ip", "user_agent", "country", "city", "asn",
                "method", "resource", "status", "bytes", "rows", "vendor_type", "vendor_id", "request_id",
                "session_id", "raw", "source_id", "line", "audit_seq")
_INSERT = (
    f"INSERT OR IGNORE INTO events({', '.join(_INSERT_COLS)}, row_hash)"
    f" VALUES ({','.join('?' * (len(_INSERT_COLS) + 1))})"
)
_AUDITED_IDX = tuple(_INSERT_COLS.index(c) for c in audit.AUDITED["events"])


@dataclass(slots=True)
class FileSummary:
    """What one file's ingest did."""

    path: str
    format: str | None = None
    sha256: str | None = None
    source_id: int | None = None
    events_seen: int = 0
    events_added: int = 0
    duplicates: int = 0
    malformed: int = 0
    skipped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    already_ingested: bool = False
    credentials_created: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[str, int], None]


def ingest(case: Case, paths: Iterable[str], format_name: str | None = None,
           progress: ProgressFn | None = None) -> list[FileSummary]:
    """Ingest files, directories or `-` (stdin). Format is detected per file unless `format_name` is given."""
    fmt = None
    if format_name is not None:
        fmt = formats.get(format_name)
        if fmt is None:
            names = ", ".join(f.name for f in formats.all_formats())
            raise CaseError(f"--format {format_name}: unknown format; one of: {names} (see `stanch formats`)")
    try:
        sources = expand(list(paths))
    except FileNotFoundError as e:
        raise CaseError(str(e)) from e
    return [ingest_source(case, src, fmt, progress) for src in sources]


def ingest_source(case: Case, src: FileSource, fmt: formats.Format | None = None,
                  progress: ProgressFn | None = None) -> FileSummary:
    """Ingest one file. Detection failures are reported in the summary (`error`), never raised."""
    started = _time.perf_counter()
    summary = FileSummary(path=src.name)
    digest = src.sha256()
    summary.sha256 = digest
    done = case.conn.execute(
        "SELECT id, format FROM sources WHERE sha256 = ? AND status = 'done' LIMIT 1", (digest,)
    ).fetchone()
    if done is not None:
        summary.already_ingested = True
        summary.source_id, summary.format = done
        summary.seconds = _time.perf_counter() - started
        return summary
    if fmt is None:
        try:
            fmt = formats.detect(src.head(), src.name)
        except formats.DetectionError as e:
            summary.error = str(e)
            return summary
    summary.format = fmt.name
    with case.transaction() as c:
        cur = c.execute(
            "INSERT INTO sources(path, vendor, format, parser_version, sha256, size, started_at, status, analyst)"
            " VALUES (?,?,?,?,?,?,?, 'running', ?)",
            (src.name, fmt.vendor, fmt.name, fmt.version, digest, src.size(), now_iso(), case.analyst),
        )
        source_id = int(cur.lastrowid or 0)
        audit.append(c, case.analyst, "ingest.start",
                     {"source": source_id, "path": src.name, "format": fmt.name, "sha256": digest})
    summary.source_id = source_id
    writer = _BatchWriter(case, source_id, fmt, summary)
    try:
        for item in fmt.parse(src):
            if isinstance(item, Problem):
                writer.problem(item)
                continue
            writer.add(item)
            if len(writer.pending) >= BATCH:
                writer.flush()
                if progress:
                    progress(src.name, summary.events_seen)
        writer.flush()
    except Exception as e:  # a parser bug must not lose what was stored; the source stays resumable
        writer.flush()
        summary.error = f"{src.name}: parser {fmt.name} stopped after {summary.events_seen} events: {e!r}"
        _finish(case, source_id, summary, status="failed")
        summary.seconds = _time.perf_counter() - started
        return summary
    if progress:
        progress(src.name, summary.events_seen)
    _finish(case, source_id, summary, status="done")
    summary.seconds = _time.perf_counter() - started
    return summary


def _finish(case: Case, source_id: int, summary: FileSummary, status: str) -> None:
    with case.transaction() as c:
        c.execute(
            "UPDATE sources SET status = ?, finished_at = ?, events_seen = ?, events_added = ?, malformed = ?,"
            " skipped = ?, problems = ? WHERE id = ?",
            (status, now_iso(), summary.events_seen, summary.events_added, summary.malformed, summary.skipped,
             orjson.dumps(summary.problems).decode(), source_id),
        )
        audit.append(c, case.analyst, f"ingest.{status}", {
            "source": source_id, "events_seen": summary.events_seen, "events_added": summary.events_added,
            "malformed": summary.malformed, "skipped": summary.skipped,
        })


class _BatchWriter:
    def __init__(self, case: Case, source_id: int, fmt: formats.Format, summary: FileSummary) -> None:
        self.case = case
        self.source_id = source_id
        self.fmt = fmt
        self.summary = summary
        self.pending: list[Parsed] = []
        self.occurrences: dict[bytes, int] = {}
        self.resolver = Resolver(case.conn, source_id)

    def problem(self, p: Problem) -> None:
        if p.kind == "skipped":
            self.summary.skipped += 1
        else:
            self.summary.malformed += 1
        if len(self.summary.problems) < KEEP_PROBLEMS:
            self.summary.problems.append({"line": p.line, "kind": p.kind, "reason": p.reason})

    def add(self, parsed: Parsed) -> None:
        self.summary.events_seen += 1
        self.pending.append(parsed)

    def _event_id(self, parsed: Parsed) -> str:
        ev = parsed.event
        if ev.vendor_id:
            return f"{ev.vendor}:{ev.vendor_id}"
        text = parsed.id_text if parsed.id_text is not None else orjson.dumps(ev.raw, option=orjson.OPT_SORT_KEYS).decode()
        h = hashlib.sha256(f"{self.fmt.name}\n{text.strip()}".encode()).digest()[:16]
        n = self.occurrences.get(h, 0)
        self.occurrences[h] = n + 1
        return f"{ev.vendor}:h{h.hex()}:{n}"

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        c = self.case.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            seq, _ = audit.next_seq(c)
            before = c.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
            next_rowid = before + 1
            inserted = seen = 0
            for parsed in batch:
                # Insert as we go: a later event in this batch may merge two credentials, and the merge
                # must find the earlier rows in the table to move them.
                row = self._row(parsed, seq)
                if row is None:
                    continue
                seen += 1
                values = (next_rowid, *row)  # stanch assigns rowid so the row hash can cover it
                cur = c.execute(_INSERT, (*values, audit.row_hash([values[i] for i in _AUDITED_IDX])))
                if cur.rowcount:  # 0 when the stable id is already there
                    next_rowid += 1
                    inserted += 1
            self.resolver.flush()
            audit.record_rows(c, "events", before, seq, self.case.analyst, "ingest.batch",
                              {"source": self.source_id, "events": inserted})
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            self.resolver.forget()
            raise
        self.summary.events_added += inserted
        self.summary.duplicates += seen - inserted

    def _row(self, parsed: Parsed, seq: int) -> tuple[Any, ...] | None:
        ev = parsed.event
        try:
            iso = to_utc_iso(ev.time) if not ev.time.endswith("Z") else ev.time
            ts = to_micros(iso)
        except (TimeError, ValueError):
            self.summary.events_seen -= 1
            self.problem(Problem(parsed.line, "malformed", f"unreadable time {ev.time!r}"))
            return None
        if ev.action not in ACTIONS:
            ev.action = "other"
        raw, found = redact(ev.raw)
        cred_id = subj_id = None
        cred_keys = subj_keys = None
        fixed = micros_to_iso(ts)
        try:
            if ev.credential is None:
                auth = next((f for f in found if f.where == "auth"), None)
                if auth is not None:
                    ev.credential = _ref_from_fingerprint(auth.fingerprint)
            if ev.credential is not None and ev.credential.keys:
                cred_id, cred_keys = self.resolver.resolve(ev.credential, ts, fixed)
            if ev.subject is not None and ev.subject.keys:
                subj_id, subj_keys = self.resolver.resolve(ev.subject, ts, fixed)
        except KeyError_ as e:
            self.summary.events_seen -= 1
            self.problem(Problem(parsed.line, "malformed", f"parser {self.fmt.name} gave a bad key: {e}"))
            return None
        raw_text = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
        return (
            self._event_id(parsed), ts, iso, ev.vendor, ev.action, ev.outcome, cred_id, subj_id, cred_keys,
            subj_keys, ev.principal, ev.client, ev.src_ip, ev.user_agent, ev.country, ev.city, ev.asn, ev.method,
            _scrub(ev.resource), ev.status, ev.bytes, ev.rows, ev.vendor_type, ev.vendor_id, ev.request_id,
            ev.session_id, raw_text, self.source_id, parsed.line, seq,
        )


def _scrub(value: str | None) -> str | None:
    """Canonical text fields get the same redaction as the raw record (a resource may hold `?access_token=`)."""
    if value is None:
        return None
    out, _ = redact(value)
    return str(out)


def _ref_from_fingerprint(fp: Fingerprint) -> CredentialRef:
    kind = fp.kind if fp.kind != "unknown" else "access"
    return CredentialRef(keys=fp.keys, kind=kind, preview=fp.preview or None)
