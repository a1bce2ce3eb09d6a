"""The playbooks, connectors and audit screens, driven by the pilot at 80x24.

- Journey 2's tail on the demo case plus a real OpenBao 2.7.2 (tests/connectors/test_vault_live.py's `bao`): the
  responder pulled the token inventory (a leaked Vault token, known by its accessor), tests the connector (who
  the credential is), plans `leaked-static-secret` from the console, approves it through the modal (Cancel has
  focus; the irreversible revoke keeps Approve disabled until the case name is typed), applies it and sees the
  item's verdict become `revoked-verified`; the engine's `status()` and the peer agree the token and its children
  are gone.
- The secrets prompt: a token the case knows only by its sha256 fingerprint is revoked with the raw value typed
  into a masked input; the value is nowhere in the case file, its WAL or the plan export.
- Read-only hides and refuses plan/approve/apply/resume/tick.
- Connectors: add through the form (secret to the test keyring, not the settings file), test, remove (confirm
  with Cancel focused).
- Audit: chain head, verify OK, a row changed behind stanch's back named by verify; pages, never all rows.
- Snapshots (stable: the demo is deterministic and opened by a relative name; the audit snapshot's case is
  written with casefile's clock frozen and a fixed analyst, since audit times and hashes are wall-clock).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import keyring
import orjson
import pytest

from casefile.case import create_case, open_case
from casefile.ingest import ingest
from casefile.secrets import fingerprint
from connectors.config import ConnectorSettings, add_connector
from playbooks import engine
from playbooks.model import load_all
from tests.casefile import toy  # noqa: F401  (registers the toy format)
from tests.conftest import fake_token
from tests.connectors.test_config import InMemoryTestKeyring
from tests.connectors.test_vault import ROOT_TOKEN
from tests.connectors.test_vault_live import bao, create
from tui.app import StanchApp
from tui.demo import build_demo
from tui.screens.audit import AuditScreen
from tui.screens.modals import AddConnectorModal, ApprovalModal, ConfirmModal, InputsModal, SecretsModal

__all__ = ["bao"]  # the OpenBao fixture, imported for pytest

SIZE = (80, 24)
FROZEN = "2025-08-19T09:00:00.000000Z"


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("d")
    path = build_demo(d / "demo.stanch", events=5000, quiet=True, truth_dir=d / "truth")
    return path, orjson.loads((d / "truth" / "truth.json").read_bytes())


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cfg"
    d.mkdir()
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(d))
    monkeypatch.delenv("STANCH_READ_ONLY", raising=False)
    return d


@pytest.fixture
def store():
    """TEST DOUBLE keyring (in memory), as tests/tui/test_connector_cli.py uses; restores the previous one."""
    before = keyring.get_keyring()
    kr = InMemoryTestKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(before)


def copy_demo(demo: tuple[Path, dict[str, Any]], into: Path) -> Path:
    """A private copy of the module's demo case, named demo.stanch (so its case name is `demo`)."""
    src = demo[0]
    dst = into / "demo.stanch"
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")
    return dst


async def settle(pilot: Any, rounds: int = 4) -> None:
    """Wait for the workers, and for the workers they start (a plan reloads the list when it is made)."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def text_of(widget: Any) -> str:
    return str(widget.render())


def cell(screen: Any, table: str, row: str, column: str) -> str:
    value = screen.query_one(f"#{table}").get_cell(row, column)
    return getattr(value, "plain", str(value))


async def pick_playbook(pilot: Any, playbook: str) -> None:
    table = pilot.app.screen.query_one("#playbooks")
    table.focus()
    table.move_cursor(row=table.get_row_index(playbook))
    await pilot.pause()


async def plan_from_console(pilot: Any, playbook: str, seed: str) -> dict[str, Any]:
    """`P` on the playbook, its seed typed into the input form; returns the new plan's view."""
    screen = pilot.app.screen
    before = screen.plan_id
    await pick_playbook(pilot, playbook)
    await pilot.press("P")
    modal = pilot.app.screen
    assert isinstance(modal, InputsModal) and modal.playbook_id == playbook
    modal.query_one("#input-0").value = seed
    await pilot.click("#ok")
    await settle(pilot)
    assert screen.doc is not None and screen.doc["plan"] != before and screen.doc["playbook"] == playbook
    return screen.doc


