"""Schema and migrations. Every schema change is a numbered migration; opening an older case upgrades it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 11

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    vendor TEXT,
    format TEXT,
    parser_version TEXT,
    sha256 TEXT,
    size INTEGER,
    started_at TEXT,
    finished_at TEXT,
    status TEXT NOT NULL DEFAULT 'running',      -- running | done | failed
    events_seen INTEGER NOT NULL DEFAULT 0,
    events_added INTEGER NOT NULL DEFAULT 0,
    malformed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    problems TEXT,                               -- JSON: the first problems, {line, kind, reason}
    analyst TEXT
);
CREATE INDEX sources_sha256 ON sources(sha256);
CREATE TABLE events (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    time TEXT NOT NULL,
    vendor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT,
    credential_id INTEGER,
    subject_credential_id INTEGER,
    cred_keys TEXT,
    subject_keys TEXT,
    principal TEXT,
    client TEXT,
    src_ip TEXT,
    user_agent TEXT,
    country TEXT,
    city TEXT,
    asn TEXT,
    method TEXT,
    resource TEXT,
    status INTEGER,
    bytes INTEGER,
    rows INTEGER,
    vendor_type TEXT,
    vendor_id TEXT,
    request_id TEXT,
    session_id TEXT,
    raw TEXT,
    source_id INTEGER,
    line INTEGER,
    audit_seq INTEGER,
    row_hash TEXT
);
-- An event's id is unique; the same event always has the same time, so (ts, id) is unique too. Keyed
-- by time first, the index grows at its end as logs (mostly time-ordered) are ingested, instead of
-- taking a random page per event as a bare id index does on a case of millions; it also serves every
-- time-range query.
CREATE UNIQUE INDEX events_ts_id ON events(ts, id);
CREATE INDEX events_subject ON events(subject_credential_id) WHERE subject_credential_id IS NOT NULL;
CREATE TABLE credentials (
    id INTEGER PRIMARY KEY,
    kind TEXT,
    issuer TEXT,
    client TEXT,
    principal TEXT,
    scopes TEXT,
    issued_at TEXT,
    expires_at TEXT,
    first_seen TEXT,
    last_used TEXT,
    binding TEXT,
    status TEXT NOT NULL DEFAULT 'unknown',
    preview TEXT
);
CREATE TABLE credential_keys (
    key TEXT PRIMARY KEY,
    credential_id INTEGER NOT NULL,
    source_id INTEGER
);
CREATE INDEX credential_keys_credential ON credential_keys(credential_id);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    who TEXT NOT NULL,
    operation TEXT NOT NULL,
    details TEXT,
    tbl TEXT,
    row_lo INTEGER,
    row_hi INTEGER,
    row_count INTEGER,
    digest TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE notes (
    rowid INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    who TEXT NOT NULL,
    text TEXT NOT NULL,
    audit_seq INTEGER,
    row_hash TEXT
);
"""

# v2: notes say what they are about (`event:<id>`, `credential:<n>`, `source:<n>`), and the
# per-credential timeline gets its index.
_V2 = """
ALTER TABLE notes ADD COLUMN on_ref TEXT;
CREATE INDEX events_credential_ts ON events(credential_id, ts);
"""


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in sql.split(";\n"):
            if statement.strip():
                conn.execute(statement)

    return run


# v3: the timeline's full-text index over the canonical text columns (contentless FTS5), filled for
# existing events. Tokens keep `.`, `-`, `_` and `:` so IPs, user agents and keys search by prefix.
FTS_DOC = ("vendor", "action", "outcome", "principal", "client", "src_ip", "user_agent", "method", "resource",
           "vendor_type", "cred_keys", "subject_keys", "country", "city")
FTS_DOC_SQL = " || ' ' || ".join(f"coalesce({c}, '')" for c in FTS_DOC)


