"""What live connectors write into the case: pulled pages (with the cursor each leaves) and pre-act snapshots.

The case knows no vendor: a pulled page arrives as bytes in a registered format (the vendor's export
format), a cursor is opaque text, a snapshot is JSON. Each page goes through the same ingest as a file
(`casefile.ingest.ingest_source`) so a pulled event and the same event exported dedupe to one; the page's
cursor is saved only after its events are stored, so an interrupted pull resumes after its last stored page.
"""

from __future__ import annotations

from typing import Any

import orjson

from casefile import audit, formats
from casefile.case import Case, CaseError
from casefile.ingest import FileSummary, ProgressFn, ingest_source
from casefile.redact import redact
from casefile.sources import BytesSource
from casefile.timeutil import now_iso


def cursors(case: Case, connector: str) -> dict[str, str]:
    """stream → the cursor the last stored page of `connector`'s previous pulls left."""
    return {stream: cursor for stream, cursor in case.conn.execute(
        "SELECT stream, cursor FROM pull_cursors WHERE connector = ? AND cursor IS NOT NULL", (connector,))}


def forget_cursors(case: Case, connector: str) -> int:
    """Drop `connector`'s cursors (the next pull starts again from `--since`); audited. Returns how many."""
    with case.transaction() as c:
        n = c.execute("DELETE FROM pull_cursors WHERE connector = ?", (connector,)).rowcount
        audit.append(c, case.analyst, "pull.reset", {"connector": connector, "cursors": n})
    return int(n)


def store_page(case: Case, connector: str, stream: str, format_name: str, data: bytes, cursor: str | None,
               endpoint: str, progress: ProgressFn | None = None) -> FileSummary:
    """Ingest one pulled page, then save the cursor it leaves (when the page was stored whole).

    Raises CaseError when the format is unknown or the page could not be stored (the cursor is then left
    where it was, so the next pull fetches this page again).
    """
    fmt = formats.get(format_name)
    if fmt is None:
        raise CaseError(f"pull {connector}: its module names format {format_name!r}, which no parser registers")
    src = BytesSource(f"pull:{connector}/{stream} {endpoint}".strip(), data)
    summary = ingest_source(case, src, fmt, progress, workers=0)
    if summary.error:
        raise CaseError(f"pull {connector}/{stream}: {summary.error}")
    if cursor is not None:
        with case.transaction() as c:
            c.execute(
                "INSERT INTO pull_cursors(connector, stream, cursor, source_id, updated_at) VALUES (?,?,?,?,?)"
                " ON CONFLICT(connector, stream) DO UPDATE SET cursor = excluded.cursor,"
                " source_id = excluded.source_id, updated_at = excluded.updated_at",
                (connector, stream, cursor, summary.source_id, now_iso()),
            )
            audit.append(c, case.analyst, "pull.cursor", {"connector": connector, "stream": stream,
                                                          "source": summary.source_id, "cursor": cursor})
    return summary


def store_snapshot(case: Case, connector: str, what: str, target: str, body: Any) -> int:
    """Store what a destructive act is about to change (redacted vendor JSON), audited. Returns its row.

    Called before the act is sent: if this raises, the act must not proceed.
    """
    if not what or not target:
        raise CaseError("a snapshot needs what it is (e.g. vault.token) and its target id")
    if redact({"target": target})[1]:
        raise CaseError(f"snapshot of {what}: its target looks like a secret; name it by an id (accessor, "
                        "token id, key id), never by the raw value")
    clean, _ = redact(body)
    text = orjson.dumps(clean, option=orjson.OPT_SORT_KEYS).decode()
    with case.transaction() as c:
        seq, _ = audit.next_seq(c)
        before = c.execute("SELECT coalesce(max(rowid), 0) FROM snapshots").fetchone()[0]
        rowid = before + 1
        values = (rowid, now_iso(), case.analyst, connector, what, target, text, seq)
        c.execute("INSERT INTO snapshots(rowid, time, who, connector, what, target, body, audit_seq, row_hash)"
                  " VALUES (?,?,?,?,?,?,?,?,?)", (*values, audit.row_hash(values)))
        audit.record_rows(c, "snapshots", before, seq, case.analyst, "snapshot",
                          {"connector": connector, "what": what, "target": target})
    return int(rowid)


def snapshots(case: Case, target: str | None = None) -> list[dict[str, Any]]:
    """Stored snapshots, oldest first (all, or those of one target id)."""
    sql = "SELECT rowid, time, who, connector, what, target, body FROM snapshots"
    rows = case.conn.execute(sql + (" WHERE target = ? ORDER BY rowid" if target else " ORDER BY rowid"),
                             (target,) if target else ())
    return [{"id": r[0], "time": r[1], "who": r[2], "connector": r[3], "what": r[4], "target": r[5],
             "body": orjson.loads(r[6])} for r in rows]


def pull_started(case: Case, connector: str, kind: str, since: str | None, until: str | None,
                 resume_from: dict[str, str]) -> None:
    """Audit the start of a pull (which connector, what window, which cursors it resumes from)."""
    with case.transaction() as c:
        audit.append(c, case.analyst, "pull.start", {"connector": connector, "kind": kind, "since": since,
                                                     "until": until, "cursors": resume_from})


def pull_finished(case: Case, connector: str, outcome: str, pages: int, events_added: int) -> None:
    """Audit the end of a pull: `done`, or `failed` (the pages stored before the failure stay)."""
    with case.transaction() as c:
        audit.append(c, case.analyst, f"pull.{outcome}", {"connector": connector, "pages": pages,
                                                          "events_added": events_added})
