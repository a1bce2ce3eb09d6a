"""Streaming ingest: parse and prepare in workers → stage → one writer moves each chunk in, audited.

The pipeline (`casefile.pipeline`) hands the writer staged chunks; for each, the writer numbers events
that have no vendor id, resolves the chunk's credentials, and moves the rows into the case with one
`INSERT … SELECT` in one transaction with one audit entry. Memory stays flat (a bounded number of chunks
in flight). A file of 64 MiB or more going into an empty case is a bulk load: the secondary indexes are
built once at the end; the full-text index is caught up at the end of every file. Re-ingesting a file already ingested adds nothing: a finished source with the same
SHA-256 is skipped, and every event has a stable id (vendor id, or the hash of its normalised line
plus its occurrence number in the file), so a re-read of a partly ingested file — after a crash or
Ctrl-C — inserts only the rest.
"""

from __future__ import annotations

import os
import shutil
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from casefile import audit, formats
from casefile.case import Case, CaseError
from casefile.geoip import GeoIP
from casefile.identity import Resolver
from casefile.pipeline import Chunk, ParserFailed, staged_chunks, workers_for
from casefile.schema import FTS_DOC_SQL, drop_secondary_indexes, ensure_derived, fold_rollups
from casefile.sources import FileSource, UnreadableInput, expand
from casefile.timeutil import now_iso

KEEP_PROBLEMS = 100
# Occurrence numbers for events without a vendor id: identical lines share a timestamp, so they sit close
# together in a log; remembering the most recent distinct lines bounds memory on files of any size.
OCCURRENCE_WINDOW = 1 << 18

_COLS = ("id", "ts", "time", "vendor", "action", "outcome", "credential_id", "subject_credential_id",
         "cred_keys", "subject_keys", "principal", "client", "src_ip", "user_agent", "country", "city", "asn",
         "method", "resource", "status", "bytes", "rows", "vendor_type", "vendor_id", "request_id",
         "session_id", "raw", "source_id", "line", "audit_seq", "row_hash", "pattern", "objects")
_SELECT = {"credential_id": "k1.cid", "subject_credential_id": "k2.cid", "source_id": "?1", "audit_seq": "?2"}
# One statement moves a staged chunk into the case, in file order, joining in the credential ids.
_MOVE = (
    f"INSERT OR IGNORE INTO events({', '.join(_COLS)}) "
    f"SELECT {', '.join(_SELECT.get(c, 'e.' + c) for c in _COLS)} FROM stage.e AS e"
    " LEFT JOIN temp.keymap AS k1 ON k1.keys = e.cred_keys"
    " LEFT JOIN temp.keymap AS k2 ON k2.keys = e.subject_keys ORDER BY e.rowid"
)
_FTS_INSERT = f"INSERT INTO events_fts(rowid, doc) SELECT rowid, {FTS_DOC_SQL} FROM events WHERE rowid > ?"
# A file at least this large going into an empty case is a bulk load: secondary indexes are built once
# at the end instead of row by row.
BULK_MIN_BYTES = 64 << 20


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
    workers: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[str, int], None]


def ingest(case: Case, paths: Iterable[str], format_name: str | None = None,
           progress: ProgressFn | None = None, workers: int | None = None,
           geoip: Iterable[str] = ()) -> list[FileSummary]:
    """Ingest files, directories or `-` (stdin). Format is detected per file unless `format_name` is given.

    `workers`: parser processes per file (None: decided per file from its size and format; 0: none).
    `geoip`: MaxMind DB files that fill in country, city and ASN where the vendor's record has none.
    """
    geo_paths = tuple(geoip)
    geo_sources = GeoIP.check(list(geo_paths)) if geo_paths else []
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
    return [ingest_source(case, src, fmt, progress, workers, geo_paths, geo_sources) for src in sources]