def _v3(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE VIRTUAL TABLE events_fts USING fts5(doc, content='', "
        "tokenize=\"unicode61 tokenchars '.-_:'\")"
    )
    conn.execute("INSERT INTO meta(key, value) VALUES ('fts_rowid', '0')")
    _fts_catch_up(conn)


# An event that used a credential at a token endpoint (a refresh): the blast radius joins such uses to the grants
# an IdP logged from the same address.
TOKEN_USE = "(action = 'token.refresh' OR resource LIKE '%/token' OR resource LIKE '%/token?%')"  # noqa: S105 (SQL, not a secret)

# Indexes the queries need, beside the primary key and the unique event id. A bulk ingest into an empty
# case drops them and builds them once at the end (a sorted build is several times cheaper than keeping
# them up to date row by row); `ensure_derived` rebuilds any that a crash left missing.
SECONDARY_INDEXES = {
    "events_credential_ts": "CREATE INDEX IF NOT EXISTS events_credential_ts ON events(credential_id, ts)",
    "events_subject": "CREATE INDEX IF NOT EXISTS events_subject ON events(subject_credential_id)"
                      " WHERE subject_credential_id IS NOT NULL",
    # The blast radius's lineage: what a credential minted, and its uses at a token endpoint (small: lifecycle
    # events only). The WHERE clauses are repeated verbatim by casefile.blast so the planner picks them.
    "events_minting": "CREATE INDEX IF NOT EXISTS events_minting ON events(credential_id)"
                      " WHERE subject_credential_id IS NOT NULL",
    "events_token_use": "CREATE INDEX IF NOT EXISTS events_token_use ON events(credential_id, ts) WHERE " + TOKEN_USE,
}


def _fts_catch_up(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'fts_rowid'").fetchone()
    done = int(row[0]) if row else 0
    top = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
    if top > done:
        conn.execute(f"INSERT INTO events_fts(rowid, doc) SELECT rowid, {FTS_DOC_SQL} FROM events WHERE rowid > ?",
                     (done,))
        conn.execute("INSERT INTO meta(key, value) VALUES ('fts_rowid', ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(top),))
    return int(top - done) if top > done else 0


def drop_secondary_indexes(conn: sqlite3.Connection) -> None:
    """Before a bulk load into an empty case (call outside a transaction)."""
    for name in SECONDARY_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")


def ensure_derived(conn: sqlite3.Connection) -> None:
    """Build what is derived from the events and missing: secondary indexes, full-text rows not yet indexed."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    missing = [sql for name, sql in SECONDARY_INDEXES.items() if name not in have]
    fts = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_fts'").fetchone() is not None
    if not missing and not fts:
        return
    # Building an index over millions of events sorts more than memory should hold: let the sorter spill
    # to temporary files for this (index keys only — ids and times, no record text), then go back to
    # memory-only temp storage.
    conn.execute("PRAGMA temp_store = FILE")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql in missing:
            conn.execute(sql)
        if fts:
            _fts_catch_up(conn)
        conn.execute("COMMIT")
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException:
        if conn.in_transaction:  # an interrupt may land after COMMIT
            conn.execute("ROLLBACK")
        conn.execute("PRAGMA temp_store = MEMORY")
        raise


# v4: live connectors. `pull_cursors` holds, per connector and stream, where the next pull resumes (opaque to
# the case; saved after the page it follows is stored). `snapshots` holds what a destructive act read just
# before changing it (vendor JSON, redacted), audited like notes.
_V4 = """
CREATE TABLE pull_cursors (
    connector TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor TEXT,
    source_id INTEGER,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connector, stream)
);
CREATE TABLE snapshots (
    rowid INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    who TEXT NOT NULL,
    connector TEXT NOT NULL,
    what TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    audit_seq INTEGER,
    row_hash TEXT
);
CREATE INDEX snapshots_target ON snapshots(what, target);
"""


# v5: second-order exposure. A credential found in data (`stanch ingest-data`: an exported Cases CSV, a
# ticket dump) or in an event's payload is kept as a credential (fingerprints, preview) plus one `exposures`
# row naming where: the source and line, the record's id and type, the field. Audited like notes.
_V5 = """
CREATE TABLE exposures (
    rowid INTEGER PRIMARY KEY,
    credential_id INTEGER NOT NULL,
    source_id INTEGER,
    event_id TEXT,
    line INTEGER,
    object TEXT,
    object_type TEXT,
    field TEXT,
    shape TEXT,
    preview TEXT,
    audit_seq INTEGER,
    row_hash TEXT
);
CREATE INDEX exposures_object ON exposures(object);
CREATE INDEX exposures_credential ON exposures(credential_id);
"""


# v6: findings. Each `stanch findings` run is a `finding_runs` row; its findings (rule, severity, subject,
# evidence event ids, OWASP NHI / NIST CSF 2.0 / ATT&CK ids, the rule's author and licence) are audited rows.
_V6 = """
CREATE TABLE finding_runs (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    who TEXT NOT NULL,
    rules INTEGER NOT NULL DEFAULT 0,
    findings INTEGER NOT NULL DEFAULT 0,
    seconds REAL,
    details TEXT
);
CREATE TABLE findings (
    rowid INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    rule_title TEXT NOT NULL,
    rule_source TEXT NOT NULL,
    rule_author TEXT,
    rule_license TEXT,
    severity TEXT NOT NULL,
    subject TEXT,
    summary TEXT NOT NULL,
    first TEXT,
    last TEXT,
    count INTEGER NOT NULL DEFAULT 0,
    evidence TEXT NOT NULL,
    nhi TEXT,
    csf TEXT,
    attack TEXT,
    details TEXT,
    audit_seq INTEGER,
    row_hash TEXT
);
CREATE INDEX findings_run ON findings(run, severity);
"""


# v7: derived columns of an event's resource (casefile.patterns): its pattern (ids folded to `{id}`) and the
# objects it read, computed at ingest so the blast radius groups in SQLite. Events already in the case get their
# pattern here; their objects stay NULL (not computed), which the blast radius computes when it needs them.
def _v7(conn: sqlite3.Connection) -> None:
    from casefile.patterns import resource_pattern

    conn.execute("ALTER TABLE events ADD COLUMN pattern TEXT")
    conn.execute("ALTER TABLE events ADD COLUMN objects TEXT")
    conn.create_function("stanch_pattern", 1, resource_pattern, deterministic=True)
    conn.execute("UPDATE events SET pattern = stanch_pattern(resource)")
    if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None:
        conn.execute("INSERT INTO meta(key, value) VALUES ('objects_pending', '1')")


# v8: rollups of each credential's use (derived, not audited, kept in the transaction that stores the events):
# per call group (vendor, action, method, pattern, objects) and per (method, pattern, address, user agent). The
# blast radius reads them instead of the events, so its cost follows the number of groups, not of events.
LIFECYCLE_ACTIONS = ("token.issue", "token.refresh", "token.revoke", "token.reuse")
_LIFECYCLE_SQL = ", ".join(f"'{a}'" for a in LIFECYCLE_ACTIONS)
_V8 = """
CREATE TABLE rollup (
    credential_id INTEGER NOT NULL,
    vendor TEXT NOT NULL,
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    pattern TEXT NOT NULL,
    objects TEXT NOT NULL,
    n INTEGER NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    bytes INTEGER,
    rows INTEGER,
    failures INTEGER NOT NULL,
    first_rowid INTEGER NOT NULL,
    last_rowid INTEGER NOT NULL,
    PRIMARY KEY (credential_id, vendor, action, method, pattern, objects)
) WITHOUT ROWID;
CREATE TABLE rollup_addr (
    credential_id INTEGER NOT NULL,
    method TEXT NOT NULL,
    pattern TEXT NOT NULL,
    src_ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    n INTEGER NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    PRIMARY KEY (credential_id, method, pattern, src_ip, user_agent)
) WITHOUT ROWID
"""
_SUM = "CASE WHEN {0} IS NULL THEN excluded.{0} WHEN excluded.{0} IS NULL THEN {0} ELSE {0} + excluded.{0} END"
ROLLUP_UPSERT = (
    " ON CONFLICT DO UPDATE SET n = n + excluded.n, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi),"
    f" bytes = {_SUM.format('bytes')}, rows = {_SUM.format('rows')}, failures = failures + excluded.failures,"
    " first_rowid = min(first_rowid, excluded.first_rowid), last_rowid = max(last_rowid, excluded.last_rowid)")
ADDR_UPSERT = " ON CONFLICT DO UPDATE SET n = n + excluded.n, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)"
# Fold the events after rowid ? into the rollups (inside the transaction that stored them).
ROLLUP_FROM_EVENTS = (
    "INSERT INTO rollup SELECT credential_id, vendor, action, coalesce(method, ''), coalesce(pattern, ''),"
    " coalesce(objects, ''), count(*), min(ts), max(ts), sum(bytes), sum(rows), sum(outcome = 'failure'),"
    " min(rowid), max(rowid) FROM events WHERE rowid > ? AND credential_id IS NOT NULL"
    f" AND action NOT IN ({_LIFECYCLE_SQL}) GROUP BY 1, 2, 3, 4, 5, 6" + ROLLUP_UPSERT)
ADDR_FROM_EVENTS = (
    "INSERT INTO rollup_addr SELECT credential_id, coalesce(method, ''), coalesce(pattern, ''),"
    " coalesce(src_ip, ''), coalesce(user_agent, ''), count(*), min(ts), max(ts) FROM events WHERE rowid > ?"
    f" AND credential_id IS NOT NULL AND action NOT IN ({_LIFECYCLE_SQL}) GROUP BY 1, 2, 3, 4, 5" + ADDR_UPSERT)


def fold_rollups(conn: sqlite3.Connection, after_rowid: int) -> None:
    """Add the events stored after `after_rowid` to the rollups (call inside the storing transaction)."""
    conn.execute(ROLLUP_FROM_EVENTS, (after_rowid,))
    conn.execute(ADDR_FROM_EVENTS, (after_rowid,))


def move_rollups(conn: sqlite3.Connection, loser: int, winner: int) -> None:
    """Two credentials merged: their rollups become the winner's."""
    conn.execute("INSERT INTO rollup SELECT ?, vendor, action, method, pattern, objects, n, lo, hi, bytes, rows,"
                 " failures, first_rowid, last_rowid FROM rollup WHERE credential_id = ?" + ROLLUP_UPSERT,
                 (winner, loser))
    conn.execute("DELETE FROM rollup WHERE credential_id = ?", (loser,))
    conn.execute("INSERT INTO rollup_addr SELECT ?, method, pattern, src_ip, user_agent, n, lo, hi FROM rollup_addr"
                 " WHERE credential_id = ?" + ADDR_UPSERT, (winner, loser))
    conn.execute("DELETE FROM rollup_addr WHERE credential_id = ?", (loser,))


def _v8(conn: sqlite3.Connection) -> None:
    _script(_V8)(conn)
    fold_rollups(conn, 0)


# v9: a credential found in an event's payload names that event by rowid too (events are found by rowid).
_V9 = """
ALTER TABLE exposures ADD COLUMN event_rowid INTEGER;
CREATE INDEX exposures_event ON exposures(event_rowid) WHERE event_rowid IS NOT NULL
"""


# v10: playbook runs. A plan is the exact list of items a playbook expanded to (its hash is what a person
# approves); each item's state moves only through the journal, an append-only, audited write-ahead log (intent
# before a remote call, result after), so a crash leaves every item's last known state on disk.
_V10 = """
CREATE TABLE plans (
    id INTEGER PRIMARY KEY,
    playbook TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    inputs TEXT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    approved_by TEXT,
    approved_at TEXT,
    approved_hash TEXT,
    audit_seq INTEGER,
    row_hash TEXT
);
CREATE TABLE plan_items (
    plan_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    connector TEXT,
    connector_kind TEXT,
    verb TEXT,
    target TEXT,
    preview TEXT,
    credential_id INTEGER,
    secret_key TEXT,
    needs_raw INTEGER NOT NULL DEFAULT 0,
    reversible INTEGER NOT NULL DEFAULT 0,
    rotation INTEGER NOT NULL DEFAULT 0,
    undo TEXT,
    text TEXT,
    idempotency_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,
    evidence TEXT,
    note TEXT,
    updated_at TEXT,
    PRIMARY KEY (plan_id, seq)
);
CREATE TABLE journal (
    rowid INTEGER PRIMARY KEY,
    plan_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    who TEXT NOT NULL,
    phase TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    audit_seq INTEGER,
    row_hash TEXT
);
CREATE INDEX journal_item ON journal(plan_id, seq)
"""


# v11: evidence marks (the timeline's `m`). Append-only and audited like notes: marking or unmarking an event
# adds a row (`marked` 1 or 0); an event's mark is its latest row (casefile.marks).
_V11 = """
CREATE TABLE marks (
    rowid INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    who TEXT NOT NULL,
    event_id TEXT NOT NULL,
    marked INTEGER NOT NULL,
    audit_seq INTEGER,
    row_hash TEXT
);
CREATE INDEX marks_event ON marks(event_id, rowid)
"""


# MIGRATIONS[n] takes a case at schema version n to n + 1 (0 is an empty file).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _script(_V1), 1: _script(_V2), 2: _v3, 3: _script(_V4), 4: _script(_V5), 5: _script(_V6), 6: _v7, 7: _v8, 8: _script(_V9), 9: _script(_V10),
    10: _script(_V11),
}


def migrate(conn: sqlite3.Connection, current: int, target: int = SCHEMA_VERSION) -> list[int]:
    """Run migrations from `current` up to `target` in one transaction; returns the versions reached."""
    reached: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for version in range(current, target):
            MIGRATIONS[version](conn)
            reached.append(version + 1)
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(target),),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # an interrupt may land after COMMIT
            conn.execute("ROLLBACK")
        raise
    return reached
