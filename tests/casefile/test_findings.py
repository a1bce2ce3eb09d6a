"""`casefile.findings`: rule files are validated with errors naming file, rule and field; each kind finds what
it should on the vendor-free toy format; stanch's own calls never raise a finding; runs are stored, audited
and covered by `verify`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from casefile import findings as F
from casefile.audit import verify
from casefile.case import create_case
from casefile.ingest import ingest
from tests.casefile import toy  # noqa: F401  (registers the toy format)

IOC_IP = "185.220.101.143"


def events_file(tmp_path: Path, rows: list[dict]) -> str:
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return str(p)


def t(day: int, hour: int = 10, minute: int = 0, sec: int = 0) -> str:
    return f"2025-08-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}Z"


@pytest.fixture
def case(tmp_path):
    rows = []
    # a credential with a two-week baseline from one address, then calls from an IOC address
    for d in range(1, 8):
        for m in range(4):
            rows.append({"t": t(d, 10, m), "keys": ["sha256/16:aaaaaaaaaaaaaaaa"], "ip": "198.51.100.7",
                         "res": "/api/things"})
    for m in range(3):
        rows.append({"t": t(12, 3, m), "keys": ["sha256/16:aaaaaaaaaaaaaaaa"], "ip": IOC_IP, "res": "/api/things"})
    # an employee who uses the IOC Tor exit already in the baseline: suppressed, not reported
    rows.append({"t": t(2), "keys": ["sha256/16:bbbbbbbbbbbbbbbb"], "ip": IOC_IP, "res": "/api/me"})
    rows.append({"t": t(12), "keys": ["sha256/16:bbbbbbbbbbbbbbbb"], "ip": IOC_IP, "res": "/api/me"})
    # stanch's own probe from an IOC address: never a finding
    rows.append({"t": t(13), "keys": ["sha256/16:cccccccccccccccc"], "ip": IOC_IP, "res": "/api/me",
                 "ua": "stanch/0.1.0 (+incident-response)"})
    p = events_file(tmp_path, rows)
    with create_case(tmp_path / "c.stanch") as c:
        ingest(c, [p], "toy-jsonl")
        c.set_meta({"window_start": t(8, 0)})
        yield c


def only(case, rule_id, **kw):
    return [f for f in F.run(case, only=[rule_id], **kw)["findings"] if f["rule_id"] == rule_id]


def test_ioc_hits_suppression_and_own_calls(case):
    hits = only(case, "stanch-ioc-hit")
    assert [h["subject"] for h in hits] == ["credential:1"]
    assert hits[0]["count"] == 3 and len(hits[0]["evidence"]) == 3 and hits[0]["nhi"] == ["NHI3:2025"]
    assert "DE.CM-01" in hits[0]["csf"] and hits[0]["author"] == "stanch"
    assert F.latest(case)["suppressed"] == {"stanch-ioc-hit": 2}  # the employee's two calls


def test_first_seen_address(case):
    (f,) = only(case, "stanch-first-seen-ip")
    assert f["subject"] == "credential:1" and IOC_IP in f["summary"] and f["details"]["baseline_events"] == 28


def test_runs_are_stored_audited_and_verified(case):
    first = F.run(case)
    second = F.run(case)
    assert second["run"] == first["run"] + 1
    assert F.latest(case)["run"] == second["run"]
    head, _, problems = verify(case.conn)
    assert not problems
    case.conn.execute("UPDATE findings SET severity = 'info' WHERE rowid = 1")
    assert any(p.table == "findings" for p in verify(case.conn)[2])


def test_user_rules_and_iocs(case, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.yaml").write_text(
        "id: my-api-things\ntitle: Calls to /api/things from anywhere\nseverity: low\nkind: sql\n"
        "params: {query: \"SELECT credential_id, rowid FROM events WHERE resource = '/api/things'\", "
        "summary: '{count} calls'}\nnhi: [NHI5:2025]\ncsf: [DE.CM-03]\n")
    (f,) = only(case, "my-api-things", rule_dirs=[rules])
    assert f["count"] == 31 and f["summary"] == "31 calls" and f["source"] == "stanch:mine.yaml"
    pack = tmp_path / "pack.yaml"
    pack.write_text("pack: lab\nips: [185.220.101.0/24]\n")
    hits = only(case, "stanch-ioc-hit", ioc_files=[pack])
    assert {h["details"]["pack"] for h in hits} == {"salesloft-drift-2025", "lab"}


@pytest.mark.parametrize(("text", "message"), [
    ("id: x\ntitle: t\nseverity: urgent\nkind: sql\n", "field severity: one of info, low"),
    ("id: x\ntitle: t\nseverity: low\nkind: magic\n", "field kind: unknown kind 'magic'"),
    ("id: x\ntitle: t\nseverity: low\nkind: sql\ncsf: [PR.AC-1]\n", "not a NIST CSF 2.0 id (two digits: PR.AA-01)"),
    ("id: x\ntitle: t\nseverity: low\nkind: sql\nnhi: [NHI11:2025]\n", "not an OWASP NHI Top 10 (2025) id"),
    ("id: x\ntitle: t\nseverity: low\nkind: first_seen\nparams: {window: 3}\n", "field params.window: kind first_seen takes"),
    ("title: t\n", "rule 1: field id: required"),
    ("id: x\n  title: [\n", "not valid YAML"),
])
def test_bad_rule_files_name_file_rule_and_field(tmp_path, text, message):
    d = tmp_path / "r"
    d.mkdir()
    (d / "bad.yaml").write_text(text)
    with pytest.raises(F.RuleError) as e:
        F.load_rules([d])
    assert str(e.value).startswith(str(d / "bad.yaml")) and message in str(e.value)


def test_bad_ioc_pack(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("pack: x\nips: [not-an-ip]\n")
    with pytest.raises(F.RuleError, match=r"p.yaml: field ips\[1\]: 'not-an-ip' is not an IP"):
        F.load_iocs([p])


def test_use_after_retired_from_the_policy(case):
    import orjson as _o

    case.set_meta({"policy": _o.dumps({"offboarded": {"alice@acme.example": "2025-08-05T00:00:00Z"}}).decode()})
    case.conn.execute("UPDATE credentials SET principal = 'alice@acme.example' WHERE id = 1")
    (f,) = only(case, "stanch-use-after-retired")
    assert f["subject"] == "credential:1" and f["nhi"] == ["NHI1:2025"] and f["count"] == 15  # 3 days x 4 + 3


def test_okta_use_after_user_deactivated(tmp_path):
    import connectors  # noqa: F401  (the Okta rule folder)

    rows = [
        {"uuid": "u1", "published": "2025-08-01T10:00:00.000Z", "eventType": "user.lifecycle.deactivate",
         "actor": {"alternateId": "admin@acme.example"}, "outcome": {"result": "SUCCESS"},
         "target": [{"id": "00u1", "type": "User", "alternateId": "bob@acme.example"}]},
        {"uuid": "u2", "published": "2025-08-02T10:00:00.000Z", "eventType": "app.oauth2.as.token.grant.access_token",
         "actor": {"alternateId": "bob@acme.example"}, "outcome": {"result": "SUCCESS"},
         "client": {"ipAddress": "203.0.113.5", "id": "0oaAPP"},
         "target": [{"id": "AT.bobtoken1", "type": "access_token", "detailEntry": {"expires": "2025-08-02T11:00:00.000Z"}}]},
        {"uuid": "u3", "published": "2025-08-02T10:05:00.000Z", "eventType": "system.api_token.create",
         "actor": {"alternateId": "bob@acme.example"}, "outcome": {"result": "SUCCESS"},
         "transaction": {"detail": {"requestApiTokenId": "00TbobToken"}},
         "client": {"ipAddress": "203.0.113.5"}, "target": [{"id": "00Tnew", "type": "Token"}]},
    ]
    p = tmp_path / "okta.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    with create_case(tmp_path / "c.stanch") as c:
        ingest(c, [str(p)], "okta-system-log")
        c.conn.execute("UPDATE credentials SET principal = 'bob@acme.example'")
        found = only(c, "okta-use-after-user-offboarded")
    assert found and all(f["nhi"] == ["NHI1:2025"] for f in found)
