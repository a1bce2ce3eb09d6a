"""`stanch play list|show|plan|approve|status|tick|apply` on a small toy case with no connector configured
(STANCH_CONFIG_DIR is an empty folder): act items are `blocked` with a note saying how to add the connector;
errors are one line and exit 1 (usage errors exit 2)."""

from __future__ import annotations

import json

import orjson
import pytest

from casefile.case import create_case
from casefile.ingest import ingest
from tests.casefile import toy  # noqa: F401  (registers the toy format)
from tui.cli import main

KEY_ID = "AKIAFAKEPLAYCLI0TEST"  # an obviously fake AWS access key id


@pytest.fixture
def cfg_dir(tmp_path, monkeypatch):
    d = tmp_path / "cfg"
    d.mkdir()
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(d))
    monkeypatch.delenv("STANCH_READ_ONLY", raising=False)
    return d


@pytest.fixture
def case(tmp_path, cfg_dir):
    rows = [{"t": f"2025-08-10T10:00:0{i}Z", "id": f"e{i}", "keys": [f"aws-key:{KEY_ID}"], "kind": "aws-key",
             "principal": "svc.deploy", "ip": "198.51.100.7", "res": f"s3://bucket/{i}"} for i in range(3)]
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    path = tmp_path / "c.stanch"
    with create_case(path) as c:
        ingest(c, [str(p)], "toy-jsonl")
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def plan(capsys, case, *extra):
    code, out, err = run(capsys, "play", "plan", case, "leaked-static-secret", "--input", f"seed=aws-key:{KEY_ID}",
                         "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_list_and_show(capsys, cfg_dir):
    code, out, _ = run(capsys, "play", "list")
    assert code == 0
    for pid in ("salesloft-drift-2025", "leaked-static-secret", "idp-support-artifact", "cicd-secret-exposure",
                "leaked-github-pat"):
        assert pid in out
    code, out, _ = run(capsys, "play", "list", "--json")
    assert code == 0 and {p["id"] for p in json.loads(out)} >= {"leaked-github-pat", "cicd-secret-exposure"}
    code, out, _ = run(capsys, "play", "show", "leaked-github-pat")
    assert code == 0 and "modeled on:" in out and "incidents.md §" in out and "input seed (required)" in out
    assert "[act]" in out and "[manual]" in out
    code, out, _ = run(capsys, "play", "show", "cicd-secret-exposure", "--json")
    assert code == 0 and json.loads(out)["steps"][0]["kind"] == "manual"


def test_plan_blocks_act_items_without_a_connector(capsys, case):
    doc = plan(capsys, case)
    acts = [i for i in doc["items"] if i["kind"] == "act"]
    assert [(i["connector_kind"], i["verb"], i["target"]) for i in acts] == [("aws", "deactivate-access-key", KEY_ID)]
    assert acts[0]["state"] == "blocked" and "stanch connector add NAME --kind aws" in acts[0]["note"]
    assert doc["approved"] is False
    # the table shows the same, and says how to approve
    code, out, _ = run(capsys, "play", "plan", case, "leaked-static-secret", "--input", f"seed=aws-key:{KEY_ID}")
    assert code == 0 and "NOT approved" in out and "stanch play approve" in out


def test_approve_status_tick(capsys, case):
    doc = plan(capsys, case)
    pid = str(doc["plan"])
    code, out, _ = run(capsys, "play", "approve", case, pid, "--as", "alice")
    assert code == 0 and f"plan {pid} approved by alice" in out
    code, out, _ = run(capsys, "play", "status", case)
    assert code == 0 and f"plan {pid}: leaked-static-secret (approved by alice)" in out
    code, out, _ = run(capsys, "play", "status", case, "--json")
    assert code == 0 and json.loads(out)[0]["approved"] is True
    code, out, _ = run(capsys, "play", "status", case, pid, "--json")
    st = json.loads(out)
    assert code == 0 and st["approved_by"] == "alice" and st["hash"] == doc["hash"]
    manual = next(i for i in st["items"] if i["kind"] == "manual")
    code, out, _ = run(capsys, "play", "tick", case, pid, str(manual["seq"]), "--note", "exported, scanned, noted")
    assert code == 0 and f"item {manual['seq']} ticked" in out
    code, out, _ = run(capsys, "play", "status", case, pid, "--json")
    item = next(i for i in json.loads(out)["items"] if i["seq"] == manual["seq"])
    assert item["state"] == "done" and item["note"] == "exported, scanned, noted"
    # an act item cannot be ticked
    act = next(i for i in st["items"] if i["kind"] == "act")
    code, _, err = run(capsys, "play", "tick", case, pid, str(act["seq"]), "--note", "x")
    assert code == 1 and "is not a manual item" in err and len(err.strip().splitlines()) == 1


def test_one_line_errors(capsys, case):
    code, _, err = run(capsys, "play", "show", "no-such-playbook")
    assert code == 1 and "no playbook no-such-playbook" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "play", "plan", case, "no-such-playbook")
    assert code == 1 and "no playbook no-such-playbook" in err
    code, _, err = run(capsys, "play", "plan", case, "leaked-static-secret")
    assert code == 1 and "input seed is required" in err and "--input seed=VALUE" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "play", "plan", case, "leaked-static-secret", "--input", "seed")
    assert code == 1 and "expected NAME=VALUE" in err
    doc = plan(capsys, case)
    with pytest.raises(SystemExit) as e:
        main(["play", "approve", case, str(doc["plan"])])
    assert e.value.code == 2 and "--as" in capsys.readouterr().err
    code, _, err = run(capsys, "play", "apply", case, str(doc["plan"]))
    assert code == 1 and "is not approved" in err and len(err.strip().splitlines()) == 1


def test_read_only_apply_is_refused(capsys, case):
    doc = plan(capsys, case)
    assert run(capsys, "play", "approve", case, str(doc["plan"]), "--as", "alice")[0] == 0
    code, _, err = run(capsys, "play", "apply", case, str(doc["plan"]), "--read-only")
    assert code == 1 and "read-only" in err


def test_user_playbooks_folder(capsys, case, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "mine.yaml").write_text(
        "id: my-keys\ntitle: My keys\nincident: {name: lab, source: tests}\n"
        "inputs:\n  seed: {description: a key, required: true}\n"
        "steps:\n  - {id: keys, kind: select, from: revocation_set, seed: \"{seed}\"}\n"
        "  - {id: revoke, kind: act, items: keys}\n")
    code, out, _ = run(capsys, "play", "list", "--playbooks", str(d))
    assert code == 0 and "my-keys" in out
    (d / "bad.yaml").write_text("id: bad\ntitle: Bad\nincident: {name: x, source: y}\n"
                                "steps:\n  - {id: revoke, kind: act, items: nothing}\n")
    code, _, err = run(capsys, "play", "list", "--playbooks", str(d))
    assert code == 1 and "bad.yaml: step revoke: field items" in err
