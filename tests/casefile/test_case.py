"""The case file: creation, opening errors, permissions, pragmas, migrations."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from casefile.case import CaseError, create_case, open_case
from casefile.schema import MIGRATIONS, SCHEMA_VERSION


def test_new_case_is_private_wal_and_secure_delete(case_path):
    with create_case(case_path, title="t") as case:
        assert stat.S_IMODE(os.stat(case_path).st_mode) == 0o600
        assert case.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert case.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert case.conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        case.add_note("creates the WAL file")
        assert stat.S_IMODE(os.stat(f"{case_path}-wal").st_mode) == 0o600
        assert case.schema_version == SCHEMA_VERSION
        meta = case.meta()
        assert meta["app"] == "stanch" and meta["title"] == "t"


def test_create_refuses_to_overwrite(case_path):
    create_case(case_path).close()
    with pytest.raises(CaseError, match="already exists"):
        create_case(case_path)


def test_open_missing_file_says_how_to_create(case_path):
    with pytest.raises(CaseError) as e:
        open_case(case_path)
    assert "no such case file" in str(e.value) and "stanch new" in str(e.value)
    assert "\n" not in str(e.value)


def test_open_non_sqlite_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, not a database\n")
    with pytest.raises(CaseError, match="not a stanch case"):
        open_case(p)


def test_open_foreign_sqlite_file(tmp_path):
    p = tmp_path / "other.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    with pytest.raises(CaseError, match="no stanch meta table"):
        open_case(p)


def test_open_newer_schema_says_upgrade(case_path):
    create_case(case_path).close()
    conn = sqlite3.connect(case_path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(CaseError, match="newer than this stanch") as e:
        open_case(case_path)
    assert "upgrade stanch" in str(e.value)


def test_v1_case_is_upgraded_to_the_current_schema_and_keeps_its_data(case_path):
    # Build a case as stanch v1 wrote it: only the first migration, schema_version 1.
    conn = sqlite3.connect(case_path, isolation_level=None)
    MIGRATIONS[0](conn)
    conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                     [("app", "stanch"), ("schema_version", "1"), ("title", "old case")])
    conn.execute("INSERT INTO credentials(kind, preview) VALUES ('pat', 'ghp_…abcd')")
    conn.execute("INSERT INTO events(id, ts, time, vendor, action, src_ip) VALUES ('v:1', 0, 't', 'v', 'login', '192.0.2.44')")
    conn.close()
    cols = {r[1] for r in sqlite3.connect(case_path).execute("PRAGMA table_info(notes)")}
    assert "on_ref" not in cols

    with open_case(case_path) as case:
        assert case.schema_version == SCHEMA_VERSION == 11
        cols = {r[1] for r in case.conn.execute("PRAGMA table_info(notes)")}
        assert "on_ref" in cols
        indexes = {r[0] for r in case.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "events_credential_ts" in indexes
        assert case.conn.execute("SELECT preview FROM credentials").fetchone()[0] == "ghp_…abcd"
        assert case.meta()["title"] == "old case"
        ops = [r[0] for r in case.conn.execute("SELECT operation FROM audit")]
        assert ops == ["case.migrate"]
        # v3 built the full-text index over the events already there
        hits = case.conn.execute("SELECT rowid FROM events_fts WHERE events_fts MATCH '\"192.0.2\"*'").fetchall()
        assert hits == [(1,)]
        case.add_note("notes work after the upgrade", on_ref="credential:1")
