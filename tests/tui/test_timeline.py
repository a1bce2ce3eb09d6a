"""The timeline screen at 80x24 on the demo incident: a window of rows (never the whole case), filter as you
type, paging past the window's edges, jump to a time, evidence marks and notes that persist and are audited
(`stanch verify` still passes), read-only refusing them, the raw record shown literally, journeys from other
screens, and one stable snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from textual.widgets import Input

from casefile.audit import verify
from casefile.case import create_case, open_case
from casefile.ingest import ingest
from casefile.timeutil import to_micros
from tests.casefile import toy  # noqa: F401  (registers toy-jsonl)
from tests.tui import copy_case, settle
from tui.app import StanchApp
from tui.demo import build_demo
from tui.screens.timeline import KEEP, EventTable, RawRecord, TimelineScreen

SIZE = (80, 24)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("d") / "demo.stanch", events=5000, quiet=True)


@pytest.fixture(autouse=True)
def no_connectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(cfg))


def rows_of(app: StanchApp) -> list[Any]:
    screen = app.screen
    assert isinstance(screen, TimelineScreen)
    return screen.rows


def table_of(app: StanchApp) -> EventTable:
    return app.screen.query_one("#events", EventTable)


def filter_box(app: StanchApp) -> Input:
    return app.screen.query_one("#filter", Input)


def status(app: StanchApp) -> str:
    return str(app.screen.query_one("#status").render())


def ids_in_time_order(path: Path, where: str = "1", params: tuple[Any, ...] = ()) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute(f"SELECT id FROM events WHERE {where} ORDER BY ts, id", params)]
    finally:
        con.close()


def test_opens_with_a_window_of_rows_and_pages_past_its_edges(demo: Path) -> None:
    order = ids_in_time_order(demo)

    async def drive() -> None:
        app = StanchApp(str(demo), start="timeline")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TimelineScreen)
            table = table_of(app)
            assert 0 < table.row_count == len(screen.rows) <= KEEP < len(order)
            assert [r.id for r in screen.rows] == order[: len(screen.rows)]
            assert f"{len(order):,} events" in status(app)
            # page down through far more than the window holds: rows keep coming, in order, the window stays small
            for _ in range(40):
                await pilot.press("pagedown")
                await settle(pilot)
            here = screen.highlighted()
            assert here is not None and order.index(here.id) > KEEP
            assert table.row_count <= KEEP
            got = [r.id for r in screen.rows]
            start = order.index(got[0])
            assert got == order[start:start + len(got)]
            # and back up past the window's top edge
            for _ in range(30):
                await pilot.press("pageup")
                await settle(pilot)
            got = [r.id for r in screen.rows]
            start = order.index(got[0])
            assert got == order[start:start + len(got)] and table.row_count <= KEEP
            await pilot.press("end")
            await settle(pilot)
            assert screen.highlighted().id == order[-1]  # type: ignore[union-attr]
            await pilot.press("home")
            await settle(pilot)
            assert screen.highlighted().id == order[0]  # type: ignore[union-attr]

    asyncio.run(drive())


def test_filter_as_you_type_updates_the_rows(demo: Path) -> None:
    con = sqlite3.connect(demo)
    key, cid = con.execute("SELECT key, credential_id FROM credential_keys WHERE credential_id ="
                           " (SELECT credential_id FROM events WHERE credential_id IS NOT NULL"
                           "  GROUP BY 1 ORDER BY count(*) DESC LIMIT 1) LIMIT 1").fetchone()
    con.close()
    ip_rows = ids_in_time_order(demo, "src_ip LIKE '198.51.100.%'")
    cred_rows = ids_in_time_order(demo, "credential_id = ? OR subject_credential_id = ?", (cid, cid))

    async def drive() -> None:
        app = StanchApp(str(demo), start="timeline")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("slash")
            await pilot.pause()
            assert app.focused is app.screen.query_one("#filter")
            await pilot.press(*"ip:198.51.100.")
            await settle(pilot, 0.2)
            assert [r.id for r in rows_of(app)] == ip_rows[: len(rows_of(app))]
            assert all(r.src_ip.startswith("198.51.100.") for r in rows_of(app))
            assert f"{len(ip_rows):,} matching" in status(app)
            # one more keystroke narrows the rows
            await pilot.press("4")
            await settle(pilot, 0.2)
            assert rows_of(app) and all(r.src_ip.startswith("198.51.100.4") for r in rows_of(app))
            await pilot.press("enter")
            assert app.focused is app.screen.query_one("#events")
            # a credential
            await pilot.press("slash")
            await pilot.pause()
            filter_box(app).value = ""
            await pilot.press(*f"cred:{key}")
            await settle(pilot, 0.2)
            assert [r.id for r in rows_of(app)] == cred_rows[: len(rows_of(app))]
            assert f"{len(cred_rows):,} matching" in status(app)
            # nothing matches: said so, no rows; an unknown credential is named
            filter_box(app).value = "cred:sha256:0000000000000000000000000000"
            await settle(pilot, 0.2)
            assert rows_of(app) == [] and "no credential has that key" in status(app)
            filter_box(app).value = '"); DROP TABLE events; --'
            await settle(pilot, 0.2)
            assert rows_of(app) == [] and "no events match" in status(app)
    asyncio.run(drive())
    assert len(ids_in_time_order(demo)) > 4000  # still all there


def test_jump_to_a_time(demo: Path) -> None:
    con = sqlite3.connect(demo)
    times = [r[0] for r in con.execute("SELECT ts FROM events ORDER BY ts, id")]
    con.close()
    target = to_micros("2025-08-12T14:00:00Z")
    expected = next(t for t in times if t >= target)

    async def drive() -> None:
        app = StanchApp(str(demo), start="timeline")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("t")
            await pilot.pause()
            await pilot.press(*"2025-08-12T14", "enter")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TimelineScreen)
            here = screen.highlighted()
            assert here is not None and here.ts == expected
            # rows before the time were read too, so moving up works
            i = screen.rows.index(here)
            assert i > 0 and screen.rows[i - 1].ts < target
            # a time that is not one: a warning, nothing moves
            await pilot.press("t")
            await pilot.pause()
            await pilot.press(*"soon", "enter")
            await settle(pilot)
            assert screen.highlighted() == here
            # past the last event: the end
            await pilot.press("t")
            await pilot.pause()
            await pilot.press(*"2030-01-01", "enter")
            await settle(pilot)
            assert screen.highlighted().ts == times[-1]  # type: ignore[union-attr]

    asyncio.run(drive())


def test_marks_and_notes_persist_are_audited_and_verify(demo: Path, tmp_path: Path) -> None:
    path = copy_case(demo, tmp_path / "w")

    async def drive() -> str:
        app = StanchApp(str(path), start="timeline", analyst="alice")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            for _ in range(3):
                await pilot.press("down")
            screen = app.screen
            assert isinstance(screen, TimelineScreen)
            event = screen.highlighted()
            assert event is not None
            await pilot.press("m")
            await settle(pilot)
            await pilot.press("n")
            await pilot.pause()
            await pilot.press(*"first [bold]sign[/] of the actor", "enter")
            await settle(pilot)
            flag = table_of(app).get_row_at(3)[0].plain
            assert flag == "●✎"
            return event.id

    event_id = asyncio.run(drive())
    with open_case(path) as case:
        marks = case.conn.execute("SELECT event_id, marked, who FROM marks").fetchall()
        notes = case.conn.execute("SELECT text, on_ref, who FROM notes").fetchall()
        ops = [r[0] for r in case.conn.execute("SELECT operation FROM audit ORDER BY seq")]
        _, _, problems = verify(case.conn)
    assert marks == [(event_id, 1, "alice")]
    assert notes == [("first [bold]sign[/] of the actor", f"event:{event_id}", "alice")]
    assert ops[-2:] == ["mark", "note"]
    assert problems == []

    async def again() -> None:
        app = StanchApp(str(path), start="timeline")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TimelineScreen)
            i = next(i for i, r in enumerate(screen.rows) if r.id == event_id)
            assert table_of(app).get_row_at(i)[0].plain == "●✎"
            table_of(app).move_cursor(row=i)
            await pilot.press("m")  # unmark: a second audited row, the history kept
            await settle(pilot)
            assert table_of(app).get_row_at(i)[0].plain == " ✎"

    asyncio.run(again())
    with open_case(path) as case:
        assert case.conn.execute("SELECT marked FROM marks ORDER BY rowid").fetchall() == [(1,), (0,)]
        assert verify(case.conn)[2] == []


def test_read_only_refuses_marks_and_notes(demo: Path, tmp_path: Path) -> None:
    path = copy_case(demo, tmp_path / "ro")

    async def drive() -> None:
        app = StanchApp(str(path), start="timeline", read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TimelineScreen)
            footer_actions = {b.binding.action for b in screen.active_bindings.values() if b.enabled}
            assert "mark" not in footer_actions and "note" not in footer_actions
            assert not any(a in ("mark", "note") for _, a, _ in app.screen_actions())
            await pilot.press("m", "n")
            await settle(pilot)
            assert isinstance(app.screen, TimelineScreen)  # no note prompt opened
            messages = [str(n.message) for n in app._notifications]
            assert sum("read-only" in m for m in messages) == 2
            screen.action_mark()  # the palette or a script cannot get round it either
            await settle(pilot)

    asyncio.run(drive())
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT count(*) FROM marks").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
    finally:
        con.close()


def test_raw_record_is_shown_literally(tmp_path: Path) -> None:
    f = tmp_path / "h.jsonl"
    hostile = "[bold]x[/]\x1b[31mred"
    f.write_text(orjson.dumps({"t": "2025-08-17T11:15:00Z", "id": "h1", "res": f"/api/{hostile}",
                               "principal": hostile, "note": hostile}).decode() + "\n")
    path = tmp_path / "h.stanch"
    with create_case(path) as c:
        ingest(c, [str(f)], format_name="toy-jsonl")

    async def drive() -> None:
        app = StanchApp(str(path), start="timeline")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            cell = table_of(app).get_row_at(0)[4]
            assert cell.plain.startswith("/api/[bold]x[/]?[") and not cell.spans
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RawRecord)
            body = app.screen.query_one("#raw-body")
            lines = [s.text for s in body.render_lines(body.region.reset_offset)]
            text = "\n".join(lines)
            assert "principal" in text and "[bold]x[/]?[31mred" in text  # canonical field: markup kept, ESC replaced
            assert '"note": "[bold]x[/]\\u001b[31mred"' in text  # the raw JSON, pretty-printed, escape kept escaped
            assert "\x1b" not in text
            assert "\x1b" not in app.export_screenshot()
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, TimelineScreen)

    asyncio.run(drive())


def test_other_screens_open_it_on_an_event_or_a_credential(demo: Path) -> None:
    order = ids_in_time_order(demo)
    con = sqlite3.connect(demo)
    target_id, target_time = con.execute("SELECT id, time FROM events ORDER BY ts, id LIMIT 1 OFFSET 3000").fetchone()
    key, cid = con.execute("SELECT key, credential_id FROM credential_keys LIMIT 1").fetchone()
    con.close()
    cred_rows = ids_in_time_order(demo, "credential_id = ? OR subject_credential_id = ?", (cid, cid))

    async def drive() -> None:
        app = StanchApp(str(demo), start="overview")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.open("timeline", {"query": "", "event": target_id})  # not mounted yet: applied on mount
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TimelineScreen)
            assert screen.highlighted().id == target_id  # type: ignore[union-attr]
            app.open("timeline", key)
            await settle(pilot, 0.2)
            assert filter_box(app).value == f"cred:{key}"
            assert [r.id for r in screen.rows] == cred_rows[: len(screen.rows)]
            app.open("timeline", {"query": "", "event": order[10], "time": None})
            await settle(pilot)
            assert filter_box(app).value == ""
            assert screen.highlighted().id == order[10]  # type: ignore[union-attr]
            app.open("timeline", {"query": "", "event": target_id, "time": target_time})  # one index lookup
            await settle(pilot)
            assert screen.highlighted().id == target_id  # type: ignore[union-attr]

    asyncio.run(drive())


def test_snapshot_timeline(demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare: Any) -> None:
    path = copy_case(demo, tmp_path / "snap")
    monkeypatch.chdir(path.parent)

    async def ready(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("down", "down")
        await settle(pilot)

    assert snap_compare(StanchApp(path.name, start="timeline", analyst="alice"), terminal_size=SIZE, run_before=ready)
