"""The blast radius on the demo incident, against the generator's ground truth (read here only, never by
stanch): from two different seeds, every compromised credential, malicious call, object read and exposed
secret is found, and the baseline's traps stay out of the seed's reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import connectors  # noqa: F401  (revokers, object readers)
from casefile.blast import blast
from casefile.case import open_case
from tui.cli import main
from tui.demo import build_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("demo")
    path = build_demo(d / "demo.stanch", events=20_000, seed=11, quiet=True, truth_dir=d / "truth")
    return path, json.loads((d / "truth" / "truth.json").read_text())


def found_keys(b: dict[str, Any]) -> set[str]:
    return {k for c in b["credentials"] for k in c["keys"]}


def event_ids(case: Any, b: dict[str, Any]) -> set[str]:
    """Every event of every credential in reach (runtime and lineage), as the timeline would list it."""
    ids = [c["id"] for c in b["credentials"] if c["role"] != "parent"]
    q = ",".join("?" * len(ids))
    rows = case.conn.execute(f"SELECT vendor_id, id, request_id FROM events WHERE credential_id IN ({q}) OR "
                             f"subject_credential_id IN ({q})", [*ids, *ids])
    # the truth names Vault events by request id (stanch's vendor id adds `:request`/`:response`)
    return {v for r in rows for v in r if v}


@pytest.mark.parametrize("seed_of", ["refresh-token", "integration"])
def test_the_whole_compromise_is_in_reach(demo: tuple[Path, dict[str, Any]], seed_of: str) -> None:
    """Seeds: the stolen refresh token (what the vendor's notice names), and the integration itself
    (`client:*:<client id>`, what an advisory naming the app gives a responder)."""
    path, truth = demo
    creds = truth["compromised_credentials"]
    with open_case(path) as case:
        if seed_of == "refresh-token":
            seed = creds[0]["key"]
        else:
            client = case.conn.execute(
                "SELECT c.client FROM credentials c JOIN credential_keys k ON k.credential_id = c.id WHERE k.key = ?",
                (f"okta-token:{creds[0]['okta_token_id']}",)).fetchone()[0]
            seed = f"client:*:{client}"
        b = blast(case, seed)
        keys = found_keys(b)
        # every compromised credential, by the key the truth gives (full, or as the gateway logs it)
        for c in creds:
            assert c["key"] in keys or c["key16"] in keys, c["why"]
        # every exposed secret: as an exposed credential, or (a secret only Vault held) its path among secrets read
        read_paths = {g["path"] for g in b["runtime"]["secrets_read"]}
        for x in truth["exposed_secrets"]:
            assert x["key"] in keys or x["vault_path"] in read_paths, x
        # every object read
        assert set(truth["objects_read"]) <= {o["object"] for o in b["runtime"]["objects_read"]}
        # every malicious event is among the events of the credentials in reach
        ids = event_ids(case, b)
        missing = [e for e in truth["malicious_events"] if e["id"] not in ids]
        assert not missing, missing[:5]
        # the traps are other people's credentials: none of their events is in the seed's reach
        trap_events = {e for t in truth["traps"] for e in t["events"]}
        assert not trap_events & ids
        # an access token's blast names the refresh token that minted it (inferred at the token endpoint)
        parents = blast(case, creds[1]["key"])["credentials"]
        assert any(creds[0]["key16"] in c["keys"] and c["role"] == "parent" for c in parents)
        # the revocation set names the stolen refresh token, acted on by id (no raw secret needed)
        items = b["revocation_set"]["items"]
        refresh = next(i for i in items if creds[0]["okta_token_id"] and
                       f"okta-token:{creds[0]['okta_token_id']}" in i["keys"])
        assert refresh["connector"] == "okta" and refresh["needs_raw_secret"] is False
        exposed = [i for i in items if i["reason"].startswith("exposed")]
        assert {i["kind"] for i in exposed} >= {"vault-token", "aws-key"}


def test_stanch_blast_json_and_text(demo: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    path, truth = demo
    seed = truth["compromised_credentials"][0]["key"]
    assert main(["blast", str(path), seed, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["seed", "window", "depth", "credentials", "static", "runtime", "lineage", "exposure",
                         "revocation_set"]
    assert main(["blast", str(path), seed]) == 0
    out = capsys.readouterr().out
    assert "runtime reach" in out and "revocation set" in out
    assert main(["blast", str(path), "sha256:" + "0" * 64]) == 1
    assert "no credential with that key" in capsys.readouterr().err


DETECTIONS = ("stanch-ioc-hit", "stanch-first-seen-ip", "stanch-first-seen-user-agent", "stanch-first-seen-asn",
              "stanch-volume-spike", "salesforce-count-recon", "salesforce-bulk-export-then-delete",
              "stanch-secret-in-data")


def test_findings_catch_the_actor_and_not_the_traps(demo: tuple[Path, dict[str, Any]]) -> None:
    """Detection findings (behaviour, IOCs, exposure) on the demo: every compromised credential is the subject of
    one, none rests on a trap event, and none is a false positive (each has malicious evidence or is an exposed
    secret). Posture findings (scopes, TTL, third-party tokens) describe configuration, not activity."""
    from casefile import findings

    path, truth = demo
    malicious = {e["id"] for e in truth["malicious_events"]}
    traps = {e for t in truth["traps"] for e in t["events"]}
    with open_case(path) as case:
        doc = findings.run(case)
        key_of = {k: cid for k, cid in case.conn.execute("SELECT key, credential_id FROM credential_keys")}
        names = {r[0]: {r[1], r[2]} for r in case.conn.execute("SELECT id, vendor_id, request_id FROM events")}
    detections = [f for f in doc["findings"] if f["rule_id"] in DETECTIONS]
    subjects = {f["subject"] for f in detections}
    for c in truth["compromised_credentials"]:
        cid = key_of.get(c["key"]) or key_of.get(c["key16"])
        assert f"credential:{cid}" in subjects, c["why"]
    false_positives = []
    for f in detections:
        ids = set(f["evidence"]).union(*(names.get(e, set()) for e in f["evidence"]))
        assert not ids & traps, (f["rule_id"], f["summary"])
        if f["rule_id"] != "stanch-secret-in-data" and not ids & malicious:
            false_positives.append((f["rule_id"], f["summary"]))
    assert false_positives == []
    assert doc["suppressed"].get("stanch-ioc-hit", 0) > 0  # the Tor and aiohttp traps, seen before the window