def lookup_self(base: str, token: str) -> int:
    return httpx.get(f"{base}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}, timeout=10).status_code


def token_lookup(t: dict[str, str], name: str, policies: list[str]) -> bytes:
    """One `vault token lookup -format=json` line naming the token by its accessor (no raw id)."""
    return orjson.dumps({"data": {
        "accessor": t["accessor"], "creation_time": int(time.time()), "creation_ttl": 3600,
        "display_name": f"token-{name}", "entity_id": "", "expire_time": None, "explicit_max_ttl": 0, "id": "",
        "meta": None, "num_uses": 0, "orphan": False, "path": "auth/token/create", "policies": policies,
        "renewable": True, "ttl": 3600, "type": "service"}}) + b"\n"


def bao_connector(base: str) -> None:
    """The responder's vault connector, as `stanch connector add bao --kind vault` stores it."""
    add_connector(ConnectorSettings(name="bao", kind="vault", url=base, connect_timeout=3, read_timeout=10),
                  lambda: ROOT_TOKEN)


def case_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name.startswith("demo.stanch"))


# ------------------------------------------------------------------------------- journey 2's tail, on OpenBao


@pytest.mark.peer
@pytest.mark.timeout(240)
def test_plan_approve_apply_on_openbao_from_the_console(demo, bao, cfg, store, tmp_path, monkeypatch):
    base, _ = bao
    leaked = create(base, ROOT_TOKEN, "ui-leaked", ["token-maker"])
    children = [create(base, leaked["token"], f"ui-leaked-child-{i}") for i in range(2)]
    bystander = create(base, ROOT_TOKEN, "ui-bystander")
    assert all(lookup_self(base, t["token"]) == 200 for t in [leaked, *children, bystander])
    path = copy_demo(demo, tmp_path)
    inventory = tmp_path / "tokens.jsonl"  # what `stanch pull` of the token inventory gives: accessors, no token
    inventory.write_bytes(token_lookup(leaked, "ui-leaked", ["default", "token-maker"]))
    with open_case(path) as case:
        ingest(case, [str(inventory)], "vault-token")
    bao_connector(base)
    monkeypatch.chdir(tmp_path)
    seed = f"vault-accessor:default:{leaked['accessor']}"
    seen: dict[str, Any] = {}

    async def drive() -> None:
        app = StanchApp("demo.stanch", start="playbooks", analyst="alice")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            # the connector first: who is the credential?
            app.action_goto("connectors")
            await settle(pilot)
            await pilot.press("t")
            await settle(pilot)
            detail = text_of(app.screen.query_one("#detail"))
            assert "test OK" in detail and "policies ['root']" in detail, detail
            app.action_goto("playbooks")
            await settle(pilot)
            screen = app.screen

            doc = await plan_from_console(pilot, "leaked-static-secret", seed)
            acts = [i for i in doc["items"] if i["kind"] == "act"]
            assert [(i["connector"], i["verb"], i["target"], i["state"], i["reversible"]) for i in acts] == [
                ("bao", "revoke-accessor", leaked["accessor"], "pending", False)]
            assert lookup_self(base, leaked["token"]) == 200  # planning touched nothing remote
            act = acts[0]
            assert cell(screen, "items", str(act["seq"]), "undo") == "IRREVERSIBLE"
            assert "NOT approved" in text_of(screen.query_one("#head"))

            # apply refuses an unapproved plan, and says how to approve
            await pilot.press("x")
            await settle(pilot)
            assert not isinstance(app.screen, SecretsModal) and lookup_self(base, leaked["token"]) == 200

            # approve through the modal
            await pilot.press("a")
            modal = app.screen
            assert isinstance(modal, ApprovalModal)
            assert app.focused is not None and app.focused.id == "cancel"  # Cancel has focus by default
            shown = " ".join(text_of(w) for w in modal.query("Static, Label"))
            assert doc["hash"] in shown and "1 irreversible" in shown and leaked["accessor"] in shown
            assert "Type the case name demo" in shown
            approve = modal.query_one("#approve")
            assert approve.disabled
            modal.query_one("#confirm").focus()
            await pilot.press(*"dem")
            assert approve.disabled  # not yet the case name
            await pilot.press("o")
            assert not approve.disabled
            await pilot.click("#approve")
            await settle(pilot)
            assert screen.doc["approved"] and screen.doc["approved_by"] == "alice"
            assert "approved by alice" in text_of(screen.query_one("#head"))

            # apply: no raw secret is needed (the accessor is enough), so no secrets prompt
            await pilot.press("x")
            assert not isinstance(app.screen, SecretsModal)
            await settle(pilot, 8)
            assert screen.running is None and screen.live_updates >= 1
            assert cell(screen, "items", str(act["seq"]), "verdict") == "revoked-verified"
            assert cell(screen, "items", str(act["seq"]), "state") == "verified"
            probes = [i for i in screen.doc["items"] if i["kind"] == "probe"]
            assert probes and all(cell(screen, "items", str(p["seq"]), "state") == "verified" for p in probes)
            progress = text_of(screen.query_one("#progress"))
            assert "vault:bao" in progress and "1/1" in progress and "1 verified" in progress
            seen["plan"] = doc["plan"]

            # resume of a finished plan sends nothing again; verify probes again
            await pilot.press("r")
            await settle(pilot, 8)
            await pilot.press("v")
            await settle(pilot, 8)
            assert cell(screen, "items", str(act["seq"]), "verdict") == "revoked-verified"

    asyncio.run(drive())
    with open_case(path) as case:
        st = engine.status(case, seen["plan"])
        from casefile import plans

        journal = plans.journal(case, seen["plan"])
    (act,) = [i for i in st["items"] if i["kind"] == "act"]
    assert st["approved"] and st["approved_by"] == "alice"
    assert act["state"] == "verified" and act["verdict"] == "revoked-verified" and "invalid accessor" in act["evidence"]
    phases = [e["phase"] for e in journal if e["item"] == act["seq"]]
    assert phases.count("intent") == 1 and phases.count("probe") == 3  # sent once; apply, resume, verify probed
    for t in [leaked, *children]:
        assert lookup_self(base, t["token"]) == 403  # the token and its children are gone at the peer
    assert lookup_self(base, bystander["token"]) == 200


