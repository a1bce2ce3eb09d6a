"""Schema and migrations. Every schema change is a numbered migration; opening an older case upgrades it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 2

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
    id TEXT NOT NULL UNIQUE,
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
CREATE INDEX events_ts ON events(ts);
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


# MIGRATIONS[n] takes a case at schema version n to n + 1 (0 is an empty file).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _script(_V1), 1: _script(_V2)}


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
        conn.execute("ROLLBACK")
        raise
    return reached
