"""The console's own journeys (issue 10): 1) `stanch` alone offers recent cases and a new case, `stanch open
--read-only` shows a lock; 3) ingest from inside the console with progress in the header, while screens stay
usable; 4) export the timeline and the report from the command palette. Pilot-driven, headless."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from casefile.case import create_case, open_case
from tui.demo import build_demo

FIXTURES = Path(__file__).parents[1] / "fixtures"
NGINX = FIXTURES / "nginx"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo") / "demo.stanch", events=3000, quiet=True)


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


async def settle(pilot):
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_launcher_lists_recent_cases_and_opens_one(tmp_path, config_dir):
    from tui import recent
    from tui.launcher import LauncherApp

    case = tmp_path / "inc.stanch"
    with create_case(case, title="INC-7 [red]x[/red]"):
        pass
    recent.remember(case, "INC-7 [red]x[/red]")
    recent.remember(tmp_path / "gone.stanch", "gone")
    assert (config_dir / "recent.json").stat().st_mode & 0o777 == 0o600
    assert [e["exists"] for e in recent.load()] == [False, True]

    async def drive():
        app = LauncherApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            table = app.query_one("#recent")
            assert table.row_count == 2
            assert "INC-7 [red]x[/red]" in str(table.get_row_at(1)[1])  # literal, not markup
            await pilot.press("down", "enter")
            await pilot.pause()
        return app.return_value

    assert asyncio.run(drive()) == str(case.resolve())


def test_launcher_new_case_creates_it_and_refuses_an_existing_file(tmp_path, monkeypatch):
    from tui.launcher import LauncherApp

    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.stanch").write_text("not a case")

    async def drive(name):
        app = LauncherApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press(*name, "enter")  # with no recent case, the new-case box has focus
            await pilot.pause()
            error = str(app.query_one("#error").render())
        return app.return_value, error

    value, error = asyncio.run(drive("taken.stanch"))
    assert value is None and "already exists" in error
    value, _ = asyncio.run(drive("fresh.stanch"))
    assert value == "fresh.stanch"
    with open_case(tmp_path / "fresh.stanch") as case:
        assert case.meta()["title"] == "fresh"


def test_open_read_only_reaches_the_console_and_shows_a_lock(demo, monkeypatch):
    import tui.app
    from tui.app import StanchApp
    from tui.cli import main

    seen = {}
    monkeypatch.setattr(tui.app, "run_console", lambda case, read_only=False, analyst=None, playbook_dirs=(): seen.update(
        case=case, read_only=read_only))
    assert main(["open", str(demo), "--read-only"]) == 0
    assert seen == {"case": str(demo), "read_only": True}

    async def drive():
        app = StanchApp(str(demo), read_only=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert "[read-only]" in app.sub_title
            app.action_ingest()
            await pilot.pause()
            assert len(app.screen_stack) == 2  # no prompt was pushed
            labels = [c.title for c in app.get_system_commands(app.screen)]
            assert "Ingest log files…" not in labels and "Export report (Markdown)" in labels

    asyncio.run(drive())


def test_ingest_from_the_console_with_progress_while_screens_stay_usable(tmp_path):
    from tui.app import StanchApp
    from tui.prompt import Prompt

    case = tmp_path / "c.stanch"
    with create_case(case, title="INC-8"):
        pass
    log = NGINX / "peer-access.jsonl"
    activity = []

    async def drive():
        app = StanchApp(str(case))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            real = app._set_activity

            def spy(text):
                activity.append(text)
                real(text)

            app._set_activity = spy
            app.action_ingest()
            await pilot.pause()
            assert isinstance(app.screen, Prompt)
            app.screen.query_one("#answer").value = str(log)
            await pilot.press("enter")
            await pilot.press("question_mark")  # the app still answers keys while the worker runs
            await settle(pilot)
            assert app.activity == ""
            assert any("ingest done" in n.message for n in app._notifications)

    asyncio.run(drive())
    assert activity and activity[0].startswith("ingesting")
    with open_case(case) as c:
        assert c.conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0


def test_export_timeline_and_report_from_the_command_palette(demo, tmp_path):
    from tui.app import StanchApp

    out_md = tmp_path / "report.md"
    out_ts = tmp_path / "timeline.jsonl"

    async def export(query, out):
        app = StanchApp(str(demo))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+p", *query)
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause()
            app.screen.query_one("#answer").value = str(out)
            await pilot.press("enter")
            await settle(pilot)

    asyncio.run(export("export report", out_md))
    asyncio.run(export("export timeline", out_ts))
    report = out_md.read_text()
    assert report.startswith("# Demo: third") and "## Findings" in report and "## Open checklist" in report
    lines = out_ts.read_text().splitlines()
    with open_case(demo) as case:
        assert len(lines) == case.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    first = json.loads(lines[0])
    assert {"message", "datetime", "timestamp_desc", "stanch_event_id"} <= first.keys()


def test_report_shows_hostile_text_literally(tmp_path):
    from casefile.export import export

    case = tmp_path / "c.stanch"
    with create_case(case, title="INC <script>alert(1)</script> | `x`") as c:
        c.add_note("see [link](javascript:alert(1)) \x1b[31mred\u202e")
        export(c, "markdown", tmp_path / "r.md")
        n = export(c, "timesketch-jsonl", tmp_path / "t.jsonl")
    text = (tmp_path / "r.md").read_text()
    assert "<script>" not in text and "\\<script\\>" in text
    assert "\x1b" not in text and "\u202e" not in text and "\\[link\\]" in text
    assert n == 0 and (tmp_path / "t.jsonl").read_text() == ""


def test_export_cli(demo, tmp_path, capsys):
    from tui.cli import main

    assert main(["export", str(demo), "--format", "markdown", "-o", str(tmp_path / "r.md")]) == 0
    assert "wrote the report" in capsys.readouterr().out
    assert main(["export", str(demo), "--format", "opengraph", "-o", str(tmp_path / "g.json")]) == 0
    assert "nodes to" in capsys.readouterr().out and json.loads((tmp_path / "g.json").read_text())["graph"]
    assert main(["export", str(demo), "--format", "revocation-set", "-o", str(tmp_path / "r.json")]) == 0
    assert "revocation items" in capsys.readouterr().out
    assert main(["export", str(demo), "--format", "markdown", "--seed", "x", "-o", str(tmp_path / "m.md")]) == 1
    assert "--seed applies to the graph formats" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["export", str(demo), "--format", "markdown", "-o", str(tmp_path / "file" / "r.md")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert main(["export", str(demo), "--format", "markdown", "-o", str(tmp_path / "nul\0l")]) == 1
