"""Evidence marks: a responder marks an event as evidence, and can take the mark back.

Marks are append-only and audited like notes (schema v11): marking or unmarking adds a `marks` row (`marked` 1 or
0) with its row hash, and one audit entry covers it. An event's mark is its latest row, so the history of who
marked what, and when, stays in the case and `stanch verify` can walk it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from casefile import audit
from casefile.case import Case, CaseError
from casefile.timeutil import now_iso

#: The columns a mark's row hash covers (audit.row_hash over these, in this order), as for notes.
MARK_COLUMNS = audit.MARK_COLUMNS


def set_mark(case: Case, event_id: str, marked: bool, rowid: int | None = None) -> int:
    """Mark (or unmark) event `event_id`, audited; returns the new `marks` row. `rowid`, when the caller knows
    the event's rowid, makes the existence check a primary-key lookup instead of a search by id."""
    c = case.conn
    if rowid is not None:
        found = c.execute("SELECT 1 FROM events WHERE rowid = ? AND id = ?", (rowid, event_id)).fetchone()
    else:
        found = c.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
    if found is None:
        raise CaseError(f"event {event_id}: no such event in {case.path}; list events with `stanch events {case.path}`")
    with case.transaction():
        seq, _ = audit.next_seq(c)
        before = c.execute("SELECT coalesce(max(rowid), 0) FROM marks").fetchone()[0]
        values = (before + 1, now_iso(), case.analyst, event_id, 1 if marked else 0, seq)
        c.execute("INSERT INTO marks(rowid, time, who, event_id, marked, audit_seq, row_hash) VALUES (?,?,?,?,?,?,?)",
                  (*values, audit.row_hash(values)))
        audit.record_rows(c, "marks", before, seq, case.analyst, "mark" if marked else "unmark", {"event": event_id})
    return int(before + 1)


def toggle_mark(case: Case, event_id: str, rowid: int | None = None) -> bool:
    """Flip the mark of `event_id` (audited); returns whether it is marked now."""
    now = not is_marked(case.conn, event_id)
    set_mark(case, event_id, now, rowid)
    return now


def is_marked(conn: sqlite3.Connection, event_id: str) -> bool:
    """Whether the latest mark row of `event_id` marks it."""
    return event_id in marked_among(conn, [event_id])


def marked_among(conn: sqlite3.Connection, event_ids: Iterable[str]) -> set[str]:
    """The events of `event_ids` currently marked (a case older than schema v11 has none)."""
    ids = list(dict.fromkeys(event_ids))
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        try:
            rows = conn.execute(
                f"SELECT event_id, marked FROM marks WHERE event_id IN ({','.join('?' * len(chunk))}) ORDER BY rowid",
                chunk).fetchall()
        except sqlite3.OperationalError:  # no marks table: a case not yet upgraded to v11
            return set()
        for event_id, marked in rows:  # in rowid order: the latest row of an event wins
            if marked:
                out.add(event_id)
            else:
                out.discard(event_id)
    return out


def marked_events(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """Every event marked now: (event id, when it was marked, by whom), oldest mark first."""
    latest: dict[str, tuple[int, str, str]] = {}
    try:
        for event_id, marked, time, who in conn.execute("SELECT event_id, marked, time, who FROM marks ORDER BY rowid"):
            latest[event_id] = (marked, time, who)
    except sqlite3.OperationalError:
        return []
    return [(e, t, w) for e, (m, t, w) in latest.items() if m]