@pytest.mark.peer
@pytest.mark.timeout(240)
def test_the_secrets_prompt_never_stores_the_raw_value(demo, bao, cfg, store, tmp_path, monkeypatch):
    base, _ = bao
    raw = fake_token("stanch-FAKE-bao-", 24, salt="ui")
    r = httpx.post(f"{base}/v1/auth/token/create", headers={"X-Vault-Token": ROOT_TOKEN}, timeout=10,
                   json={"id": raw, "policies": ["default"], "ttl": "1h", "display_name": "ui-raw"})
    r.raise_for_status()
    assert lookup_self(base, raw) == 200
    fp = fingerprint(raw)
    path = copy_demo(demo, tmp_path)
    found = tmp_path / "found.jsonl"  # the case knows the leaked token only by its fingerprint
    found.write_bytes(orjson.dumps({"t": "2025-08-12T10:00:00Z", "id": "ui-raw-1", "keys": list(fp.keys),
                                    "kind": "vault-token", "action": "api.call"}) + b"\n")
    with open_case(path) as case:
        ingest(case, [str(found)], "toy-jsonl")
    bao_connector(base)
    monkeypatch.chdir(tmp_path)
    other = fake_token("stanch-FAKE-bao-", 24, salt="no")

    async def drive() -> None:
        app = StanchApp("demo.stanch", start="playbooks", analyst="alice")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            doc = await plan_from_console(pilot, "leaked-static-secret", fp.keys[0])
            (act,) = [i for i in doc["items"] if i["kind"] == "act"]
            assert (act["verb"], act["needs_raw"], act["secret_key"]) == ("revoke-token", True, fp.keys[0])
            assert cell(screen, "items", str(act["seq"]), "raw") == "needed"
            await pilot.press("a")
            assert isinstance(app.screen, ApprovalModal)
            await pilot.press("escape")  # Escape cancels: nothing approved
            await settle(pilot)
            assert app.screen is screen and not screen.doc["approved"]
            await pilot.press("a")
            modal = app.screen
            assert isinstance(modal, ApprovalModal)
            modal.query_one("#confirm").value = "demo"
            await pilot.pause()
            await pilot.click("#approve")
            await settle(pilot)
            assert screen.doc["approved"]

            await pilot.press("x")
            await pilot.pause()
            prompt = app.screen
            assert isinstance(prompt, SecretsModal)
            box = prompt.query_one("#secret-0")
            assert box.password  # masked
            assert fp.keys[0][:24] in " ".join(text_of(w) for w in prompt.query("Label"))
            box.value = other  # a value that is not this credential is refused before anything is sent
            await pilot.click("#ok")
            await pilot.pause()
            assert app.screen is prompt and "does not fingerprint" in text_of(prompt.query_one("#error"))
            box.value = raw
            await pilot.pause(0.3)  # a button ignores a second click while it still shows the first
            assert raw not in app.export_screenshot()  # shown masked
            await pilot.click("#ok")
            await pilot.pause()
            assert not any(raw in (w.description or "") for w in app.workers)  # Textual names workers by their args
            await settle(pilot, 8)
            assert app.screen is screen
            assert cell(screen, "items", str(act["seq"]), "verdict") == "revoked-verified"
            assert raw.encode() not in case_bytes(tmp_path)  # not in the case file nor its WAL, while open
            assert raw not in app.export_screenshot()

    asyncio.run(drive())
    assert lookup_self(base, raw) == 403
    blob = case_bytes(tmp_path)
    assert blob and raw.encode() not in blob and other.encode() not in blob
    for p in tmp_path.rglob("*"):  # nor the plan export, nor the settings
        if p.is_file() and p.name != "found.jsonl":
            assert raw.encode() not in p.read_bytes(), p


