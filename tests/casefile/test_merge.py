"""`stanch merge CASE OTHER`: two responders' cases become one without a server.

Two cases are built from overlapping slices of the demo incident (the Okta log in both; the gateway log and the
Cases export in one, the Vault logs in the other), each with its own notes, marks, findings, plans and snapshots.
A third case ingests every slice directly: the merged case must hold what it holds — the same events, the same
credentials (keys grouped alike, so identity was re-resolved, not copied), the same rollups — plus both
responders' work, a verifiable chain, and the other case's chain preserved. Merging twice changes nothing.
"""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import orjson
import pytest

import connectors  # noqa: F401  (registers the demo's parsers and rules)
from casefile import findings, marks, plans
from casefile.audit import verify
from casefile.case import CaseError, create_case, open_case
from casefile.data import ingest_data
from casefile.ingest import ingest
from casefile.live import store_snapshot
from casefile.merge import CHAIN_WHAT, merge, merged_chains
from casefile.schema import ADDR_FROM_EVENTS, ROLLUP_FROM_EVENTS
from connectors.demo import generate
from tests.casefile import toy  # noqa: F401  (registers toy-jsonl)

TABLES = ("events", "credentials", "credential_keys", "sources", "exposures", "notes", "marks", "snapshots",
          "finding_runs", "findings", "plans", "plan_items", "journal", "rollup", "rollup_addr", "audit")


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def _keysets(conn: sqlite3.Connection) -> dict[int, frozenset[str]]:
    """credential id -> the keys that name it."""
    groups: dict[int, set[str]] = {}
    for key, cid in conn.execute("SELECT key, credential_id FROM credential_keys"):
        groups.setdefault(cid, set()).add(key)
    return {cid: frozenset(keys) for cid, keys in groups.items()}


def _event_credentials(conn: sqlite3.Connection) -> dict[str, tuple[frozenset[str] | None, frozenset[str] | None]]:
    ks = _keysets(conn)
    return {eid: (ks.get(c), ks.get(s)) for eid, c, s in
            conn.execute("SELECT id, credential_id, subject_credential_id FROM events")}


def _rollups(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    """Both rollup tables with credential ids replaced by their key sets (ids differ between cases); first/last
    rowids dropped (rowids differ too)."""
    ks = _keysets(conn)
    out = {}
    for table, cut in (("rollup", 12), ("rollup_addr", 8)):
        out[table] = sorted((tuple(sorted(ks[r[0]])), *r[1:cut]) for r in conn.execute(f"SELECT * FROM {table}"))
    return out


def _rollups_match_events(conn: sqlite3.Connection) -> None:
    """The rollups equal an aggregate of the events computed from scratch."""
    for table, sql in (("rollup", ROLLUP_FROM_EVENTS), ("rollup_addr", ADDR_FROM_EVENTS)):
        conn.execute(f"CREATE TEMP TABLE fresh AS SELECT * FROM {table} WHERE 0")
        conn.execute(sql.replace(f"INSERT INTO {table} ", "INSERT INTO temp.fresh ").split(" ON CONFLICT")[0], (0,))
        assert sorted(conn.execute(f"SELECT * FROM {table}")) == sorted(conn.execute("SELECT * FROM temp.fresh")), table
        conn.execute("DROP TABLE temp.fresh")


def _cid_for(conn: sqlite3.Connection, key: str) -> int:
    return conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (key,)).fetchone()[0]


