"""The audit chain: one row per write operation, hash-chained, with a digest of the rows it wrote.

Each audited row (events, notes, snapshots) carries `row_hash`, a hash of its immutable columns, and the
`audit_seq` of the operation that wrote it. An operation's rows are a contiguous rowid range
[row_lo, row_hi]; its `digest` hashes their row hashes in order. `verify` recomputes all of it and
names the table and row that was edited, inserted or deleted behind stanch's back.
"""

from __future__ import annotations

import getpass
import hashlib
import socket
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from casefile.timeutil import now_iso

GENESIS = "0" * 64

# What each audited table's row hash covers: what the row says, not derived links.
# (events.credential_id moves when two credentials merge; cred_keys, which it derives from, is covered.)
# Events: row_hash = H(id, source_id, content_hash), computed by the ingest workers (the content hash
# covers casefile.prepare.CONTENT_COLUMNS). rowid is not hashed (SQLite assigns it): the digest of an
# operation's rows, taken in rowid order, pins the order; `verify` checks each row's audit_seq against
# the entry whose range holds it.
EVENT_CONTENT = (
    "ts", "time", "vendor", "action", "outcome", "cred_keys", "subject_keys", "principal", "client", "src_ip",
    "user_agent", "country", "city", "asn", "method", "resource", "status", "bytes", "rows", "vendor_type",
    "vendor_id", "request_id", "session_id", "raw", "line",
)
NOTE_COLUMNS = ("rowid", "time", "who", "text", "on_ref", "audit_seq")
SNAPSHOT_COLUMNS = ("rowid", "time", "who", "connector", "what", "target", "body", "audit_seq")
FINDING_COLUMNS = ("rowid", "run", "rule_id", "rule_title", "rule_source", "rule_author", "rule_license", "severity",
                   "subject", "summary", "first", "last", "count", "evidence", "nhi", "csf", "attack", "details",
                   "audit_seq")
PLAN_COLUMNS = ("rowid", "playbook", "title", "created_at", "created_by", "inputs", "hash", "body", "audit_seq")
JOURNAL_COLUMNS = ("rowid", "plan_id", "seq", "time", "who", "phase", "state", "detail", "audit_seq")
MARK_COLUMNS = ("rowid", "time", "who", "event_id", "marked", "audit_seq")
# credential_id is not hashed (it moves when credentials merge), as for events.
EXPOSURE_COLUMNS = ("rowid", "source_id", "event_id", "line", "object", "object_type", "field", "shape", "preview",
                    "audit_seq")


def event_row_hash(event_id: str, source_id: int | None, content: str) -> str:
    """An event's row hash from its id, its source and its content hash."""
    return hashlib.sha256(f"{event_id}\x00{source_id}\x00{content}".encode()).hexdigest()[:32]


def event_content_hash(values: Sequence[Any]) -> str:
    """Hash of an event's content columns (EVENT_CONTENT order)."""
    return hashlib.sha256(orjson.dumps(list(values))).hexdigest()[:32]


def row_hash(values: Sequence[Any]) -> str:
    """Hash of a note's or a snapshot's audited column values (NOTE_COLUMNS / SNAPSHOT_COLUMNS order)."""
    return hashlib.sha256(orjson.dumps(list(values))).hexdigest()[:32]


def _event_check(row: Sequence[Any]) -> str:
    # row: id, source_id, audit_seq, *EVENT_CONTENT
    return event_row_hash(row[0], row[1], event_content_hash(row[3:]))


def _note_check(row: Sequence[Any]) -> str:
    return row_hash(row)


# table -> (columns selected for the check, function computing the expected row hash from them)
AUDITED: dict[str, tuple[tuple[str, ...], Callable[[Sequence[Any]], str]]] = {
    "events": (("id", "source_id", "audit_seq", *EVENT_CONTENT), _event_check),
    "notes": (NOTE_COLUMNS, _note_check),
    "snapshots": (SNAPSHOT_COLUMNS, _note_check),
    "exposures": (EXPOSURE_COLUMNS, _note_check),
    "findings": (FINDING_COLUMNS, _note_check),
    "plans": (PLAN_COLUMNS, _note_check),
    "journal": (JOURNAL_COLUMNS, _note_check),
    "marks": (MARK_COLUMNS, _note_check),
}


def rows_digest(hashes: Iterable[str]) -> str:
    """Digest of an operation's rows: SHA-256 over their row hashes in rowid order."""
    h = hashlib.sha256()
    for rh in hashes:
        h.update(rh.encode())
    return h.hexdigest()


def default_analyst() -> str:
    """user@host, when no `--analyst` is given."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _entry_hash(prev_hash: str, seq: int, time: str, who: str, operation: str, details: str | None,
                tbl: str | None, row_lo: int | None, row_hi: int | None, row_count: int | None,
                digest: str | None) -> str:
    body = orjson.dumps([prev_hash, seq, time, who, operation, details, tbl, row_lo, row_hi, row_count, digest])
    return hashlib.sha256(body).hexdigest()


def next_seq(conn: sqlite3.Connection) -> tuple[int, str]:
    """(the next audit seq, the hash it chains to). Call inside the writing transaction."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (1, GENESIS) if row is None else (row[0] + 1, row[1])


