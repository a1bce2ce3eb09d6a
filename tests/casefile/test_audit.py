"""The audit chain: `verify` names the table and row edited, inserted or deleted behind stanch's back."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from casefile.audit import verify
from casefile.case import create_case
from casefile.ingest import ingest
from tests.casefile import toy  # noqa: F401  (registers toy-jsonl)


@pytest.fixture
def case(tmp_path, case_path):
    f = tmp_path / "a.jsonl"
    f.write_text("\n".join(orjson.dumps({"t": f"2025-08-17T11:15:{i:02d}Z", "id": f"e{i}"}).decode()
                           for i in range(10)) + "\n")
    c = create_case(case_path, analyst="alice")
    ingest(c, [str(f)], format_name="toy-jsonl")
    c.add_note("first look", on_ref="event:toy:e3")
    c.add_note("second")
    yield c
    c.close()


def _tamper(path, sql, *params):
    # Another process editing the file, as a careless or malicious hand would.
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_intact_case_verifies_with_a_chain_head(case):
    head, entries, problems = verify(case.conn)
    assert problems == [] and len(head) == 64 and entries >= 5
    whos = {r[0] for r in case.conn.execute("SELECT who FROM audit")}
    assert whos == {"alice"}


@pytest.mark.parametrize(("sql", "table", "row", "what"), [
    ("UPDATE events SET src_ip = '203.0.113.66' WHERE rowid = 4", "events", 4, "edited"),
    ("DELETE FROM events WHERE rowid = 7", "events", 7, "deleted"),
    ("INSERT INTO events(rowid, id, ts, time, vendor, action) VALUES (99, 'x', 0, 't', 'v', 'other')",
     "events", 99, "not written by stanch"),
    ("UPDATE notes SET text = 'nothing to see' WHERE rowid = 1", "notes", 1, "edited"),
    ("DELETE FROM notes WHERE rowid = 2", "notes", 2, "deleted"),
    ("UPDATE audit SET who = 'mallory' WHERE seq = 2", "audit", 2, "edited"),
    ("DELETE FROM audit WHERE seq = 3", "audit", 3, "missing"),
])
def test_tampering_is_named(case, sql, table, row, what):
    _tamper(case.path, sql)
    _, _, problems = verify(case.conn)
    assert problems, "tampering went unnoticed"
    assert any(p.table == table and p.row == row and what in p.what for p in problems), problems


def test_rewriting_a_row_hash_to_match_is_still_caught_by_the_digest(case):
    from casefile.audit import AUDITED

    cols, check = AUDITED["events"]
    row = list(case.conn.execute(f"SELECT {', '.join(cols)} FROM events WHERE rowid = 5").fetchone())
    row[cols.index("src_ip")] = "203.0.113.66"
    _tamper(case.path, "UPDATE events SET src_ip = '203.0.113.66', row_hash = ? WHERE rowid = 5", check(row))
    _, _, problems = verify(case.conn)
    assert any(p.table == "events" and "digest" in p.what for p in problems), problems