@pytest.mark.peer
@pytest.mark.timeout(240)
def test_resume_after_a_restart_probes_what_was_in_flight(demo, bao, cfg, store, tmp_path, monkeypatch):
    """As `kill -9` leaves it: the revoke reached OpenBao, the journal says in flight. The console, started
    again, shows the plan interrupted; `r` probes the item first, finds it dead and does not send it again."""
    from casefile import plans

    base, _ = bao
    leaked = create(base, ROOT_TOKEN, "ui-crash", ["default"])
    path = copy_demo(demo, tmp_path)
    inventory = tmp_path / "tokens.jsonl"
    inventory.write_bytes(token_lookup(leaked, "ui-crash", ["default"]))
    bao_connector(base)
    with open_case(path, analyst="alice") as case:
        ingest(case, [str(inventory)], "vault-token")
        pid = engine.make_plan(case, load_all()["leaked-static-secret"],
                               {"seed": f"vault-accessor:default:{leaked['accessor']}"})
        plans.approve(case, pid, "alice")
        (act,) = [i for i in plans.load(case, pid).items if i.kind == "act"]
        plans.record(case, pid, act.seq, "intent", "in-flight", {"verb": act.verb, "target": act.target,
                                                                 "attempt": 1})
    r = httpx.post(f"{base}/v1/auth/token/revoke-accessor", headers={"X-Vault-Token": ROOT_TOKEN},
                   json={"accessor": leaked["accessor"]}, timeout=10)  # the call that reached the vendor
    assert r.status_code in (200, 204)
    monkeypatch.chdir(tmp_path)

    async def drive() -> None:
        app = StanchApp("demo.stanch", start="overview", analyst="alice")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.open("playbooks", pid)  # as the blast screen does once it has made a plan
            await settle(pilot)
            screen = app.screen
            assert screen.doc["plan"] == pid
            assert cell(screen, "plans", str(pid), "state") == "interrupted"
            assert "interrupted: 1 in flight, r resumes (probed first)" in text_of(screen.query_one("#head"))
            assert cell(screen, "items", str(act.seq), "state") == "in-flight"
            said: list[str] = []
            notify = screen.notify
            screen.notify = lambda message, **kw: (said.append(str(message)), notify(message, **kw))  # type: ignore[method-assign]
            await pilot.press("r")
            await settle(pilot, 8)
            assert any("probed first" in s for s in said), said
            assert any("resume probed 1 in-flight item(s): 1 proven dead (not resent)" in s for s in said), said
            assert cell(screen, "items", str(act.seq), "verdict") == "revoked-verified"
            assert cell(screen, "plans", str(pid), "state").startswith(("open", "done"))

    asyncio.run(drive())
    with open_case(path) as case:
        phases = [e["phase"] for e in plans.journal(case, pid, act.seq)]
        item = next(i for i in engine.status(case, pid)["items"] if i["seq"] == act.seq)
    assert phases == ["intent", "resume", "probe"]  # probed, never sent again
    assert item["state"] == "verified" and item["verdict"] == "revoked-verified"


