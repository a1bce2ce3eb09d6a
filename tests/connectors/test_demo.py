"""The bundled demo incident: deterministic, the right size, in the vendors' formats, no raw secret, truth that holds."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from casefile.secrets import find_secrets
from connectors.demo import DemoFiles, _scenario, generate

# incidents.md §1.6, copied here so the test does not trust the generator's own list.
IOC_IPS = {
    "208.68.36.90", "44.215.108.109", "154.41.95.2", "176.65.149.100", "179.43.159.198", "185.130.47.58",
    "185.207.107.130", "185.220.101.33", "185.220.101.133", "185.220.101.143", "185.220.101.164",
    "185.220.101.167", "185.220.101.169", "185.220.101.180", "185.220.101.185", "192.42.116.20",
    "192.42.116.179", "194.15.36.117", "195.47.238.83", "195.47.238.178",
}
IOC_UAS = {"Salesforce-Multi-Org-Fetcher/1.0", "Salesforce-CLI/1.0", "python-requests/2.32.4",
           "Python/3.11 aiohttp/3.12.15"}
GATEWAY_KEYS = {"time", "remote_addr", "method", "uri", "status", "user_agent", "token_fp", "token_tail",
                "token_active", "upstream_status", "request_time", "request_id", "bytes"}
HEX16 = re.compile(r"^[0-9a-f]{16}$")
NGINX_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")
EVENTS = 5000


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoFiles, dict]:
    root = tmp_path_factory.mktemp("demo")
    files = generate(root / "case", events=EVENTS, seed=7, truth_dir=root / "truth")
    assert files.truth is not None
    return files, orjson.loads(files.truth.read_bytes())


@pytest.fixture(scope="module")
def parsed(demo: tuple[DemoFiles, dict]) -> dict[str, list[dict]]:
    files, _ = demo
    return {"gateway": _lines(files.gateway), "okta": _lines(files.okta), "vault": _lines(files.vault)}


def test_same_seed_gives_identical_files_and_another_seed_differs(demo, tmp_path: Path) -> None:
    files, _ = demo
    again = generate(tmp_path / "again", events=EVENTS, seed=7)
    other = generate(tmp_path / "other", events=EVENTS, seed=8)
    for name in ("gateway", "okta", "vault"):
        assert _sha(getattr(again, name)) == _sha(getattr(files, name)), name
        assert _sha(getattr(other, name)) != _sha(getattr(files, name)), name
    fps = {orjson.loads(x)["token_fp"] for x in files.gateway.read_bytes().splitlines()}
    other_fps = {orjson.loads(x)["token_fp"] for x in other.gateway.read_bytes().splitlines()}
    assert not fps & other_fps, "a different seed must mint different tokens"


@pytest.mark.parametrize("events", [EVENTS, 20_000])
def test_total_lines_follow_the_events_argument(events: int, demo, tmp_path: Path) -> None:
    files = demo[0] if events == EVENTS else generate(tmp_path, events=events, seed=3)
    total = sum(len(p.read_bytes().splitlines()) for p in (files.gateway, files.okta, files.vault))
    assert abs(total - events) <= 0.2 * events
    assert files.counts["total"] == total
    assert files.counts["gateway"] > files.counts["okta"] > 0 and files.counts["vault"] > 0


def test_gateway_lines_are_ir_json_with_fingerprints(parsed) -> None:
    times = []
    for row in parsed["gateway"]:
        assert set(row) == GATEWAY_KEYS
        assert HEX16.match(row["token_fp"]), row
        assert len(row["token_tail"]) == 4
        assert row["token_active"] in ("0", "1")
        assert isinstance(row["status"], int) and isinstance(row["bytes"], int)
        assert re.fullmatch(r"[0-9a-f]{32}", row["request_id"])
        assert NGINX_TIME.match(row["time"])
        assert row["uri"].startswith("/services/")
        times.append(row["time"])
    assert times == sorted(times), "the gateway log is in time order"


def test_okta_and_vault_lines_have_their_vendor_shape(parsed) -> None:
    for row in parsed["okta"]:
        assert row["uuid"] and row["published"].endswith("Z") and row["eventType"]
        assert {"actor", "client", "outcome", "target", "transaction", "debugContext", "securityContext"} <= set(row)
    kinds = {row["eventType"] for row in parsed["okta"]}
    assert {"user.session.start", "app.oauth2.as.token.grant.access_token",
            "app.oauth2.as.token.grant.refresh_token", "system.api_token.create",
            "app.oauth2.as.token.revoke"} <= kinds
    pairs: dict[str, set[str]] = {}
    for row in parsed["vault"]:
        assert row["type"] in ("request", "response") and row["time"].endswith("Z")
        pairs.setdefault(row["request"]["id"], set()).add(row["type"])
        token = row["request"].get("client_token")
        assert token is None or token.startswith("hmac-sha256:")
    assert all(v == {"request", "response"} for v in pairs.values()), "every request has its response"


def test_no_raw_secret_reaches_any_file(demo) -> None:
    files, _ = demo
    secrets = _scenario(7, EVENTS).secrets
    assert len(secrets) > 100
    for path in (files.gateway, files.okta, files.vault):
        text = path.read_text()
        assert find_secrets(text) == [], path.name
        assert not re.search(r"![A-Za-z0-9._]{20,}", text), path.name
        for raw in secrets:
            assert raw not in text, f"raw secret {raw[:6]}… in {path.name}"


def test_truth_is_written_only_to_the_truth_dir(demo) -> None:
    files, truth = demo
    assert not (files.gateway.parent / "truth.json").exists()
    assert truth["seed"] == 7 and truth["incident"].startswith("salesloft-drift-2025")
    assert "2025-08-08" <= truth["window"]["start"] < truth["window"]["end"] <= "2025-08-19"
    assert set(truth["objects_read"]) == {"Account", "Contact", "Case", "User", "Opportunity"}


def test_a_compromised_credential_is_used_from_ioc_addresses(demo, parsed) -> None:
    _, truth = demo
    from_ioc = {r["token_fp"] for r in parsed["gateway"] if r["remote_addr"] in IOC_IPS}
    keys = [c["key16"].removeprefix("sha256/16:") for c in truth["compromised_credentials"]]
    assert any(k in from_ioc for k in keys)
    for cred in truth["compromised_credentials"]:
        assert cred["key"].startswith("sha256:") and cred["key"][7:23] == cred["key16"][10:]


def test_malicious_events_exist_and_look_like_the_campaign(demo, parsed) -> None:
    _, truth = demo
    bad = {(m["source"], m["id"]) for m in truth["malicious_events"]}
    gw_bad = [r for r in parsed["gateway"] if ("gateway", r["request_id"]) in bad]
    okta_bad = [r for r in parsed["okta"] if ("okta", r["uuid"]) in bad]
    vault_bad = {r["request"]["id"] for r in parsed["vault"] if ("vault", r["request"]["id"]) in bad}
    assert len(gw_bad) + len(okta_bad) + len(vault_bad) == len(bad)
    assert all(r["remote_addr"] in IOC_IPS and r["user_agent"] in IOC_UAS for r in gw_bad)
    uris = " ".join(r["uri"] for r in gw_bad)
    for obj in ("Account", "Contact", "Case", "User", "Opportunity"):
        assert f"SELECT+COUNT()+FROM+{obj}" in uris
    assert any(r["method"] == "DELETE" and "/jobs/query/750" in r["uri"] for r in gw_bad)
    assert any(r["method"] == "POST" and r["uri"].endswith("/jobs/query") for r in gw_bad)
    assert all(r["client"]["ipAddress"] in IOC_IPS for r in okta_bad)
    # The AWS key found in the Case data is read from Vault, from an IOC address.
    aws = next(s for s in truth["exposed_secrets"] if s["kind"] == "aws-key")
    reads = [r for r in parsed["vault"] if r["type"] == "response" and r["request"]["path"] == aws["vault_path"]
             and r["request"]["remote_address"] in IOC_IPS]
    assert reads and reads[0]["response"]["data"]["data"]["access_key_id"] == aws["vault_hmac"]


def test_traps_are_benign_and_present(demo, parsed) -> None:
    _, truth = demo
    bad = {m["id"] for m in truth["malicious_events"]}
    by_id = {r["request_id"]: r for r in parsed["gateway"]} | {r["uuid"]: r for r in parsed["okta"]}
    traps = {t["what"]: t["events"] for t in truth["traps"]}
    assert len(traps) == 3
    for what, ids in traps.items():
        assert ids, what
        assert not bad & set(ids), what
        assert all(i in by_id for i in ids), what
    aiohttp = next(ids for what, ids in traps.items() if "aiohttp" in what)
    assert all(by_id[i].get("user_agent", "Python/3.11 aiohttp/3.12.15") == "Python/3.11 aiohttp/3.12.15"
               and by_id[i].get("remote_addr", "") not in IOC_IPS for i in aiohttp)
    tor = next(ids for what, ids in traps.items() if "Tor" in what)
    assert all(by_id[i].get("remote_addr", by_id[i].get("client", {}).get("ipAddress")) == "185.220.101.33"
               for i in tor)
    count = next(ids for what, ids in traps.items() if "COUNT" in what)
    assert any("SELECT+COUNT()+FROM+Account" in by_id[i]["uri"] for i in count)


def test_module_runs_from_the_command_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "connectors.demo", str(tmp_path / "c"), "--events", "3000",
                          "--seed", "5", "--truth", str(tmp_path / "t")], capture_output=True, text=True, check=True)
    assert "total" in out.stdout
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "gateway.jsonl", "okta.jsonl", "salesforce_cases.csv", "vault_audit.jsonl", "vault_token_lookup.jsonl"]
    assert (tmp_path / "t" / "truth.json").exists()
