"""The playbook engine over a test-double vendor (a fake kind registered here, which keeps its revocations in
memory): plan, approve, apply with the write-ahead journal, resume after an interruption, verify, and the
refusals (unapproved or changed plan, missing raw secrets, read-only). The same engine runs against real
servers in tests/playbooks/test_peers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from casefile import plans
from casefile.audit import verify as verify_audit
from casefile.blast import RevokeHow, register_revoker
from casefile.case import CaseError, create_case
from casefile.ingest import ingest
from connectors import verbs
from connectors.config import ConnectorSettings
from connectors.verdict import REVOKED_VERIFIED, STILL_LIVE, Verdict
from playbooks import engine
from playbooks.model import PlaybookError, load_file
from tests.casefile import toy  # noqa: F401  (registers the toy format)
from tests.conftest import fake_token

RAW = fake_token("stanch-FAKE-lab-token-", 24, salt="raw")


class FakeVendor:
    """TEST DOUBLE of a vendor: `revoke` kills a token id; `rotate` is a rotation; calls are counted."""

    def __init__(self) -> None:
        self.dead: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.fail_next: int = 0
        self.ignore: set[str] = set()  # ids the vendor answers 200 for but does not revoke

    async def act(self, settings: ConnectorSettings, secret: str, target: str, *, raw: str | None,
                  snapshot: Any) -> dict[str, Any]:
        self.calls.append(("revoke", target))
        snapshot("lab.token", target, {"id": target, "use_count": 3})
        if self.fail_next:
            self.fail_next -= 1
            from connectors.http import ServerError
            raise ServerError("503 from lab: busy", connector="lab", status=503)
        if target not in self.ignore:
            self.dead.add(target)
        return {"status_code": 200}

    async def probe(self, settings: ConnectorSettings, secret: str, target: str, *, raw: str | None) -> Verdict:
        return Verdict(REVOKED_VERIFIED, "lookup refused") if target in self.dead else Verdict(STILL_LIVE, "listed")


LAB = FakeVendor()


def _lab_revoker(c: dict[str, Any]) -> RevokeHow | None:
    for k in c.get("keys") or []:
        if k.startswith("okta-token:lab"):
            return RevokeHow("lab", "revoke", k.split(":", 1)[1], needs_raw_secret=False)
    return None


@pytest.fixture(autouse=True)
def lab_kind():
    """The test double is registered for these tests only (the registries are global)."""
    from casefile import blast as _blast

    names = [("lab", "revoke", {}), ("lab", "revoke-raw", {"needs_raw": True}), ("lab", "rotate", {"rotation": True})]
    for kind, name, kw in names:
        verbs.register(kind, name, act=LAB.act, probe=LAB.probe, **kw)
    register_revoker(_lab_revoker)
    yield
    for kind, name, _ in names:
        verbs.VERBS.pop((kind, name), None)
    _blast.REVOKERS.remove(_lab_revoker)


SETTINGS = {"lab1": ConnectorSettings(name="lab1", kind="lab", url="https://lab.example", concurrency=4)}
OPTS = dict(settings=SETTINGS, connector_secrets={"lab1": "stanch-FAKE-connector-secret"})

PLAYBOOK = """
id: lab-pb
title: Lab playbook
incident: {name: lab, source: tests}
inputs:
  seed: {description: the seed, required: true}
steps:
  - {id: look, kind: manual, text: "Look at {seed} and say what you saw."}
  - {id: tokens, kind: select, from: revocation_set, seed: "{seed}"}
  - {id: revoke, kind: act, items: tokens}
  - {id: prove, kind: probe, items: revoke}
  - {id: report, kind: export, format: plan-json, path: "{case}.plan-{plan}.json"}