def append(conn: sqlite3.Connection, who: str, operation: str, details: dict[str, Any] | None = None,
           tbl: str | None = None, row_lo: int | None = None, row_hi: int | None = None,
           row_count: int | None = None, digest: str | None = None, seq: int | None = None) -> str:
    """Append one audit entry inside the caller's transaction; returns its hash (the new chain head)."""
    expected_seq, prev = next_seq(conn)
    if seq is not None and seq != expected_seq:
        raise RuntimeError(f"audit seq {seq} is not the next one ({expected_seq}); another writer?")
    seq = expected_seq
    time = now_iso()
    details_json = orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode() if details is not None else None
    h = _entry_hash(prev, seq, time, who, operation, details_json, tbl, row_lo, row_hi, row_count, digest)
    conn.execute(
        "INSERT INTO audit(seq, time, who, operation, details, tbl, row_lo, row_hi, row_count, digest, prev_hash, hash)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (seq, time, who, operation, details_json, tbl, row_lo, row_hi, row_count, digest, prev, h),
    )
    return h


def record_rows(conn: sqlite3.Connection, tbl: str, after_rowid: int, seq: int, who: str, operation: str,
                details: dict[str, Any] | None = None) -> int:
    """Audit the rows of `tbl` written since `after_rowid` (inside the caller's transaction); returns their count."""
    hashes: list[str] = []
    lo = hi = None
    for rowid, rh in conn.execute(f"SELECT rowid, row_hash FROM {tbl} WHERE rowid > ? ORDER BY rowid", (after_rowid,)):
        if lo is None:
            lo = rowid
        hi = rowid
        hashes.append(rh)
    if not hashes:
        return 0
    append(conn, who, operation, details, tbl, lo, hi, len(hashes), rows_digest(hashes), seq=seq)
    return len(hashes)


@dataclass(slots=True)
class Tamper:
    """One thing `verify` found wrong."""

    table: str
    row: int | None
    what: str

    def __str__(self) -> str:
        where = f"{self.table} row {self.row}" if self.row is not None else self.table
        return f"{where}: {self.what}"


def verify(conn: sqlite3.Connection) -> tuple[str, int, list[Tamper]]:
    """Walk the chain and every audited row. Returns (chain head, entries, problems found).

    Everything is read from one snapshot (a read transaction): an ingest or apply committing meanwhile on another
    connection must not look like rows that no audit entry covers."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        return _verify(conn)
    finally:
        if own and conn.in_transaction:
            conn.execute("COMMIT")  # nothing was written: this only ends the snapshot


def _verify(conn: sqlite3.Connection) -> tuple[str, int, list[Tamper]]:
    problems: list[Tamper] = []
    prev = GENESIS
    expected = 1
    ranges: dict[str, list[tuple[int, int, int, int | None, str | None]]] = {t: [] for t in AUDITED}
    count = 0
    for seq, time, who, op, details, tbl, lo, hi, n, digest, prev_hash, h in conn.execute(
        "SELECT seq, time, who, operation, details, tbl, row_lo, row_hi, row_count, digest, prev_hash, hash"
        " FROM audit ORDER BY seq"
    ):
        count += 1
        if seq != expected:
            problems.append(Tamper("audit", expected, f"missing (the chain jumps from {expected - 1} to {seq})"))
        elif prev_hash != prev:
            problems.append(Tamper("audit", seq, "does not chain to the entry before it (inserted or reordered)"))
        if _entry_hash(prev_hash, seq, time, who, op, details, tbl, lo, hi, n, digest) != h:
            problems.append(Tamper("audit", seq, "was edited (its hash does not match its content)"))
        if tbl in ranges and lo is not None and hi is not None:
            ranges[tbl].append((lo, hi, seq, n, digest))
        prev = h
        expected = seq + 1
    for tbl, (cols, check) in AUDITED.items():
        problems.extend(_verify_rows(conn, tbl, cols, check, sorted(ranges[tbl])))
    return prev, count, problems


def _verify_rows(conn: sqlite3.Connection, tbl: str, cols: tuple[str, ...], check: Callable[[Sequence[Any]], str],
                 ranges: list[tuple[int, int, int, int | None, str | None]]) -> list[Tamper]:
    """Walk `tbl` in rowid order beside the audited ranges, naming each row edited, inserted or deleted."""
    problems: list[Tamper] = []
    seq_col = 2 + cols.index("audit_seq")
    ri = 0
    current: list[str] = []
    expected_next = ranges[0][0] if ranges else 0
    found_before = 0

    def close_range() -> None:
        lo, hi, seq, n, digest = ranges[ri]
        if expected_next <= hi:
            problems.append(Tamper(tbl, expected_next, f"was deleted (written by audit entry {seq})"))
        if len(problems) == found_before and (len(current) != n or rows_digest(current) != digest):
            # Row hashes were rewritten to match edited content: the operation's digest still catches it.
            problems.append(Tamper(tbl, None, f"rows {lo}-{hi} written by audit entry {seq} no longer match its digest"))

    for row in conn.execute(f"SELECT rowid, row_hash, {', '.join(cols)} FROM {tbl} ORDER BY rowid"):
        rowid, stored = row[0], row[1]
        while ri < len(ranges) and rowid > ranges[ri][1]:
            close_range()
            ri += 1
            current, found_before = [], len(problems)
            expected_next = ranges[ri][0] if ri < len(ranges) else 0
        if ri >= len(ranges) or rowid < ranges[ri][0]:
            problems.append(Tamper(tbl, rowid, "was not written by stanch (no audit entry covers it)"))
            continue
        if rowid > expected_next:
            problems.append(Tamper(tbl, expected_next, f"was deleted (written by audit entry {ranges[ri][2]})"))
        expected_next = rowid + 1
        if row[seq_col] != ranges[ri][2]:
            problems.append(Tamper(tbl, rowid, "names another audit entry than the one that wrote it"))
        if check(row[2:]) != stored:
            problems.append(Tamper(tbl, rowid, "was edited (its content does not match its hash)"))
        current.append(stored)
    while ri < len(ranges):
        close_range()
        ri += 1
        current, found_before = [], len(problems)
        expected_next = ranges[ri][0] if ri < len(ranges) else 0
    return problems
