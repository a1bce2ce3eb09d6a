"""The `stanch` command line contract: subcommands, --json shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import orjson
import pytest

from tests.casefile import toy  # noqa: F401  (registers toy-jsonl in this process)
from tests.conftest import fake_token
from tui.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stanch(*argv, stdin=None):
    """The real console script in a fresh interpreter (what a responder runs)."""
    return subprocess.run([sys.executable, "-m", "tui.cli", *argv], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def log(tmp_path):
    f = tmp_path / "toy.jsonl"
    f.write_text("\n".join([
        orjson.dumps({"t": "2025-08-17T11:15:42Z", "id": "1", "keys": ["okta-token:00T1"], "ip": "192.0.2.1"}).decode(),
        orjson.dumps({"t": "2025-08-18T11:15:42Z", "id": "2", "keys": ["okta-token:00T2"]}).decode(),
        "{not json",
    ]) + "\n")
    return f


def test_new_ingest_info_events_credentials(capsys, case_path, log):
    assert run(capsys, "new", str(case_path), "--title", "INC-1")[0] == 0
    code, out, _ = run(capsys, "ingest", str(case_path), str(log), "--format", "toy-jsonl", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["totals"]["events_added"] == 2 and doc["totals"]["malformed"] == 1
    assert doc["files"][0]["problems"] == [{"line": 3, "kind": "malformed", "reason": "not JSON"}]

    code, out, _ = run(capsys, "info", str(case_path), "--json")
    info = json.loads(out)
    assert list(info)[:3] == ["schema_version", "counts", "sources"]
    assert info["counts"]["events"] == 2 and info["counts"]["credentials"] == 2
    assert info["sources"][0]["format"] == "toy-jsonl" and info["title"] == "INC-1"

    code, out, _ = run(capsys, "events", str(case_path), "--credential", "okta-token:00T1", "--json")
    assert [e["id"] for e in json.loads(out)] == ["toy:1"]
    code, out, _ = run(capsys, "events", str(case_path), "--since", "2025-08-18T00:00:00Z", "--json")
    assert [e["id"] for e in json.loads(out)] == ["toy:2"]
    code, out, _ = run(capsys, "events", str(case_path), "--limit", "1", "--json")
    assert len(json.loads(out)) == 1

    code, out, _ = run(capsys, "credentials", str(case_path), "--json")
    creds = json.loads(out)
    assert sorted(k for c in creds for k in c["keys"]) == ["okta-token:00T1", "okta-token:00T2"]
    assert run(capsys, "events", str(case_path))[0] == 0  # the human table renders


def test_user_errors_are_one_line_exit_1(capsys, tmp_path, case_path):
    code, out, err = run(capsys, "info", str(tmp_path / "missing.stanch"))
    assert code == 1 and err.count("\n") == 1 and "stanch new" in err and "Traceback" not in err
    run(capsys, "new", str(case_path))
    code, _, err = run(capsys, "events", str(case_path), "--credential", "okta-token:nope")
    assert code == 1 and "no credential" in err
    code, _, err = run(capsys, "events", str(case_path), "--since", "last tuesday")
    assert code == 1 and "--since" in err and "ISO 8601" in err
    code, _, err = run(capsys, "note", str(case_path), "x", "--on", "event:nope")
    assert code == 1 and "no such event" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["ingest"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


def test_unknown_format_file_reports_and_exits_1(capsys, case_path, tmp_path):
    run(capsys, "new", str(case_path))
    f = tmp_path / "odd.txt"
    f.write_text("nothing anyone logs\n")
    code, _, err = run(capsys, "ingest", str(case_path), str(f))
    assert code == 1 and str(f) in err and "--format" in err


def test_case_set_note_and_verify(capsys, case_path, log):
    run(capsys, "new", str(case_path))
    run(capsys, "--analyst", "bob", "ingest", str(case_path), str(log), "--format", "toy-jsonl")
    assert run(capsys, "case", "set", str(case_path), "--window-start", "2025-08-08T00:00:00Z",
               "--window-end", "2025-08-18T23:59:59Z", "--policy", "ttl_max=3600", "--policy", "allowed_networks=[\"10.0.0.0/8\"]")[0] == 0
    code, out, _ = run(capsys, "info", str(case_path), "--json")
    info = json.loads(out)
    assert info["window"] == {"start": "2025-08-08T00:00:00Z", "end": "2025-08-18T23:59:59Z"}
    assert info["policy"] == {"ttl_max": 3600, "allowed_networks": ["10.0.0.0/8"]}
    code, _, err = run(capsys, "case", "set", str(case_path), "--window-start", "2025-09-01T00:00:00Z",
                       "--window-end", "2025-08-01T00:00:00Z")
    assert code == 1 and "before" in err
    assert run(capsys, "note", str(case_path), "token seen from Tor", "--on", "event:toy:1")[0] == 0

    code, out, _ = run(capsys, "verify", str(case_path))
    assert code == 0 and "chain head" in out
    conn = sqlite3.connect(case_path)
    conn.execute("UPDATE events SET src_ip = '203.0.113.1' WHERE id = 'toy:1'")
    conn.commit()
    conn.close()
    code, _, err = run(capsys, "verify", str(case_path))
    assert code == 3 and "events row 1" in err and "edited" in err


def test_fingerprint_reads_stdin_and_never_echoes_the_token():
    tok = fake_token(salt="fp")
    r = stanch("fingerprint", "--json", stdin=f"Bearer {tok}\n")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    from casefile.secrets import fingerprint

    assert doc["keys"] == list(fingerprint(tok).keys)
    assert tok not in r.stdout and tok not in r.stderr
    r = stanch("fingerprint", stdin="")
    assert r.returncode == 1 and "no token" in r.stderr


def test_formats_lists_the_vendor_parsers():
    r = stanch("formats", "--json")
    names = {f["name"] for f in json.loads(r.stdout)}
    assert {"nginx-combined", "nginx-json", "okta-system-log", "vault-audit"} <= names