"""


@pytest.fixture
def setup(tmp_path):
    LAB.dead.clear()
    LAB.calls.clear()
    LAB.ignore.clear()
    LAB.fail_next = 0
    rows = [{"t": f"2025-08-10T10:00:0{i}Z", "id": f"e{i}", "keys": ["sha256/16:aaaaaaaaaaaaaaaa"],
             "subject": [f"okta-token:lab{i}"], "action": "token.issue"} for i in range(5)]
    rows.append({"t": "2025-08-10T09:00:00Z", "id": "s", "keys": ["sha256/16:aaaaaaaaaaaaaaaa", "okta-token:labseed"]})
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    pb_file = tmp_path / "lab.yaml"
    pb_file.write_text(PLAYBOOK)
    with create_case(tmp_path / "c.stanch") as case:
        ingest(case, [str(p)], "toy-jsonl")
        yield case, load_file(pb_file)


def plan_and_approve(case, pb) -> int:
    pid = engine.make_plan(case, pb, {"seed": "okta-token:labseed"}, SETTINGS)
    plans.approve(case, pid, "alice")
    return pid


def test_plan_approve_apply_verify(setup):
    case, pb = setup
    pid = engine.make_plan(case, pb, {"seed": "okta-token:labseed"}, SETTINGS)
    doc = engine.status(case, pid)
    acts = [i for i in doc["items"] if i["kind"] == "act"]
    assert len(acts) == 6 and {i["connector"] for i in acts} == {"lab1"} and not LAB.calls  # nothing remote
    with pytest.raises(CaseError, match="is not approved"):
        engine.apply(case, pid, {}, engine.RunOptions(**OPTS))
    plans.approve(case, pid, "alice")
    out = engine.apply(case, pid, {}, engine.RunOptions(**OPTS))
    assert out["states"] == {"verified": 12, "waiting": 1, "done": 1}  # 6 acts + 6 probes; manual; export
    assert sorted(t for _, t in LAB.calls) == sorted(i["target"] for i in acts)
    assert Path(f"{case.path}.plan-{pid}.json").is_file()
    # every act was journaled intent-then-result, and its snapshot stored first
    j = plans.journal(case, pid, acts[0]["seq"])
    assert [e["phase"] for e in j][:2] == ["intent", "result"]
    assert case.conn.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 6
    engine.tick(case, pid, 1, "looked; nothing odd")
    assert engine.status(case, pid)["states"].get("waiting") is None
    assert not verify_audit(case.conn)[2]
    # applying again repeats nothing
    engine.apply(case, pid, {}, engine.RunOptions(**OPTS))
    assert len(LAB.calls) == 6


def test_a_changed_plan_is_refused_and_read_only_refuses(setup):
    case, pb = setup
    pid = plan_and_approve(case, pb)
    case.conn.execute("UPDATE plan_items SET target = 'lab-something-else' WHERE plan_id = ? AND kind = 'act'"
                      " AND seq = 2", (pid,))
    with pytest.raises(CaseError, match="changed since it was approved"):
        engine.apply(case, pid, {}, engine.RunOptions(**OPTS))
    pid2 = plan_and_approve(case, pb)
    with pytest.raises(engine.ApplyError, match="read-only"):
        engine.apply(case, pid2, {}, engine.RunOptions(read_only=True, **OPTS))
    assert not LAB.calls


def test_resume_probes_what_was_in_flight_and_never_repeats_done_items(setup):
    case, pb = setup
    pid = plan_and_approve(case, pb)
    items = [i for i in plans.load(case, pid).items if i.kind == "act"]
    # as a kill -9 leaves it: item A's call reached the vendor, item B's did not; item C was done
    a, b, c = items[0], items[1], items[2]
    LAB.dead.add(a.target)
    for it in (a, b):
        plans.record(case, pid, it.seq, "intent", "in-flight", {"attempt": 1})
    plans.record(case, pid, c.seq, "intent", "in-flight", {})
    plans.record(case, pid, c.seq, "result", "done", {})
    LAB.dead.add(c.target)
    engine.apply(case, pid, {}, engine.RunOptions(**OPTS))
    sent = [t for _, t in LAB.calls]
    assert a.target not in sent and c.target not in sent and sent.count(b.target) == 1
    assert [e["phase"] for e in plans.journal(case, pid, a.seq)] == ["intent", "resume", "probe"]


def test_a_rotation_in_flight_is_never_sent_twice(setup, tmp_path):
    case, _ = setup
    f = tmp_path / "rot.yaml"
    f.write_text(PLAYBOOK.replace("{id: revoke, kind: act, items: tokens}",
                                  "{id: revoke, kind: act, items: tokens, verb: rotate, connector: lab}"))
    pid = plan_and_approve(case, load_file(f))
    item = next(i for i in plans.load(case, pid).items if i.kind == "act")
    plans.record(case, pid, item.seq, "intent", "in-flight", {})
    engine.apply(case, pid, {}, engine.RunOptions(**OPTS))
    assert item.target not in [t for _, t in LAB.calls]
    st = {i["seq"]: i for i in engine.status(case, pid)["items"]}
    assert st[item.seq]["state"] == "failed" and "rotation" in st[item.seq]["note"]


def test_transient_failures_are_retried_and_a_silent_revoke_is_reopened(setup):
    case, pb = setup
    pid = plan_and_approve(case, pb)
    LAB.fail_next = 1
    target = next(i for i in plans.load(case, pid).items if i.kind == "act").target
    LAB.ignore.add(target)  # the vendor answers 200 and revokes nothing
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    doc = engine.apply(case, pid, {}, engine.RunOptions(sleep=sleep, **OPTS))
    assert waits  # the 503 was retried
    item = next(i for i in doc["items"] if i["target"] == target and i["kind"] == "act")
    assert item["state"] == "pending" and item["verdict"] == STILL_LIVE and "open again" in item["note"]


def test_items_needing_the_raw_secret_get_it_at_apply_time(setup, tmp_path):
    case, _ = setup
    f = tmp_path / "raw.yaml"
    f.write_text(PLAYBOOK.replace("{id: revoke, kind: act, items: tokens}",
                                  "{id: revoke, kind: act, items: tokens, verb: revoke-raw, connector: lab,"
                                  " where: {role: seed}}"))
    case.conn.execute("INSERT OR IGNORE INTO credential_keys(key, credential_id) SELECT ?, credential_id FROM"
                      " credential_keys WHERE key = 'okta-token:labseed'",
                      (engine.fingerprint(RAW).keys[0],))
    pid = plan_and_approve(case, load_file(f))
    with pytest.raises(engine.ApplyError, match="need the raw credential"):
        engine.apply(case, pid, {}, engine.RunOptions(**OPTS))
    out = engine.apply(case, pid, engine.read_secrets([RAW]), engine.RunOptions(**OPTS))
    assert out["states"].get("verified")
    dump = "\n".join(case.conn.iterdump())
    assert RAW not in dump


def test_bad_playbooks_name_file_step_and_field(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(PLAYBOOK.replace("{id: prove, kind: probe, items: revoke}", "{id: prove, kind: probe, items: tokens}"))
    with pytest.raises(PlaybookError, match=r"bad.yaml: step prove: field items: must name an earlier act step"):
        load_file(f)
    f.write_text(PLAYBOOK.replace("{id: look, kind: manual, text: \"Look at {seed} and say what you saw.\"}",
                                  "{id: look, kind: manual, text: \"Look at {nope}\"}"))
    with pytest.raises(PlaybookError, match=r"step look: field text: \{nope\} is not an input"):
        load_file(f)
    f.write_text(PLAYBOOK.replace("kind: export, format: plan-json", "kind: export, format: pdf"))
    with pytest.raises(PlaybookError, match="step report: field format: one of plan-json"):
        load_file(f)
