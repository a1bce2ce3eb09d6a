"""The built-in playbooks: each loads, cites its incident, and plans on the demo incident without error and
without touching anything remote (no connector is configured, so every act item is `blocked`, with a note that
says how to add the connector). The Drift playbook's plan names the stolen refresh token and the exposed Vault
token and AWS key, against the demo generator's ground truth (read here only, never by stanch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import connectors  # noqa: F401  (verbs, revokers, object readers)
from casefile.case import open_case
from casefile.data import ingest_data
from casefile.secrets import fingerprint
from connectors import verbs
from playbooks import engine
from playbooks.model import BUILTIN_DIR, load_all, load_file
from tests.conftest import fake_token
from tui.demo import build_demo

BUILTIN = ("salesloft-drift-2025", "leaked-static-secret", "idp-support-artifact", "cicd-secret-exposure",
           "leaked-github-pat")
NEW = BUILTIN[1:]
PAT = fake_token("ghp_", 36, salt="leakedpat")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("demo")
    path = build_demo(d / "demo.stanch", events=3000, seed=11, quiet=True, truth_dir=d / "truth")
    leak = d / "leak.txt"
    leak.write_text(f"deploy:\n  github_token: {PAT}\n", encoding="utf-8")
    with open_case(path) as case:
        ingest_data(case, [str(leak)], "repo")
    return path, json.loads((d / "truth" / "truth.json").read_text())


@pytest.fixture
def no_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning must never run a verb or a probe."""

    async def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("planning touched a connector")

    monkeypatch.setattr(verbs, "act", refuse)
    monkeypatch.setattr(verbs, "probe", refuse)


def keys_of(case: Any, credential_id: int | None) -> set[str]:
    if credential_id is None:
        return set()
    return {k for (k,) in case.conn.execute("SELECT key FROM credential_keys WHERE credential_id = ?",
                                            (credential_id,))}


def test_every_builtin_playbook_loads_and_cites_its_incident() -> None:
    pbs = load_all()
    assert set(BUILTIN) <= set(pbs)
    for pid in BUILTIN:
        pb = pbs[pid]
        assert Path(pb.file).parent == BUILTIN_DIR and load_file(Path(pb.file)).id == pid
        assert "incidents.md §" in pb.incident["source"], pid
        kinds = [s.kind for s in pb.steps]
        assert "act" in kinds and "probe" in kinds and kinds[-1] == "export", pid
    for pid in NEW:
        for step in pbs[pid].steps:
            if step.kind == "manual":
                assert "Done when" in step.spec["text"], (pid, step.id)
            if step.kind == "act" and "verb" in step.spec:
                assert verbs.get(step.spec["connector"], step.spec["verb"]), (pid, step.id)


def test_builtin_ids_match_their_files() -> None:
    for f in sorted(BUILTIN_DIR.glob("*.yaml")):
        assert load_file(f).id == f.stem


def inputs_for(pid: str, case: Any, truth: dict[str, Any]) -> dict[str, str]:
    creds = truth["compromised_credentials"]
    vault = next(x["key"] for x in truth["exposed_secrets"] if x["kind"] == "vault-token")
    if pid == "leaked-static-secret":
        return {"seed": vault}
    if pid == "idp-support-artifact":
        return {"seed": f"okta-token:{creds[0]['okta_token_id']}", "attacker_ips": "44.215.108.109, 192.42.116.20"}
    if pid == "cicd-secret-exposure":
        return {"ci_principal": "jwt-ci-github-actions"}
    if pid == "leaked-github-pat":
        return {"seed": fingerprint(PAT).keys[0]}
    return {"seed": creds[0]["key"]}


# (connector kind, verb) act items each plan must hold on the demo case
EXPECTED = {
    "salesloft-drift-2025": {("okta", "revoke-app-token"), ("vault", "revoke-accessor"),
                             ("aws", "deactivate-access-key")},
    "leaked-static-secret": {("vault", "revoke-accessor")},
    "idp-support-artifact": {("okta", "clear-user-sessions"), ("okta", "revoke-app-token"),
                             ("vault", "revoke-accessor"), ("aws", "deactivate-access-key")},
    "cicd-secret-exposure": {("vault", "revoke-token")},
    "leaked-github-pat": {("github", "revoke-credentials")},
}


@pytest.mark.parametrize("pid", BUILTIN)
def test_each_plans_on_the_demo_case(demo: tuple[Path, dict[str, Any]], no_remote: None, pid: str) -> None:
    path, truth = demo
    pb = load_all()[pid]
    with open_case(path) as case:
        plan_id = engine.make_plan(case, pb, inputs_for(pid, case, truth), {})
        doc = engine.status(case, plan_id)
        assert not case.conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    items = doc["items"]
    acts = [i for i in items if i["kind"] == "act"]
    assert EXPECTED[pid] <= {(i["connector_kind"], i["verb"]) for i in acts}
    # no connector is configured here: every act item is blocked, saying how to add one
    for i in acts:
        assert i["state"] == "blocked" and ("stanch connector add" in i["note"] or "needs the raw credential" in i["note"]), i
    kinds = {i["kind"] for i in items}
    assert {"act", "probe", "manual", "export"} <= kinds
    manual_steps = {s.id for s in pb.steps if s.kind == "manual"}
    assert manual_steps <= {i["step"] for i in items if i["kind"] == "manual"}
    assert all("{" + name + "}" not in (i["text"] or "") for i in items for name in pb.inputs)
    probes = [i for i in items if i["kind"] == "probe"]
    assert probes and all(i["state"] == "pending" for i in probes)
    assert doc["approved"] is False


def test_github_pat_needs_the_raw_token_at_apply(demo: tuple[Path, dict[str, Any]], no_remote: None) -> None:
    path, truth = demo
    keys = fingerprint(PAT).keys
    with open_case(path) as case:
        plan_id = engine.make_plan(case, load_all()["leaked-github-pat"], {"seed": keys[0]}, {})
        doc = engine.status(case, plan_id)
    revoke = [i for i in doc["items"] if i["step"] == "revoke"]
    assert len(revoke) == 1 and revoke[0]["needs_raw"] and revoke[0]["target"] == keys[0]
    assert PAT not in json.dumps(doc)  # the raw token is never in the plan
    # a classic PAT: no org-access item for a fine-grained PAT
    assert not [i for i in doc["items"] if i["step"] == "org-access"]


def test_drift_plan_names_the_stolen_and_exposed_credentials(demo: tuple[Path, dict[str, Any]],
                                                             no_remote: None) -> None:
    path, truth = demo
    creds = truth["compromised_credentials"]
    with open_case(path) as case:
        plan_id = engine.make_plan(case, load_all()["salesloft-drift-2025"], {"seed": creds[0]["key"]}, {})
        items = engine.status(case, plan_id)["items"]
        # act items, blocked act items (no connector) and "revoke by hand" manual items all count
        named = [(i, keys_of(case, i["credential_id"])) for i in items if i["kind"] in ("act", "manual")]
    refresh = [i for i, k in named if f"okta-token:{creds[0]['okta_token_id']}" in k]
    assert refresh and refresh[0]["kind"] == "act" and refresh[0]["step"] == "revoke"
    assert refresh[0]["target"].endswith(creds[0]["okta_token_id"]) and not refresh[0]["needs_raw"]
    for kind in ("vault-token", "aws-key"):
        want = next(x["key"] for x in truth["exposed_secrets"] if x["kind"] == kind)
        hit = [i for i, k in named if want in k]
        assert hit and hit[0]["step"] == "rotate", kind