def test_plan_diff_tick_and_a_plan_changed_since_approval(demo, cfg, tmp_path, monkeypatch):
    """Planned again with the same inputs after adding the okta connector: the new plan shows what changed
    (okta items no longer blocked); a manual item is ticked with a note; a plan edited behind stanch's back is
    flagged and cannot be approved or applied."""
    from connectors.config import save_all

    path = copy_demo(demo, tmp_path)
    seed = demo[1]["compromised_credentials"][0]["key"]
    monkeypatch.chdir(tmp_path)

    async def drive() -> None:
        app = StanchApp("demo.stanch", start="playbooks", analyst="alice")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            first = await plan_from_console(pilot, "salesloft-drift-2025", seed)
            assert first["diff"] is None and "no earlier plan" in text_of(screen.query_one("#head"))
            okta = [i for i in first["items"] if i["kind"] == "act" and i["connector_kind"] == "okta"]
            assert okta and all(i["state"] == "blocked" for i in okta)
            save_all({"okta-demo": ConnectorSettings(name="okta-demo", kind="okta", url="https://acme.okta.example")})
            second = await plan_from_console(pilot, "salesloft-drift-2025", seed)
            diff = second["diff"]
            assert diff["against"] == first["plan"] and not diff["added"] and not diff["removed"]
            kinds = {i["idempotency_key"]: i["kind"] for i in second["items"]}
            acts = {k: f for k, f in diff["changed"].items() if kinds[k] == "act"}
            assert set(acts) == {i["idempotency_key"] for i in okta}  # the okta revocations can run now
            assert all(f == ["connector", "unblocked"] for f in acts.values())
            assert all(kinds[k] == "probe" and f == ["connector"] for k, f in diff["changed"].items() if k not in acts)
            assert f"vs plan {first['plan']}: +0 -0 ~{len(diff['changed'])}" in text_of(screen.query_one("#head"))
            moved = next(i for i in second["items"] if i["idempotency_key"] in acts)
            assert cell(screen, "items", str(moved["seq"]), "seq") == f"~{moved['seq']}"

            # tick a manual item
            manual = next(i for i in second["items"] if i["kind"] == "manual")
            table = screen.query_one("#items")
            table.focus()
            table.move_cursor(row=table.get_row_index(str(manual["seq"])))
            await pilot.pause()
            await pilot.press("k")
            note = app.screen
            note.query_one("#note").value = "pulled the System Log for 8-18 Aug; findings run 1"
            await pilot.press("enter")
            await settle(pilot)
            assert cell(screen, "items", str(manual["seq"]), "state") == "done"
            ticked = next(i for i in screen.doc["items"] if i["seq"] == manual["seq"])
            assert ticked["note"] == "pulled the System Log for 8-18 Aug; findings run 1"
            # an act item cannot be ticked
            table.move_cursor(row=table.get_row_index(str(moved["seq"])))
            await pilot.pause()
            await pilot.press("k")
            assert app.screen is screen

            # another screen opens an older plan here
            app.open("playbooks", first["plan"])
            await settle(pilot)
            assert screen.doc["plan"] == first["plan"] and app.focused is screen.query_one("#items")
            app.open("playbooks", second["plan"])
            await settle(pilot)
            assert screen.doc["plan"] == second["plan"]

            # edited behind stanch's back: flagged, and neither approve nor apply goes ahead
            conn = sqlite3.connect("demo.stanch")
            conn.execute("UPDATE plan_items SET target = 'okta-token:someone-else' WHERE plan_id = ? AND seq = ?",
                         (second["plan"], moved["seq"]))
            conn.commit()
            conn.close()
            await pilot.press("f5")
            await settle(pilot)
            assert screen.doc["changed"] and "CHANGED since approval" in text_of(screen.query_one("#head"))
            await pilot.press("a")
            assert app.screen is screen  # no approval modal for a changed plan
            await pilot.press("x")
            assert app.screen is screen

    asyncio.run(drive())
    with open_case(path) as case:
        assert not engine.status(case, 2)["approved"]


# ------------------------------------------------------------------------------------------------ read-only


