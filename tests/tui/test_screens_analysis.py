"""The console's analysis screens on the demo incident, driven by the pilot at 80x24: credentials (filter as you
type, enter → blast radius), blast radius (the tree of the stolen integration's reach, the revocation set, a plan
that leaves out what was deselected), findings (grouped, with framework ids). Read-only refuses every write;
hostile values from the case render literally. One snapshot per screen."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from casefile import plans
from casefile.case import open_case
from tests.tui import copy_case, settle
from tui.app import StanchApp
from tui.demo import build_demo
from tui.screens.blast import BlastScreen, PlaybookPicker
from tui.screens.credentials import CredentialsScreen
from tui.screens.findings import FindingsScreen

SIZE = (80, 24)
HOSTILE = "evil[red]x[/]\x1b[31m"  # markup and an escape sequence, as a log could carry them
HOSTILE_SHOWN = "evil[red]x[/]?[31m"  # literally, the control character replaced


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("d")
    path = build_demo(d / "demo.stanch", events=5000, quiet=True, truth_dir=d / "truth")
    return path, json.loads((d / "truth" / "truth.json").read_text())


@pytest.fixture(autouse=True)
def no_connectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No configured connector (act items are planned blocked); never the responder's own settings."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(cfg))


def seed_key(truth: dict[str, Any]) -> str:
    """The stolen refresh token (what the vendor's notice names): the demo's first compromised credential."""
    return str(truth["compromised_credentials"][0]["key"])


def cell_texts(table: Any, column: int) -> list[str]:
    return [table.get_row_at(r)[column].plain for r in range(table.row_count)]


def labels(node: Any) -> list[str]:
    return [c.label.plain for c in node.children]


def count(path: Path, sql: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


# ----------------------------------------------------------------------------------------------- credentials


def test_credentials_filter_narrows_as_you_type_and_enter_opens_blast(demo: tuple[Path, dict[str, Any]]) -> None:
    path, _ = demo

    async def drive() -> None:
        app = StanchApp(str(path), start="credentials")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, CredentialsScreen)
            table = screen.query_one("#credentials")
            everything = table.row_count
            assert everything == len(screen.rows) > 20
            await pilot.press("slash")
            await pilot.pause()
            assert screen.query_one("#filter").has_focus
            for ch in "vault":
                await pilot.press(ch)
            await settle(pilot, 0.3)
            narrowed = table.row_count
            assert 0 < narrowed < everything
            assert all(r.kind == "vault-token" or "vault" in r.haystack for r in screen.shown)
            await pilot.press("space", "h", "v", "s")  # more words narrow further: every word must match
            await settle(pilot, 0.3)
            assert 0 < table.row_count < narrowed
            assert all("hvs" in r.haystack for r in screen.shown)
            await pilot.press("enter")  # leaves the filter for the table
            await pilot.pause()
            assert table.has_focus
            chosen = screen.highlighted()
            assert chosen is not None
            await pilot.press("enter")
            await settle(pilot)
            blast = app.screen
            assert isinstance(blast, BlastScreen)
            assert blast.seed == chosen.key
            assert blast.result is not None
            assert chosen.id in blast.result["doc"]["seed"]["credentials"]

    asyncio.run(drive())


# ----------------------------------------------------------------------------------------------- blast radius


def test_blast_tree_shows_the_stolen_integrations_reach(demo: tuple[Path, dict[str, Any]]) -> None:
    path, truth = demo
    seed = seed_key(truth)

    async def drive() -> None:
        app = StanchApp(str(path), start="blast")
        opened: list[tuple[str, Any]] = []
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.open("blast", seed)
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, BlastScreen)
            tree = screen.query_one("#reach")
            root = tree.root
            assert root.label.plain.startswith("credential sha256:9d67b6c64e97")
            branches = labels(root)
            for want in ("shared apps and grants", "downstream calls", "objects read", "secrets read",
                         "minted credentials", "exposed secrets"):
                assert any(b.startswith(want) for b in branches), (want, branches)
            by_name = {b.split(" (")[0]: n for b, n in zip(branches, root.children, strict=True)}
            # every access token the actor minted from the stolen refresh token is a minted credential, and every
            # compromised credential is in the tree (the exposed Vault token under exposed secrets)
            minted_keys = {k for n in by_name["minted credentials"].children for k in n.data["cred"]["keys"]}
            access = [c for c in truth["compromised_credentials"] if c["kind"] == "access"]
            assert access
            for c in access:
                assert c["key16"] in minted_keys or c["key"] in minted_keys, c["why"]
            in_tree = {k for b in ("minted credentials", "exposed secrets") for n in by_name[b].children
                       for k in n.data["cred"]["keys"]} | set(root.data["cred"]["keys"])
            for c in truth["compromised_credentials"]:
                assert c["key16"] in in_tree or c["key"] in in_tree, c["why"]
            # the secrets the actor read, and the secrets exposed in the records it read
            secret_paths = {n.data["name"] for n in by_name["secrets read"].children}
            for x in truth["exposed_secrets"]:
                if x["vault_path"]:
                    assert x["vault_path"] in secret_paths
            exposed = {n.data["cred"]["kind"] for n in by_name["exposed secrets"].children}
            assert {"vault-token", "aws-key"} <= exposed
            objects = {n.data["name"] for n in by_name["objects read"].children}
            assert set(truth["objects_read"]) <= objects
            # counts are on the labels
            n_minted = len(by_name["minted credentials"].children)
            assert f"minted credentials ({n_minted})" in branches
            # the proving events of the seed are shown, literally, and open in the timeline
            proof = screen.query_one("#proof")
            assert proof.row_count > 0
            app.open = lambda name, target=None: opened.append((name, target))  # type: ignore[method-assign]
            await pilot.press("e")
            await pilot.pause()
            assert proof.has_focus
            first = proof.event_id()
            await pilot.press("enter")
            assert [(n, {k: v for k, v in t.items() if k != "time"}) for n, t in opened] == [
                ("timeline", {"query": "", "event": first})]
            assert opened[0][1]["time"]  # the event's time goes along: the timeline finds it by index

    asyncio.run(drive())


def test_without_a_seed_blast_offers_credentials_with_findings_first(snap_case: Path) -> None:
    async def drive() -> None:
        app = StanchApp(str(snap_case), start="blast")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, BlastScreen)
            assert screen.query_one("#seed").has_focus and screen.result is None
            offered = screen.suggestions
            with_findings = [s["findings"] > 0 for s in offered]
            assert with_findings[0] and with_findings == sorted(with_findings, reverse=True)
            assert not all(with_findings)
            await pilot.press("down")  # from the seed box to the credentials offered
            await pilot.pause()
            assert screen.query_one("#suggest").has_focus
            await pilot.press("enter")
            await settle(pilot)
            assert screen.result is not None
            assert screen.seed == offered[0]["row"].key
            assert screen.result["doc"]["seed"]["credentials"] == [offered[0]["row"].id]
            opened: list[tuple[str, Any]] = []
            app.open = lambda name, target=None: opened.append((name, target))  # type: ignore[method-assign]
            await pilot.press("t")  # the seed credential's timeline
            assert opened == [("timeline", offered[0]["row"].key)]

    asyncio.run(drive())


def test_deselected_revocation_item_is_left_out_of_the_plan(demo: tuple[Path, dict[str, Any]],
                                                           tmp_path: Path) -> None:
    path = copy_case(demo[0], tmp_path / "plan")
    seed = seed_key(demo[1])

    async def drive() -> str:
        app = StanchApp(str(path), start="blast")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.open("blast", seed)
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, BlastScreen)
            await pilot.press("v")
            await pilot.pause()
            table = screen.query_one("#revocation")
            assert table.has_focus
            assert all(r.selected for r in screen.revocation)  # everything is selected at first
            await pilot.press("down", "space")
            await pilot.pause()
            dropped = screen.revocation[1]
            assert dropped.plannable and not dropped.selected
            assert table.get_row_at(1)[0].plain == "[ ]" and table.get_row_at(0)[0].plain == "[x]"
            await pilot.press("p")
            await settle(pilot)
            assert isinstance(app.screen, PlaybookPicker)
            assert app.screen.query_one("#playbooks").highlighted_option.id == "salesloft-drift-2025"
            opened: list[tuple[str, Any]] = []
            app.open = lambda name, target=None: opened.append((name, target))  # type: ignore[method-assign]
            await pilot.press("enter")
            await settle(pilot)
            assert opened == [("playbooks", 1)]  # the new plan, on the playbooks screen for review
            return dropped.exclude_name()

    dropped = asyncio.run(drive())
    with open_case(path) as case:
        plan = plans.load(case, 1)
        kept = [i.target for i in plan.items if i.kind == "act"]
    assert plan.playbook == "salesloft-drift-2025"
    assert plan.inputs["seed"] == seed
    assert plan.body["excluded"] == [dropped]
    assert dropped not in kept
    assert any(t and t.endswith("/oarCboAYkNznyTo1qshF") for t in kept)  # the stolen refresh token itself


def test_read_only_offers_and_writes_nothing(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path = copy_case(demo[0], tmp_path / "ro")
    seed = seed_key(demo[1])

    async def drive() -> None:
        app = StanchApp(str(path), start="blast", read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.open("blast", seed)
            await settle(pilot)
            screen = app.screen
            assert "plan" not in [a for _, a, _ in app.screen_actions()]
            assert all(b.binding.action != "plan" for b in screen.active_bindings.values())
            await pilot.press("v", "p")
            await settle(pilot)
            assert not isinstance(app.screen, PlaybookPicker)
            assert any("read-only" in n.message for n in app._notifications)
            app.action_goto("findings")
            await settle(pilot)
            findings = app.screen
            assert isinstance(findings, FindingsScreen)
            assert "run_rules" not in [a for _, a, _ in app.screen_actions()]
            await pilot.press("r")
            await settle(pilot)
            assert findings.doc is None

    asyncio.run(drive())
    assert count(path, "SELECT count(*) FROM plans") == 0
    assert count(path, "SELECT count(*) FROM finding_runs") == 0


# ----------------------------------------------------------------------------------------------- findings


def test_findings_run_then_group_by_severity_and_rule_with_framework_ids(demo: tuple[Path, dict[str, Any]],
                                                                         tmp_path: Path) -> None:
    path = copy_case(demo[0], tmp_path / "f")

    async def drive() -> None:
        app = StanchApp(str(path), start="findings")
        opened: list[tuple[str, Any]] = []
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, FindingsScreen)
            assert screen.doc is None
            assert "press r" in str(screen.query_one("#status").render())
            await pilot.press("r")
            await settle(pilot)
            assert screen.doc is not None and screen.doc["findings"]
            tree = screen.query_one("#findings")
            severities = [n.data["severity"] for n in tree.root.children]
            order = ["critical", "high", "medium", "low", "info"]
            assert severities == sorted(severities, key=order.index)  # most severe first
            high = tree.root.children[0]
            assert high.label.plain.startswith("HIGH")
            rules = {n.data["rule"]: n for n in high.children}
            ioc = rules["stanch-ioc-hit"]
            assert f"stanch-ioc-hit ({len(ioc.children)})" in ioc.label.plain
            assert "NHI3:2025" in ioc.label.plain and "DE.CM-01" in ioc.label.plain
            # the cursor starts on the first finding; its detail names the frameworks and lists its evidence
            finding = screen.highlighted_finding()
            assert finding is not None
            detail = str(screen.query_one("#finding").render())
            assert "OWASP NHI" in detail and "CSF 2.0" in detail and "ATT&CK" in detail
            evidence = screen.query_one("#evidence")
            assert evidence.row_count == min(len(finding["evidence"]), 50) > 0
            app.open = lambda name, target=None: opened.append((name, target))  # type: ignore[method-assign]
            await pilot.press("b")  # the finding is about a credential: its blast radius
            await pilot.press("e", "enter")
            assert opened[0][0] == "blast" and opened[0][1].startswith("sha256")
            assert opened[1][0] == "timeline" and opened[1][1]["event"] == finding["evidence"][0]
            assert opened[1][1]["time"]

    asyncio.run(drive())
    assert count(path, "SELECT count(*) FROM finding_runs") == 1


# ----------------------------------------------------------------------------------------------- hostile text


def test_hostile_values_render_literally(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path = copy_case(demo[0], tmp_path / "h")
    seed = seed_key(demo[1])
    with open_case(path) as case:
        from casefile import findings

        findings.run(case)
        cid = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?",
                                (demo[1]["compromised_credentials"][0]["key16"],)).fetchone()[0]
    con = sqlite3.connect(path)  # what a hostile log would have left in the case
    with con:
        con.execute("UPDATE credentials SET principal = ? WHERE id = ?", (HOSTILE, cid))
        con.execute("UPDATE findings SET summary = ? WHERE rowid = 1", (HOSTILE,))
    con.close()

    async def drive() -> None:
        app = StanchApp(str(path), start="credentials")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, CredentialsScreen)
            await pilot.press("slash", *"[red]x")
            await settle(pilot, 0.3)
            table = screen.query_one("#credentials")
            assert table.row_count == 1
            cell = table.get_row_at(0)[8]
            assert cell.plain == HOSTILE_SHOWN and not cell.spans
            app.open("blast", seed)
            await settle(pilot)
            principals = [n for b in app.screen.query_one("#reach").root.children for n in b.children
                          if n.data and n.data.get("type") == "principal"]
            assert any(n.label.plain.startswith(f"principal {HOSTILE_SHOWN} · 1 credential ") for n in principals)
            await pilot.press("escape")
            app.action_goto("findings")
            await settle(pilot)
            tree = app.screen.query_one("#findings")
            leaves = [leaf for s in tree.root.children for r in s.children for leaf in r.children]
            assert any(HOSTILE_SHOWN in leaf.label.plain for leaf in leaves)
            svg = app.export_screenshot()
            assert "\x1b" not in svg

    asyncio.run(drive())


# ----------------------------------------------------------------------------------------------- snapshots


@pytest.fixture(scope="module")
def snap_case(demo: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo with findings run, opened by a relative name from its folder (no tmp path on screen)."""
    path = copy_case(demo[0], tmp_path_factory.mktemp("snap"))
    with open_case(path) as case:
        from casefile import findings

        findings.run(case)
    return path


def run_at(snap_case: Path, monkeypatch: pytest.MonkeyPatch, start: str) -> StanchApp:
    monkeypatch.chdir(snap_case.parent)
    return StanchApp(snap_case.name, start=start)


def test_snapshot_credentials(snap_compare: Any, snap_case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def ready(pilot: Any) -> None:
        await settle(pilot)

    assert snap_compare(run_at(snap_case, monkeypatch, "credentials"), terminal_size=SIZE, run_before=ready)


def test_snapshot_blast(snap_compare: Any, snap_case: Path, demo: tuple[Path, dict[str, Any]],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    seed = seed_key(demo[1])

    async def ready(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.open("blast", seed)
        await settle(pilot)

    assert snap_compare(run_at(snap_case, monkeypatch, "blast"), terminal_size=SIZE, run_before=ready)


def test_snapshot_findings(snap_compare: Any, snap_case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def ready(pilot: Any) -> None:
        await settle(pilot)

    assert snap_compare(run_at(snap_case, monkeypatch, "findings"), terminal_size=SIZE, run_before=ready)