def ingest_source(case: Case, src: FileSource, fmt: formats.Format | None = None,
                  progress: ProgressFn | None = None, workers: int | None = None,
                  geoip: tuple[str, ...] = (), geo_sources: list[dict[str, Any]] | None = None) -> FileSummary:
    """Ingest one file. Detection failures and parser crashes are reported in the summary, never raised."""
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
    try:
        head = src.head()
    except UnreadableInput as e:
        summary.error = str(e)
        return summary
    if fmt is None:
        try:
            fmt = formats.detect(head, src.name)
        except formats.DetectionError as e:
            summary.error = str(e)
            return summary
    summary.format = fmt.name
    n_workers = workers_for(fmt, src, head) if workers is None else (workers if fmt.splittable and
                                                                     fmt.splittable(head) else 0)
    summary.workers = n_workers
    with case.transaction() as c:
        # An earlier attempt at this file that never finished (crash, kill, Ctrl-C) is marked as such;
        # its events stay, and this run adds only what it did not store.
        stale = [r[0] for r in c.execute("SELECT id FROM sources WHERE sha256 = ? AND status = 'running'", (digest,))]
        if stale:
            c.execute(f"UPDATE sources SET status = 'interrupted' WHERE id IN ({','.join('?' * len(stale))})", stale)
        cur = c.execute(
            "INSERT INTO sources(path, vendor, format, parser_version, sha256, size, started_at, status, analyst)"
            " VALUES (?,?,?,?,?,?,?, 'running', ?)",
            (src.name, fmt.vendor, fmt.name, fmt.version, digest, src.size(), now_iso(), case.analyst),
        )
        source_id = int(cur.lastrowid or 0)
        audit.append(c, case.analyst, "ingest.start", {"source": source_id, "path": src.name, "format": fmt.name,
                                                        "sha256": digest, "resumes": stale,
                                                        "geoip": geo_sources or []})
    summary.source_id = source_id
    bulk = _bulk_load(case, src)
    if bulk:
        drop_secondary_indexes(case.conn)
    writer = _ChunkWriter(case, source_id, fmt, summary)
    staging = _staging_dir(case)
    try:
        for chunk in staged_chunks(fmt, src, staging, n_workers, source_id, geoip):
            writer.write(chunk)
            if progress:
                progress(src.name, summary.events_seen)
    except ParserFailed as e:  # a parser bug must not lose what was stored; the source stays resumable
        summary.error = f"{src.name}: parser {fmt.name} stopped after {summary.events_seen} events: {e}"
        ensure_derived(case.conn)
        _finish(case, source_id, summary, status="failed")
        summary.seconds = _time.perf_counter() - started
        return summary
    except UnreadableInput as e:  # a truncated or corrupt .gz: what was read before it stays, resumable
        summary.error = f"{e} (the {summary.events_seen} events before it are stored)"
        ensure_derived(case.conn)
        _finish(case, source_id, summary, status="failed")
        summary.seconds = _time.perf_counter() - started
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Full-text rows for this file, and the indexes a bulk load deferred (a crash before this point
    # leaves them to the next open of the case: see casefile.schema.ensure_derived).
    ensure_derived(case.conn)
    summary.credentials_created = writer.resolver.created
    _finish(case, source_id, summary, status="done")
    summary.seconds = _time.perf_counter() - started
    return summary


def _staging_dir(case: Case) -> str:
    """A private folder beside the case for staged chunks (redacted rows only); an old one is a crash's leftover."""
    path = f"{case.path}.staging"
    shutil.rmtree(path, ignore_errors=True)
    os.mkdir(path, 0o700)
    return path


def _bulk_load(case: Case, src: FileSource) -> bool:
    try:
        big = src.size() >= BULK_MIN_BYTES
    except OSError:
        return False
    return big and case.conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None


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


class _ChunkWriter:
    """Moves staged chunks into the case: one transaction and one audit entry per chunk."""

    def __init__(self, case: Case, source_id: int, fmt: formats.Format, summary: FileSummary) -> None:
        self.case = case
        self.source_id = source_id
        self.fmt = fmt
        self.summary = summary
        self.occurrences: dict[str, int] = {}
        self.resolver = Resolver(case.conn, source_id)
        case.conn.execute("CREATE TEMP TABLE IF NOT EXISTS keymap(keys TEXT PRIMARY KEY, cid INTEGER)")

    def problem(self, line: int, kind: str, reason: str) -> None:
        if kind == "skipped":
            self.summary.skipped += 1
        else:
            self.summary.malformed += 1
        if len(self.summary.problems) < KEEP_PROBLEMS:
            self.summary.problems.append({"line": line, "kind": kind, "reason": reason})

    def _event_id(self, vendor: str, digest: str) -> str:
        occ = self.occurrences
        n = occ.get(digest, 0)
        occ[digest] = n + 1
        if len(occ) > OCCURRENCE_WINDOW:
            # keep the most recent half (dicts keep insertion order)
            keep = list(occ.items())[len(occ) // 2:]
            occ.clear()
            occ.update(keep)
        return f"{vendor}:h{digest}:{n}"

    def write(self, chunk: Chunk) -> None:
        c = self.case.conn
        c.execute("ATTACH DATABASE ? AS stage", (chunk.path,))
        try:
            c.execute("PRAGMA stage.journal_mode = OFF")
            c.execute("PRAGMA stage.synchronous = OFF")  # a scratch file: nothing to make durable
            # Events without a vendor id are numbered here, in file order (the workers cannot know how
            # often a line occurred in earlier chunks).
            missing = c.execute("SELECT rowid, vendor, digest, content_hash FROM stage.e WHERE id IS NULL"
                                " ORDER BY rowid").fetchall()
            if missing:
                updates = []
                for rowid, vendor, digest, chash in missing:
                    eid = self._event_id(vendor, digest)
                    updates.append((eid, audit.event_row_hash(eid, self.source_id, chash), rowid))
                c.execute("BEGIN")  # one transaction, not one per row
                c.executemany("UPDATE stage.e SET id = ?, row_hash = ? WHERE rowid = ?", updates)
                c.execute("COMMIT")
            self._move(chunk)
        finally:
            c.execute("DETACH DATABASE stage")
            os.unlink(chunk.path)

    def _store_exposed(self, before: int, seq: int) -> tuple[int, int] | None:
        """Credentials found in the payloads of the events this chunk stored (not in duplicates it skipped),
        as `exposures` rows naming the event; returns (the rowid they follow, their audit seq)."""
        c = self.case.conn
        after = c.execute("SELECT coalesce(max(rowid), 0) FROM exposures").fetchone()[0]
        rows = c.execute(
            "SELECT k.cid, ev.id, ev.rowid, ev.line, x.field, x.shape, x.preview FROM stage.x AS x"
            " JOIN stage.e AS e ON e.rowid = x.erow JOIN temp.keymap AS k ON k.keys = x.keys"
            " JOIN events AS ev ON ev.ts = e.ts AND ev.id = e.id AND ev.rowid > ? ORDER BY x.rowid", (before,)).fetchall()
        if not rows:
            return None
        for i, (cid, event_id, event_rowid, line, fld, shape, preview) in enumerate(rows, after + 1):
            values = (i, self.source_id, event_id, line, None, None, fld, shape, preview, seq)
            c.execute("INSERT INTO exposures(rowid, credential_id, source_id, event_id, line, object, object_type,"
                      " field, shape, preview, audit_seq, row_hash, event_rowid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (i, cid, *values[1:], audit.row_hash(values), event_rowid))
        return after, seq

    def _fts_current(self, before: int) -> bool:
        """True when the full-text index holds every event up to `before` (else ensure_derived catches up)."""
        row = self.case.conn.execute("SELECT value FROM meta WHERE key = 'fts_rowid'").fetchone()
        return row is not None and int(row[0]) == before

    def _move(self, chunk: Chunk) -> None:
        c = self.case.conn
        resolver = self.resolver
        try:
            c.execute("BEGIN IMMEDIATE")
            seq, _ = audit.next_seq(c)
            before = c.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
            for line, kind, reason in chunk.problems:
                self.problem(line, kind, reason)
            merged_before = resolver.merged
            keymap = {keys: resolver.resolve_span(keys, facts, first, last)
                      for keys, (facts, first, last) in chunk.refs.items()}
            if resolver.merged != merged_before:  # a merge in this chunk may have folded an id resolved before it
                keymap = {k: resolver.final(v) or v for k, v in keymap.items()}
            c.execute("DELETE FROM temp.keymap")
            c.executemany("INSERT INTO temp.keymap(keys, cid) VALUES (?, ?)", keymap.items())
            c.execute(_MOVE, (self.source_id, seq))
            top = c.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
            inserted = top - before
            if inserted and self._fts_current(before):
                # The timeline's full-text rows go in with their events, while the workers parse ahead.
                c.execute(_FTS_INSERT, (before,))
                c.execute("UPDATE meta SET value = ? WHERE key = 'fts_rowid'", (str(top),))
            if inserted:
                fold_rollups(c, before)
            exposed_seq = None
            if chunk.exposed and inserted:
                exposed_seq = self._store_exposed(before, seq + 1)
            resolver.flush()
            audit.record_rows(c, "events", before, seq, self.case.analyst, "ingest.batch",
                              {"source": self.source_id, "events": inserted})
            if exposed_seq is not None:
                audit.record_rows(c, "exposures", exposed_seq[0], exposed_seq[1], self.case.analyst,
                                  "ingest.exposures", {"source": self.source_id})
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:  # an interrupt may land after COMMIT
                c.execute("ROLLBACK")
            resolver.forget()
            raise
        self.summary.events_seen += chunk.events
        self.summary.events_added += inserted
        self.summary.duplicates += chunk.events - inserted
