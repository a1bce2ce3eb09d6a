"""Journey 2 of the console, end to end and keyboard only, against a REAL OpenBao 2.7.2 (the Vault API; the `bao`
fixture of tests/connectors/test_vault_live.py): overview → credentials (filter as you type) → blast radius of
the leaked Vault token → its revocation set → a playbook plan → approval (the case name typed) → live apply →
per-item verdict `revoked-verified`, and the peer refuses the token and its children. No mouse, no stub."""

from __future__ import annotations

import asyncio

import pytest

from casefile.case import open_case
from casefile.ingest import ingest
from playbooks import engine
from tests.connectors.test_vault import ROOT_TOKEN
from tests.tui.test_screens_ops import (  # noqa: F401  (fixtures: demo, cfg, store, bao)
    bao,
    bao_connector,
    cell,
    cfg,
    copy_demo,
    create,
    demo,
    lookup_self,
    settle,
    store,
    token_lookup,
)
from tui.app import StanchApp
from tui.screens.modals import ApprovalModal


@pytest.mark.peer
@pytest.mark.timeout(240)
def test_overview_to_verified_revocation_without_leaving_the_keyboard(demo, bao, cfg, store, tmp_path,  # noqa: F811
                                                                     monkeypatch):
    base, _ = bao
    leaked = create(base, ROOT_TOKEN, "journey-leaked", ["token-maker"])
    children = [create(base, leaked["token"], f"journey-child-{i}") for i in range(2)]
    bystander = create(base, ROOT_TOKEN, "journey-bystander")
    path = copy_demo(demo, tmp_path)
    inventory = tmp_path / "tokens.jsonl"  # the token inventory a `stanch pull` gives: accessors, never tokens
    inventory.write_bytes(token_lookup(leaked, "journey-leaked", ["default", "token-maker"]))
    with open_case(path) as case:
        ingest(case, [str(inventory)], "vault-token")
    bao_connector(base)
    monkeypatch.chdir(tmp_path)
    accessor = leaked["accessor"]
    seen = {}

    async def drive() -> None:
        app = StanchApp("demo.stanch", analyst="alice")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.screen.NAME == "overview"
            await pilot.press("2")  # credentials
            await settle(pilot)
            await pilot.press("slash", *accessor[:10])
            await pilot.pause(0.3)
            await settle(pilot)
            await pilot.press("enter")  # filter → table
            await pilot.press("enter")  # the credential → its blast radius
            await settle(pilot)
            blast = app.screen
            assert blast.NAME == "blast" and accessor in str(blast.seed)
            assert "overview › credentials › blast" in blast.title
            await pilot.press("v")  # the revocation set
            await settle(pilot)
            rows = blast.query_one("#revocation")
            assert rows.row_count >= 1
            await pilot.press("p")  # plan: the playbook picker
            await settle(pilot)
            picker = app.screen
            options = picker.query_one("OptionList")
            ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
            target = ids.index("leaked-static-secret")
            while options.highlighted != target:
                await pilot.press("down" if (options.highlighted or 0) < target else "up")
            await pilot.press("enter")
            await settle(pilot, 8)
            plans_screen = app.screen
            assert plans_screen.NAME == "playbooks" and plans_screen.doc["playbook"] == "leaked-static-secret"
            acts = [i for i in plans_screen.doc["items"] if i["kind"] == "act" and i["target"] == accessor]
            assert acts and acts[0]["connector"] == "bao" and acts[0]["state"] == "pending"
            assert lookup_self(base, leaked["token"]) == 200  # planning sends nothing
            await pilot.press("a")  # approval
            await pilot.pause()
            modal = app.screen
            assert isinstance(modal, ApprovalModal) and app.focused.id == "cancel"
            await pilot.press("tab")  # approver box? walk focus to the confirmation box
            while app.focused is not None and app.focused.id != "confirm":
                await pilot.press("tab")
            await pilot.press(*"demo")
            while app.focused is not None and app.focused.id != "approve":
                await pilot.press("tab")
            await pilot.press("enter")
            await settle(pilot)
            assert plans_screen.doc["approved_by"] == "alice"
            await pilot.press("x")  # apply, live
            await settle(pilot, 10)
            seq = str(acts[0]["seq"])
            assert cell(plans_screen, "items", seq, "verdict") == "revoked-verified"
            seen["plan"] = plans_screen.doc["plan"]

    asyncio.run(drive())
    with open_case(path) as case:
        st = engine.status(case, seen["plan"])
    (act,) = [i for i in st["items"] if i["kind"] == "act" and i["target"] == accessor]
    assert act["state"] == "verified" and act["verdict"] == "revoked-verified"
    for t in [leaked, *children]:
        assert lookup_self(base, t["token"]) == 403
    assert lookup_self(base, bystander["token"]) == 200
