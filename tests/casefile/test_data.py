"""`stanch ingest-data` (casefile.data): credentials found in data are kept as fingerprints and where they were
found, never as values; bad lines are counted; a re-ingest adds nothing; `verify` covers the exposures."""

from __future__ import annotations

import json

from casefile.audit import verify
from casefile.case import create_case
from casefile.data import ingest_data
from casefile.secrets import fingerprint
from tests.conftest import fake_token
from tui.cli import main

GH = fake_token("ghp_", 36, salt="d")
VAULT = "hvs." + fake_token("CAESIFAKE", 60, salt="v")
AKIA = "AKIAFAKE" + "ABCDEFGHIJKL"  # 20 characters, an obviously fake key id


def test_csv_json_and_text_files(tmp_path):
    csv_file = tmp_path / "cases.csv"
    csv_file.write_text("Id,CaseNumber,Subject,Description\n"
                        "500AAA000000001XYZ,00001,Login,nothing here\n"
                        f'500AAA000000002XYZ,00002,Sync,"token {VAULT} and key {AKIA}"\n', encoding="utf-8")
    json_file = tmp_path / "tickets.jsonl"
    json_file.write_text(json.dumps({"id": "T-1", "attributes": {"type": "Ticket"}, "body": f"use {GH}",
                                     "api_key": "stanch-FAKE-field-secret-1"}) + "\n{broken json " + GH + "\n")
    text_file = tmp_path / "notes.txt"
    text_file.write_text(f"line one\nsee {GH}\n")
    with create_case(tmp_path / "c.stanch") as case:
        out = {s.format: s for s in ingest_data(case, [str(csv_file), str(json_file), str(text_file)])}
        assert out["data-csv"].records == 2 and out["data-csv"].exposures == 2
        assert out["data-json"].exposures == 3 and out["data-json"].unreadable == 1
        assert out["data-json"].problems[0]["line"] == 2
        assert out["data-text"].exposures == 1
        rows = case.conn.execute("SELECT object, object_type, field, shape, preview FROM exposures ORDER BY rowid").fetchall()
        assert rows[0][:3] == ("500AAA000000002XYZ", None, "Description") and rows[0][3] == "vault-service-token"
        assert ("T-1", "Ticket", "api_key") in {r[:3] for r in rows}
        # the same GitHub token in three files is one credential with three exposures
        cid = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?",
                                (fingerprint(GH).keys[0],)).fetchone()[0]
        assert case.conn.execute("SELECT count(*) FROM exposures WHERE credential_id = ?", (cid,)).fetchone()[0] == 3
        assert case.conn.execute("SELECT first_seen FROM credentials WHERE id = ?", (cid,)).fetchone()[0] is None
        # the AWS key id joins CloudTrail's key
        assert case.conn.execute("SELECT 1 FROM credential_keys WHERE key = ?", (f"aws-key:{AKIA}",)).fetchone()
        again = ingest_data(case, [str(csv_file)])
        assert again[0].already_ingested
        assert not verify(case.conn)[2]
        dump = "\n".join(case.conn.iterdump())
        for raw in (GH, VAULT, "stanch-FAKE-field-secret-1"):
            assert raw not in dump


def test_stanch_ingest_data_command(tmp_path, capsys):
    case = str(tmp_path / "c.stanch")
    f = tmp_path / "dump.txt"
    f.write_text(f"pasted {GH}\n")
    assert main(["new", case]) == 0
    assert main(["ingest-data", case, str(f)]) == 0
    out = capsys.readouterr().out
    assert "1 credentials found (1 new)" in out and GH not in out
    assert main(["ingest-data", case, str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_hostile_data_files_are_read_or_reported_never_raised(tmp_path, capsys):
    """Found after issue 12's fuzzing of the log parsers, in the data reader they did not cover: a JSON array nested
    past Python's recursion limit raised RecursionError; a broken array's decoder message quoted the data (a cut
    token) into the stored reason and the terminal, and the tokens in and after the broken item were never looked
    for; a corrupt .gz raised a traceback."""
    import gzip

    deep = tmp_path / "deep.json"
    deep.write_text("[" + '{"a": ' * 3000 + json.dumps(f"x {GH}") + "}" * 3000 + "]\n")
    other = fake_token("ghp_", 36, salt="e")
    broken = tmp_path / "broken.json"
    broken.write_text(f'[{{"id": "T-9", "note": "{GH}", "b": tru {other[:30]}\n "later": "{VAULT}"}}]\n')
    cut = tmp_path / "dump.jsonl.gz"
    data = gzip.compress("".join(json.dumps({"id": f"T-{i}", "body": GH}) + "\n" for i in range(5000)).encode())
    cut.write_bytes(data[: len(data) // 2])
    with create_case(tmp_path / "c.stanch") as case:
        by = {s.path: s for s in ingest_data(case, [str(deep), str(broken), str(cut)])}
        assert by[str(deep)].records == 1 and by[str(deep)].exposures == 1
        b = by[str(broken)]
        # the token in the broken item, the cut one where it broke (still GitHub's shape), and the one after it
        assert b.unreadable == 1 and b.exposures == 3
        assert all(other[:20] not in p["reason"] and "\n" not in p["reason"] for p in b.problems)
        c = by[str(cut)]
        assert c.error is not None and c.error.startswith(f"{cut}: the file ends before its gzip stream does")
        assert c.records > 0 and c.exposures == c.records  # what was read before the cut was searched
        assert case.conn.execute("SELECT status FROM sources WHERE path = ?", (str(cut),)).fetchone()[0] == "failed"
        dump = "\n".join(case.conn.iterdump())
        assert GH not in dump and other[:20] not in dump and VAULT not in dump
        assert verify(case.conn)[2] == []
    assert main(["ingest-data", str(tmp_path / "c.stanch"), str(cut)]) == 1  # a failed file is read again
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "zcat" in err