def _plan(case, *, credential_id=None):
    items = [plans.Item(seq=1, step="tell", kind="manual", text="open a Salesforce support case",
                        idempotency_key="manual-1")]
    if credential_id is not None:
        items.append(plans.Item(seq=2, step="revoke", kind="act", connector="okta", connector_kind="okta",
                                verb="revoke_token", target="tok-1", credential_id=credential_id,
                                idempotency_key="revoke-1"))
    return plans.create(case, "drift-response", "Drift response", {"app": "drift"}, items, {"steps": len(items)})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("merge")
    f = generate(d / "logs", events=3000, seed=5)
    a = create_case(d / "a.stanch", title="alice's case", analyst="alice")
    ingest(a, [str(f.gateway), str(f.okta)])
    ingest_data(a, [str(f.cases)], object_type="Case")
    b = create_case(d / "b.stanch", title="bob's case", analyst="bob")
    ingest(b, [str(f.okta), str(f.vault), str(f.vault_lookups)])
    ref = create_case(d / "ref.stanch", analyst="ref")
    ingest(ref, [str(f.gateway), str(f.okta), str(f.vault), str(f.vault_lookups)])
    ingest_data(ref, [str(f.cases)], object_type="Case")

    # Both responders work. An Okta event is in both cases: each marks it.
    shared = a.conn.execute("SELECT id FROM events WHERE vendor = 'okta' ORDER BY ts LIMIT 1").fetchone()[0]
    vault_event = b.conn.execute("SELECT id FROM events WHERE vendor = 'vault' ORDER BY ts LIMIT 1").fetchone()[0]
    a.add_note("the Drift app's token was replayed from Tor", on_ref=f"event:{shared}")
    marks.set_mark(a, shared, True)
    findings.run(a)
    plan_same_a = _plan(a)
    store_snapshot(a, "okta", "okta.token", "tok-a", {"id": "tok-a", "status": "ACTIVE"})

    b_cred = b.conn.execute("SELECT credential_id FROM events WHERE vendor = 'vault' AND credential_id IS NOT NULL"
                            " LIMIT 1").fetchone()[0]
    b_cred_key = b.conn.execute("SELECT min(key) FROM credential_keys WHERE credential_id = ?", (b_cred,)).fetchone()[0]
    b.add_note("the Vault token read the Snowflake secret", on_ref=f"credential:{b_cred}")
    b.add_note("the same Okta event, seen by bob", on_ref=f"event:{shared}")
    marks.set_mark(b, shared, True)
    marks.set_mark(b, vault_event, True)
    findings.run(b)
    plan_same_b = _plan(b)  # the same plan (same hash and playbook) in both cases
    plans.record(b, plan_same_b, 1, "manual", "done", {"note": "support case 0042 opened"}, note="case 0042")
    plan_b = _plan(b, credential_id=b_cred)  # a plan only bob has, naming one of his credentials
    store_snapshot(b, "vault", "vault.token", "acc-b", {"accessor": "acc-b"})
    with b.transaction():  # a playbook's probe proved the token dead in bob's case
        b.conn.execute("UPDATE credentials SET status = 'revoked-verified' WHERE id = ?", (b_cred,))

    before = SimpleNamespace(a=_counts(a.conn), b=_counts(b.conn), a_latest=findings.latest(a),
                             b_latest=findings.latest(b),
                             a_ids={r[0] for r in a.conn.execute("SELECT id FROM events")},
                             b_ids={r[0] for r in b.conn.execute("SELECT id FROM events")})
    b_head = verify(b.conn)[0]
    b.close()
    summary = merge(a, d / "b.stanch")
    yield SimpleNamespace(d=d, a=a, ref=ref, b_path=d / "b.stanch", b_head=b_head, summary=summary, before=before,
                          shared=shared, vault_event=vault_event, b_cred=b_cred, b_cred_key=b_cred_key,
                          plan_same_a=plan_same_a, plan_b=plan_b)
    a.close()
    ref.close()


def test_events_are_the_union_and_identity_is_re_resolved_as_one_ingest_would(world):
    a, ref = world.a.conn, world.ref.conn
    ids = {r[0] for r in a.execute("SELECT id FROM events")}
    assert ids == world.before.a_ids | world.before.b_ids == {r[0] for r in ref.execute("SELECT id FROM events")}
    assert world.before.a_ids & world.before.b_ids, "the slices should overlap"
    assert world.summary.added["events"] == len(world.before.b_ids - world.before.a_ids) > 0
    # Credentials: the same keys group into the same credentials as when every slice is ingested into one case,
    # and every event names the credential of the same keys.
    assert set(_keysets(a).values()) == set(_keysets(ref).values())
    assert _event_credentials(a) == _event_credentials(ref)
    assert _rollups(a) == _rollups(ref)
    _rollups_match_events(a)
    for col in ("kind", "first_seen", "last_used"):
        mine = {_keysets(a)[cid]: v for cid, v in a.execute(f"SELECT id, {col} FROM credentials")}
        theirs = {_keysets(ref)[cid]: v for cid, v in ref.execute(f"SELECT id, {col} FROM credentials")}
        assert mine == theirs, col
    # Exposures found in the Cases export and in the Vault lookups: as in the reference case.
    expo = "SELECT c.kind, x.field, x.shape, x.preview FROM exposures x JOIN credentials c ON c.id = x.credential_id"
    assert sorted(a.execute(expo)) == sorted(ref.execute(expo))
    # The timeline's full-text index holds the merged events (a Vault path only bob's case had).
    assert a.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'vault'").fetchone()[0] == \
        ref.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'vault'").fetchone()[0] > 0
    # The Okta log ingested into both cases is one source here; the Vault logs are copied.
    assert sorted(r[0] for r in a.execute("SELECT sha256 FROM sources")) == \
        sorted(r[0] for r in ref.execute("SELECT sha256 FROM sources"))