def test_read_only_hides_and_refuses_what_changes_things(demo, cfg, tmp_path, monkeypatch):
    path = copy_demo(demo, tmp_path)
    seed = demo[1]["compromised_credentials"][0]["key"]
    with open_case(path) as case:
        pid = engine.make_plan(case, load_all()["salesloft-drift-2025"], {"seed": seed})
    monkeypatch.chdir(tmp_path)

    async def drive() -> None:
        app = StanchApp("demo.stanch", start="playbooks", read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert screen.doc["plan"] == pid
            writes = {"plan", "approve", "apply", "resume", "tick", "verify"}
            shown = {b.binding.action for b in screen.active_bindings.values()}
            assert "reload" in shown and not shown & writes
            offered = {a for _, a, _ in screen.PALETTE}
            assert "reload" in offered and not offered & writes
            said: list[str] = []
            screen.notify = lambda message, **_: said.append(str(message))  # type: ignore[method-assign]
            for key in ("a", "x", "P", "r", "k", "v"):
                await pilot.press(key)
                await pilot.pause()
            assert app.screen is screen  # no modal opened
            assert len(said) == 6 and all("read-only" in s for s in said)
            screen.action_apply()  # reached another way (a script): still refused
            assert len(said) == 7
            app.action_goto("connectors")
            await settle(pilot)
            shown = {b.binding.action for b in app.screen.active_bindings.values()}
            assert "test" in shown and not shown & {"add", "remove"}

    asyncio.run(drive())
    with open_case(path) as case:
        assert not engine.status(case, pid)["approved"]


# ------------------------------------------------------------------------------------------------ connectors


def test_connectors_add_test_remove(demo, cfg, store, tmp_path, monkeypatch):
    path = copy_demo(demo, tmp_path)
    monkeypatch.chdir(tmp_path)
    secret = fake_token(salt="c")

    async def drive() -> None:
        app = StanchApp(path.name, start="connectors")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert "no connectors yet" in text_of(screen.query_one("#detail"))
            await pilot.press("a")
            form = app.screen
            assert isinstance(form, AddConnectorModal)
            assert form.query_one("#secret").password
            form.query_one("#name").value = "lab-vault"
            form.query_one("#kind").value = "vault"
            form.query_one("#url").value = "http://user:pw@127.0.0.1:9"
            form.query_one("#secret").value = secret
            await pilot.click("#ok")
            await pilot.pause()
            assert app.screen is form and "must not carry a user or password" in text_of(form.query_one("#error"))
            form.query_one("#url").value = "http://127.0.0.1:9"  # nothing listens: the test says so
            await pilot.pause(0.3)
            await pilot.click("#ok")
            await settle(pilot)
            assert app.screen is screen
            assert cell(screen, "list", "lab-vault", "secret") == "yes"
            assert cell(screen, "list", "lab-vault", "kind") == "vault"
            assert "secret: yes" in text_of(screen.query_one("#detail"))
            assert secret not in app.export_screenshot()

            await pilot.press("t")
            await settle(pilot)
            detail = text_of(screen.query_one("#detail"))
            assert "test FAILED: live" in detail and "cannot reach lab-vault" in detail and "check the URL" in detail

            await pilot.press("d")
            confirm = app.screen
            assert isinstance(confirm, ConfirmModal) and app.focused is not None and app.focused.id == "cancel"
            await pilot.press("enter")  # Enter on the focused Cancel: nothing removed
            await settle(pilot)
            assert app.screen is screen and screen.query_one("#list").row_count == 1
            await pilot.press("d")
            await pilot.click("#ok")
            await settle(pilot)
            assert screen.query_one("#list").row_count == 0

    # added: the secret is in the keyring and not in the settings file; removed: both gone
    asyncio.run(drive())
    assert store.store == {}
    assert secret.encode() not in (cfg / "connectors.toml").read_bytes()


def test_an_added_connector_keeps_its_secret_in_the_keyring_only(demo, cfg, store, tmp_path, monkeypatch):
    path = copy_demo(demo, tmp_path)
    monkeypatch.chdir(tmp_path)
    secret = fake_token(salt="k")

    async def drive() -> None:
        app = StanchApp(path.name, start="connectors")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("a")
            form = app.screen
            form.query_one("#name").value = "okta-lab"
            form.query_one("#kind").value = "okta"
            form.query_one("#url").value = "https://example.okta.test"
            form.query_one("#client_id").value = "0oa1"
            form.query_one("#secret").value = secret
            await pilot.click("#ok")
            await settle(pilot)
            assert cell(app.screen, "list", "okta-lab", "secret") == "yes"

    asyncio.run(drive())
    assert store.store == {("stanch", "connector:okta-lab"): secret}
    text = (cfg / "connectors.toml").read_bytes()
    assert b"okta-lab" in text and b"0oa1" in text and secret.encode() not in text


# ------------------------------------------------------------------------------------------------ audit


def test_audit_head_verify_and_a_tampered_row(demo, cfg, tmp_path, monkeypatch):
    path = copy_demo(demo, tmp_path)
    monkeypatch.chdir(tmp_path)
    with sqlite3.connect(path) as db:
        head, last = db.execute("SELECT hash, seq FROM audit ORDER BY seq DESC LIMIT 1").fetchone()

    async def drive() -> None:
        app = StanchApp(path.name, start="audit")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            top = text_of(screen.query_one("#head"))
            assert f"chain head {head}" in top and f"{last:,} entries" in top
            assert cell(screen, "log", str(last), "seq") == str(last)  # newest first
            assert screen.query_one("#log").get_row_at(0)[0] == str(last)
            await pilot.press("v")
            await settle(pilot)
            assert "verify: OK" in text_of(screen.query_one("#head"))
            # an event changed behind stanch's back, with sqlite3
            conn = sqlite3.connect(path)
            conn.execute("UPDATE events SET src_ip = '203.0.113.99' WHERE rowid = 42")
            conn.commit()
            conn.close()
            await pilot.press("v")
            await settle(pilot)
            top = text_of(screen.query_one("#head"))
            assert "verify: BROKEN at events row 42: was edited" in top, top

    asyncio.run(drive())


def test_audit_loads_pages_never_everything(demo, cfg, tmp_path, monkeypatch):
    path = copy_demo(demo, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(AuditScreen, "PAGE", 8)
    with sqlite3.connect(path) as db:
        total = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    assert total > 16

    async def drive() -> None:
        app = StanchApp(path.name, start="audit")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            table = screen.query_one("#log")
            assert table.row_count == 8
            await pilot.press("m")
            await settle(pilot)
            assert table.row_count == 16
            table.focus()
            await pilot.press(*["down"] * 15)  # the cursor near the end loads the next page
            await settle(pilot)
            assert table.row_count == min(24, total)
            seqs = [r["seq"] for r in screen.rows]
            assert seqs == sorted(set(seqs), reverse=True) and seqs[0] == total

    asyncio.run(drive())


# ------------------------------------------------------------------------------------------------ snapshots


def snapshot_case(demo, tmp_path, monkeypatch, *, connector: bool) -> int:
    """A demo copy with a salesloft-drift plan of the stolen refresh token (okta items runnable when an okta
    connector is configured); the app opens it by a relative name."""
    path = copy_demo(demo, tmp_path)
    if connector:
        from connectors.config import save_all

        save_all({"okta-demo": ConnectorSettings(name="okta-demo", kind="okta", url="https://acme.okta.example")})
    with open_case(path, analyst="alice") as case:
        pid = engine.make_plan(case, load_all()["salesloft-drift-2025"],
                               {"seed": demo[1]["compromised_credentials"][0]["key"]})
    monkeypatch.chdir(tmp_path)
    return pid


def test_snapshot_playbooks_with_a_plan(demo, cfg, tmp_path, monkeypatch, snap_compare):
    snapshot_case(demo, tmp_path, monkeypatch, connector=False)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("#items").focus()
        await pilot.pause()

    assert snap_compare(StanchApp("demo.stanch", start="playbooks", analyst="alice"), terminal_size=SIZE,
                        run_before=before)


def test_snapshot_approval_modal(demo, cfg, tmp_path, monkeypatch, snap_compare):
    snapshot_case(demo, tmp_path, monkeypatch, connector=True)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ApprovalModal)

    assert snap_compare(StanchApp("demo.stanch", start="playbooks", analyst="alice"), terminal_size=SIZE,
                        run_before=before)


def test_snapshot_audit(tmp_path, monkeypatch, snap_compare):
    for module in ("casefile.case", "casefile.audit", "casefile.plans"):
        monkeypatch.setattr(f"{module}.now_iso", lambda: FROZEN)
    monkeypatch.setattr("casefile.case.APP_VERSION", "snapshot")  # case.create records it, and the head hashes it
    monkeypatch.chdir(tmp_path)
    with create_case("inc-7.stanch", title="INC-7 snapshot", analyst="alice") as case:
        case.set_meta({"window_start": "2025-08-08T00:00:00Z", "window_end": "2025-08-18T23:59:59Z"})
        case.add_note("revoked the Drift refresh token at 09:12; [bold]literal[/bold] text stays literal")
        case.add_note("opened Salesforce support case 0500000001 for the actor's queries")

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)

    assert snap_compare(StanchApp("inc-7.stanch", start="audit", analyst="alice"), terminal_size=SIZE,
                        run_before=before)