def test_the_merged_case_verifies_and_the_merge_is_audited(world):
    head, entries, problems = verify(world.a.conn)
    assert problems == []
    ops = [r[0] for r in world.a.conn.execute("SELECT operation FROM audit WHERE seq > ?", (world.before.a["audit"],))]
    assert ops[-1] == "merge" and {"merge.events", "merge.notes", "merge.snapshots"} <= set(ops)
    assert all(op.startswith("merge") for op in ops)
    details = orjson.loads(world.a.conn.execute("SELECT details FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert details["head"] == world.b_head and details["other"] == str(world.b_path)


def test_notes_marks_findings_plans_and_snapshots_are_united(world):
    a = world.a
    c = a.conn
    before = world.before
    assert _counts(c)["notes"] == before.a["notes"] + before.b["notes"]
    # Bob's note about one of his credentials names the same credential (by its keys) in this case.
    ref = c.execute("SELECT on_ref FROM notes WHERE text LIKE 'the Vault token%'").fetchone()[0]
    assert ref == f"credential:{_cid_for(c, world.b_cred_key)}"
    # Marks: the shared event was marked in both (two rows, one per responder), the Vault event by bob.
    assert marks.marked_among(c, [world.shared, world.vault_event]) == {world.shared, world.vault_event}
    assert c.execute("SELECT count(*) FROM marks WHERE event_id = ?", (world.shared,)).fetchone()[0] == 2
    # Findings: both runs kept, and a run uniting the latest of each is now the latest.
    assert _counts(c)["finding_runs"] == before.a["finding_runs"] + before.b["finding_runs"] + 1
    latest = findings.latest(a)
    assert latest["run"] == world.summary.union_run
    assert {f["rule_id"] for f in latest["findings"]} == \
        {f["rule_id"] for f in before.a_latest["findings"]} | {f["rule_id"] for f in before.b_latest["findings"]}
    for f in latest["findings"]:
        assert f["subject"] is None or not f["subject"].startswith("credential:") or \
            c.execute("SELECT 1 FROM credentials WHERE id = ?", (int(f["subject"].split(":")[1]),)).fetchone()
    # Plans: the plan both made is one plan, with bob's journal row and its item done; bob's own plan is copied,
    # naming his credential by this case's number.
    assert _counts(c)["plans"] == 2
    same = plans.load(a, world.plan_same_a)
    assert same.items[0].state == "done" and same.items[0].note == "case 0042"
    assert [j["phase"] for j in plans.journal(a, world.plan_same_a)] == ["manual"]
    copied = [p for p in plans.plans(a) if p["plan"] != world.plan_same_a]
    assert len(copied) == 1
    items = plans.load(a, copied[0]["plan"]).items
    assert items[1].credential_id == _cid_for(c, world.b_cred_key)
    # Snapshots: each responder's, plus bob's audit chain.
    whats = sorted(r[0] for r in c.execute("SELECT what FROM snapshots"))
    assert whats == sorted(["okta.token", "vault.token", CHAIN_WHAT])
    # Bob proved his Vault token dead; alice did not know: the status comes across.
    status = c.execute("SELECT status FROM credentials WHERE id = ?", (_cid_for(c, world.b_cred_key),)).fetchone()[0]
    assert status == "revoked-verified"


def test_the_other_chain_is_preserved_and_walks(world):
    chains = merged_chains(world.a.conn)
    assert len(chains) == 1
    chain = chains[0]
    assert chain["head"] == world.b_head and chain["problems"] == [] and chain["title"] == "bob's case"
    with open_case(world.b_path) as b:
        assert chain["entries"] == verify(b.conn)[1]
    # The stored copy is itself a row of this case's audited tables: editing it is caught by verify.
    c = world.a.conn
    body = c.execute("SELECT body FROM snapshots WHERE rowid = ?", (chain["snapshot"],)).fetchone()[0]
    doc = orjson.loads(body)
    doc["chain"][1][2] = "mallory"
    c.execute("UPDATE snapshots SET body = ? WHERE rowid = ?", (orjson.dumps(doc).decode(), chain["snapshot"]))
    try:
        problems = verify(c)[2]
        assert any(p.table == "snapshots" and "edited" in p.what for p in problems)
        assert merged_chains(c)[0]["problems"]
    finally:
        c.execute("UPDATE snapshots SET body = ? WHERE rowid = ?", (body, chain["snapshot"]))
    assert verify(c)[2] == []


def test_merging_twice_changes_nothing(world):
    c = world.a.conn
    counts = _counts(c)
    head = verify(c)[0]
    credentials = c.execute("SELECT * FROM credentials ORDER BY id").fetchall()
    again = merge(world.a, world.b_path)
    assert again.changed is False and not any(again.added.values())
    assert _counts(c) == counts and verify(c)[0] == head
    assert c.execute("SELECT * FROM credentials ORDER BY id").fetchall() == credentials


# -- small cases (toy format) ---------------------------------------------------------------------

def _toy(path, rows):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return str(path)


def test_keys_that_meet_in_the_other_case_merge_credentials_here(tmp_path):
    k1, k2 = "sha256/16:aaaaaaaaaaaaaaaa", "jti:https://idp.example:j-1"
    here = _toy(tmp_path / "here.jsonl", [
        {"t": "2025-08-10T10:00:00Z", "id": "h1", "keys": [k1], "res": "/api/a"},
        {"t": "2025-08-10T10:01:00Z", "id": "h2", "keys": [k2], "res": "/api/b"},
    ])
    there = _toy(tmp_path / "there.jsonl", [
        {"t": "2025-08-10T10:02:00Z", "id": "t1", "keys": [k1, k2], "res": "/api/c", "action": "token.refresh"},
    ])
    with create_case(tmp_path / "a.stanch") as a, create_case(tmp_path / "b.stanch") as b:
        ingest(a, [here], "toy-jsonl")
        ingest(b, [there], "toy-jsonl")
        assert a.conn.execute("SELECT count(*) FROM credentials").fetchone()[0] == 2
        b.close()
        s = merge(a, tmp_path / "b.stanch")
        assert s.credentials["merged"] == 1
        c = a.conn
        assert c.execute("SELECT count(*) FROM credentials").fetchone()[0] == 1
        assert {r[0] for r in c.execute("SELECT DISTINCT credential_id FROM events")} == {_cid_for(c, k1)}
        assert _cid_for(c, k1) == _cid_for(c, k2)
        _rollups_match_events(c)
        assert verify(c)[2] == []


def test_a_copy_of_the_same_case_brings_only_what_was_added_and_a_mark_keeps_its_latest_decision(tmp_path):
    rows = [{"t": f"2025-08-10T10:00:0{i}Z", "id": f"e{i}", "keys": ["sha256/16:bbbbbbbbbbbbbbbb"]} for i in range(5)]
    with create_case(tmp_path / "x.stanch", analyst="alice") as x:
        ingest(x, [_toy(tmp_path / "x.jsonl", rows)], "toy-jsonl")
        x.add_note("before the copy")
        # Bob takes a copy of the case to his machine (the backup API, as a consistent copy would).
        y_conn = sqlite3.connect(tmp_path / "y.stanch")
        x.conn.backup(y_conn)
        y_conn.close()
        with open_case(tmp_path / "y.stanch", analyst="bob") as y:
            marks.set_mark(y, "toy:e1", True)  # bob marks e1 first ...
            y.add_note("bob's finding")
        marks.set_mark(x, "toy:e1", True)  # ... then alice marks it and, later still, takes the mark back
        marks.set_mark(x, "toy:e1", False)
        counts = _counts(x.conn)
        s = merge(x, tmp_path / "y.stanch")
        assert s.added["events"] == 0 and s.added["notes"] == 1 and s.added["sources"] == 0
        assert [r[0] for r in x.conn.execute("SELECT text FROM notes ORDER BY rowid")] == \
            ["before the copy", "bob's finding"]
        # Bob's older mark arrived after alice's newer unmark: the latest decision (unmarked) is restated.
        assert not marks.is_marked(x.conn, "toy:e1")
        assert _counts(x.conn)["marks"] == counts["marks"] + 2
        assert verify(x.conn)[2] == []
        assert merge(x, tmp_path / "y.stanch").changed is False


def test_a_tampered_other_case_is_refused_and_nothing_is_written(tmp_path):
    with create_case(tmp_path / "a.stanch") as a, create_case(tmp_path / "b.stanch") as b:
        ingest(b, [_toy(tmp_path / "b.jsonl", [{"t": "2025-08-10T10:00:00Z", "id": "e1"}])], "toy-jsonl")
        b.add_note("genuine")
        b.close()
        conn = sqlite3.connect(tmp_path / "b.stanch")
        conn.execute("UPDATE notes SET text = 'forged' WHERE rowid = 1")
        conn.commit()
        conn.close()
        counts = _counts(a.conn)
        with pytest.raises(CaseError, match=r"b\.stanch: its audit chain does not verify .*notes row 1"):
            merge(a, tmp_path / "b.stanch")
        assert _counts(a.conn) == counts


def test_merge_errors_are_one_line_and_say_what_to_do(tmp_path):
    with create_case(tmp_path / "a.stanch") as a:
        with pytest.raises(CaseError, match="is the case being merged into"):
            merge(a, tmp_path / "a.stanch")
        with pytest.raises(CaseError, match="no such case file"):
            merge(a, tmp_path / "missing.stanch")
        (tmp_path / "notes.txt").write_text("hello\n")
        with pytest.raises(CaseError, match="not a stanch case"):
            merge(a, tmp_path / "notes.txt")
        conn = sqlite3.connect(tmp_path / "old.stanch")
        a.conn.backup(conn)
        conn.execute("UPDATE meta SET value = '10' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        with pytest.raises(CaseError, match="older than .* upgrade it first") as e:
            merge(a, tmp_path / "old.stanch")
        assert "\n" not in str(e.value)
