"""Hostile input in the console (issue 12, "Hostile input"): log fields are written by whoever held the token, so a
case is built from logs whose fields carry ANSI escapes (SGR, clear-screen, OSC 8 links, bell), Rich and Textual
markup (`[bold]`, `[link=…]`, `[@click=app.quit]`), bidirectional controls (overrides, isolates and marks), a 1 MB
line, deeply nested JSON (within and beyond what a JSON reader allows), invalid UTF-8 and CSV formula injection —
through real formats (nginx JSON and combined, Okta CSV) and a file whose *name* is hostile.

The console then opens it headless at 80x24 on overview, credentials (filter), blast (seeded with the hostile
credential), timeline (hostile filters, the raw-record modal of the hostile and of the 1 MB event), findings (an
IOC pack naming the hostile user agent, so findings quote it) and audit. Each screen must: not crash or fail a
worker, keep the app running, show the hostile text literally — markup as visible brackets with no style, control
characters (ESC, BEL) and every bidi control replaced — and leave no escape sequence or bidi control in the SVG
screenshot.

Path traversal in bundle member names is tests/casefile/test_bundle.py's (refused before reading).
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from rich.text import Text
from textual.widgets import DataTable, Input, Static, Tree

import connectors  # noqa: F401  (registers the vendor formats)
from casefile.case import create_case
from casefile.ingest import ingest
from tests.casefile import toy  # noqa: F401  (registers the toy format: credentials with a chosen principal)
from tests.hardening import svg_text
from tests.tui import settle

pytestmark = pytest.mark.timeout(240)

SIZE = (80, 24)
ESC = "\x1b"
# Unicode Bidi_Control: ALM, LRM, RLM, the embeddings and overrides, the isolates.
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

MARKUP = "[bold]BOLD[/bold][link=https://evil.example]L[/link][@click=app.quit]Q[/]"
ANSI = f"{ESC}[31mRED{ESC}[0m{ESC}[2J{ESC}]8;;https://evil.example/{ESC}\\osc{ESC}]8;;{ESC}\\\x07"
BIDI_TEXT = "txt.\u202eexe\u202c\u2066iso\u2069\u200fmark\u061c\u200e"
FORMULA = '=HYPERLINK("https://evil.example","x")'
HOSTILE = MARKUP + ANSI + BIDI_TEXT  # what most hostile fields carry
PRINCIPAL = "[bold]mallory[/bold]" + ANSI + BIDI_TEXT
HOSTILE_UA = "[bold]ua[/bold]" + ANSI + BIDI_TEXT
BIG = 1 << 20  # a 1 MB field


def nested(depth: int) -> Any:
    doc: Any = "bottom [bold]deep[/bold]"
    for _ in range(depth):
        doc = {"n": doc}
    return doc


def nginx_json(path: Path) -> None:
    rows: list[bytes] = []
    base = {"remote_addr": "203.0.113.66", "method": "GET", "status": 200, "request_id": "r"}

    def add(i: int, **rec: Any) -> None:
        rows.append(orjson.dumps({**base, "time": f"2025-08-17T10:00:{i:02d}+00:00", "request_id": f"hostile-{i}",
                                  **rec}))

    add(1, uri=f"/{HOSTILE}", http_user_agent=HOSTILE_UA, http_referer=f"https://x/{HOSTILE}")
    add(2, uri=f"/{FORMULA}", http_user_agent=f"+{FORMULA}", x_note="@SUM(1+1)*cmd|' /C calc'!A0")
    add(3, uri="/big?" + "A" * BIG, http_user_agent="big")
    add(4, uri="/nested/200", x=nested(200))  # deeper than orjson writes (255) is refused at ingest
    add(5, uri="/nested/250", x=nested(250))
    rows.append(b'{"time": "2025-08-17T10:00:06+00:00", "remote_addr": "203.0.113.66", "uri": "/utf8/\xff\xfe\xc3('
                b'\xed\xa0\x80", "status": 200, "request_id": "hostile-6"}')
    deep = b'{"n":' * 1000 + b'"x"' + b"}" * 1000  # beyond a JSON reader's depth (1024 with the line's own)
    rows.append(b'{"time": "2025-08-17T10:00:07+00:00", "remote_addr": "203.0.113.66", "uri": "/deep", "x": '
                + b'{"n":' * 5000 + b"1" + b"}" * 5000 + b"}")
    rows.append(b'{"time": "2025-08-17T10:00:08+00:00", "remote_addr": "203.0.113.66", "uri": "/deep1000", "x": '
                + deep + b"}")
    path.write_bytes(b"\n".join(rows) + b"\n")


def combined(path: Path) -> None:
    lines = [
        f'198.51.100.66 - - [17/Aug/2025:10:01:00 +0000] "GET /{MARKUP} HTTP/1.1" 200 5 "-" "{HOSTILE_UA}"',
        f'198.51.100.66 - - [17/Aug/2025:10:01:01 +0000] "GET /{FORMULA.replace(chr(34), "")} HTTP/1.1" 200 5 "-" '
        f'"=cmd|calc"',
    ]
    path.write_bytes("\n".join(lines).encode() + b"\n" + b"198.51.100.66 - - [17/Aug/2025:10:01:02 +0000] "
                     b'"GET /\xff\xfe/\xc3( HTTP/1.1" 200 5 "-" "bad-utf8"\n')


def okta_csv(path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Date", "Actor Display Name", "Actor Alternate ID", "Actor ID", "Actor Type", "Event Type",
                "Display Message", "Outcome", "Outcome Reason", "IP Address", "Client ID", "User Agent", "City",
                "Country", "Target", "Event UUID"])
    w.writerow(["2025-08-17T10:02:00.000Z", FORMULA, f"{PRINCIPAL}@example.com", "00uhostile", "User",
                "user.session.start", HOSTILE, "SUCCESS", "", "203.0.113.67", "", HOSTILE_UA, "", "", FORMULA,
                "6b0c5e2a-7b1d-11f0-8de9-00000000dead"])
    w.writerow(["2025-08-17T10:02:01.000Z", "-2+3", "=1+1", "00uformula", "User", "user.session.start",
                "@SUM(A1)", "SUCCESS", "", "203.0.113.68", "", "+cmd", "", "", "=A1",
                "6b0c5e2a-7b1d-11f0-8de9-00000000beef"])
    path.write_bytes(buf.getvalue().encode() + b"2025-08-17T10:02:02.000Z,bad\xff\xfeutf8,x@example.com,00ux,User,"
                     b"user.session.start,m,SUCCESS,,203.0.113.69,,ua,,,,6b0c5e2a-7b1d-11f0-8de9-00000000f00d\n")


CRED_KEY = "okta-token:hostile-token-1"
FILE_NAME = f"evil-[bold]BOLD[red]x{ESC}[31m-\u202eexe\u2066.jsonl"  # a file name cannot hold `/`


def toy_lines(path: Path) -> None:
    rows = [{"t": f"2025-08-17T10:03:0{i}Z", "id": f"toy-hostile-{i}", "keys": [CRED_KEY], "kind": "access",
             "client": f"[bold]client[/bold]{ANSI}", "principal": PRINCIPAL, "ip": "203.0.113.70",
             "ua": HOSTILE_UA, "res": f"/{HOSTILE}", "action": "api.call"} for i in range(3)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def iocs(path: Path) -> None:
    path.write_text(yaml.safe_dump({"pack": "hostile-test", "source": f"tests {MARKUP}",
                                    "user_agents": [HOSTILE_UA], "ips": ["203.0.113.66"], "asns": []}))


def build(root: Path) -> tuple[Path, dict[str, Any]]:
    """The hostile case; returns it and what its ingest reported per file."""
    logs = root / "logs"
    logs.mkdir()
    files = {"nginx-json": logs / "gateway.jsonl", "nginx-combined": logs / "access.log",
             "okta-csv": logs / "okta.csv", "toy-jsonl": logs / FILE_NAME}
    nginx_json(files["nginx-json"])
    combined(files["nginx-combined"])
    okta_csv(files["okta-csv"])
    toy_lines(files["toy-jsonl"])
    case = root / "hostile-[bold]case.stanch"
    report: dict[str, Any] = {}
    with create_case(case, title=f"INC {MARKUP} {ANSI} {BIDI_TEXT}") as c:
        for fmt, path in files.items():
            (s,) = ingest(c, [str(path)], fmt)
            report[fmt] = s
        ioc = root / "hostile-iocs.yaml"
        iocs(ioc)
        from casefile import findings

        findings.run(c, ioc_files=[ioc])
        c.add_note(f"responder note {HOSTILE}", f"event:{_event_id(c, 'toy-hostile-0')}")
    return case, report


def _event_id(c: Any, vendor_id: str) -> str:
    return str(c.conn.execute("SELECT id FROM events WHERE vendor_id = ?", (vendor_id,)).fetchone()[0])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return build(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(autouse=True)
def no_connectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / "cfg"))




# ------------------------------------------------------------------------------------------------ checks


def assert_literal_text(text: Text | str, where: str) -> None:
    """Shown text: no ESC/BEL, no bidi control; markup stays brackets, with no style applied from it."""
    plain = text.plain if isinstance(text, Text) else text
    assert ESC not in plain and "\x07" not in plain, f"{where}: a control character reached the screen: {plain!r}"
    bad = [hex(ord(ch)) for ch in plain if ch in BIDI]
    assert not bad, f"{where}: bidi controls {bad} reached the screen: {plain[:200]!r}"
    if isinstance(text, Text):
        for span in text.spans:
            style = str(span.style)
            assert "link" not in style and "@click" not in style, f"{where}: markup became a style: {style}"


def assert_clean_svg(svg: str, where: str) -> str:
    assert ESC not in svg, f"{where}: an escape sequence in the screenshot"
    bad = sorted({hex(ord(ch)) for ch in svg if ch in BIDI})
    assert not bad, f"{where}: bidi controls {bad} in the screenshot"
    assert "<a " not in svg and "xlink:href" not in svg, f"{where}: a link in the screenshot"
    shown = svg_text(svg)
    assert "@click" not in svg or "[@click=app.quit]" in shown, f"{where}: click markup not shown literally"
    return shown


def table_texts(table: DataTable[Any]) -> list[Text | str]:
    out: list[Text | str] = []
    for r in range(table.row_count):
        out.extend(c if isinstance(c, Text | str) else str(c) for c in table.get_row_at(r))
    return out


def tree_labels(tree: Tree[Any]) -> list[Text]:
    out: list[Text] = []

    def walk(node: Any) -> None:
        out.append(node.label)
        for child in node.children:
            walk(child)

    walk(tree.root)
    return out


def static_texts(screen: Any) -> list[Text | str]:
    out: list[Text | str] = []
    for w in screen.query(Static):
        r = w.visual if hasattr(w, "visual") else None
        content = getattr(w, "content", None) if r is None else r
        if isinstance(content, Text | str):
            out.append(content)
    return out


# ------------------------------------------------------------------------------------------------ tests


def test_the_hostile_case_was_ingested_and_each_bad_line_reported(hostile: tuple[Path, dict[str, Any]]) -> None:
    _, report = hostile
    nj = report["nginx-json"]
    assert not nj.error and nj.events_added == 6, nj  # hostile text, formulas, 1 MB, depths 200/250, bad UTF-8
    reasons = {p["line"]: p["reason"] for p in nj.problems}
    assert set(reasons) == {7, 8}, reasons  # nesting past what a JSON reader takes: reported with its line
    for fmt in ("nginx-combined", "okta-csv", "toy-jsonl"):
        s = report[fmt]
        assert not s.error and s.events_added >= 2 and not s.malformed, (fmt, s)


def test_every_screen_shows_hostile_text_literally(hostile: tuple[Path, dict[str, Any]],
                                                   failed_workers: list[Any]) -> None:
    path, _ = hostile
    from tui.app import StanchApp
    from tui.screens.timeline import RawRecord

    notes: list[tuple[str, str]] = []

    async def drive() -> None:
        app = StanchApp(str(path), start="overview")
        original_notify = app.notify

        def notify(message: str, **kw: Any) -> None:
            notes.append((kw.get("severity", "information"), message))
            original_notify(message, **kw)

        app.notify = notify  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.sub_title.startswith("INC [bold]BOLD[/bold]")  # the title, literally
            assert_literal_text(app.sub_title, "header")
            # overview: the hostile file name among the sources
            overview = app.screen
            shown = assert_clean_svg(app.export_screenshot(), "overview")
            cells = table_texts(overview.query_one("#sources", DataTable))
            for cell in cells:
                assert_literal_text(cell, "overview sources")
            assert any("evil-[bold]BOLD[red]x?[3" in (c.plain if isinstance(c, Text) else c)
                       for c in cells), cells
            assert "INC [bold]BOLD[/bold][link=https://evil.example" in shown

            # credentials: the hostile principal and client, and a hostile filter typed in
            app.action_goto("credentials")
            await settle(pilot)
            screen = app.screen
            table = screen.query_one("#credentials", DataTable)
            for cell in table_texts(table):
                assert_literal_text(cell, "credentials")
            shown = assert_clean_svg(app.export_screenshot(), "credentials")
            assert "[bold]clien" in shown  # the client column, literally (truncated at 80 columns)
            await pilot.press("slash", *"[bold]client")
            await settle(pilot, 0.4)
            assert table.row_count >= 1
            for cell in table_texts(table):
                assert_literal_text(cell, "credentials filtered")
            assert_clean_svg(app.export_screenshot(), "credentials filtered")
            await pilot.press("escape")

            # blast: seeded with the hostile credential
            app.open("blast", CRED_KEY)
            await settle(pilot)
            screen = app.screen
            labels = tree_labels(screen.query_one("#reach", Tree))
            for label in labels:
                assert_literal_text(label, "blast tree")
            assert any("/[bold]BOLD[/bold][link=https://evil.example]" in t.plain for t in labels), \
                [t.plain for t in labels][:20]  # the hostile resource it called, literally
            assert_clean_svg(app.export_screenshot(), "blast")
            await pilot.press("escape")

            # timeline: every row, then hostile filters, then the raw record of the hostile and the 1 MB events
            app.action_goto("timeline")
            await settle(pilot)
            screen = app.screen
            events = screen.query_one("#events", DataTable)
            assert events.row_count >= 15
            for cell in table_texts(events):
                assert_literal_text(cell, "timeline")
            shown = assert_clean_svg(app.export_screenshot(), "timeline")
            assert "[bold]" in shown and "=HYPERLINK(" in shown
            box = screen.query_one("#filter", Input)
            # what a responder could type (the box shows what was typed; controls cannot be typed)
            for text in ("[bold]BOLD", '"unbalanced', "a AND (", "NEAR(x", "*", "[31m", "bad\ufffd", "cred:[bold]",
                         "ip:[", "-", "=HYPERLINK(", "\\", "'", "%_"):
                box.value = text
                await settle(pilot, 0.4)
                for cell in table_texts(events):
                    assert_literal_text(cell, f"timeline filtered {text!r}")
                assert_clean_svg(app.export_screenshot(), f"timeline filtered {text!r}")
            for needle in ("BOLD", "big", "nested", "utf8"):
                box.value = needle
                await settle(pilot, 0.4)
                assert events.row_count >= 1, needle
                events.focus()
                events.move_cursor(row=0)
                await pilot.press("enter")
                await settle(pilot)
                assert isinstance(app.screen, RawRecord), needle
                body = app.screen.query_one("#raw-body", Static)
                lines = [s.text for s in body.render_lines(body.region.reset_offset)]
                assert_literal_text("\n".join(lines), f"raw record {needle}")
                assert_clean_svg(app.export_screenshot(), f"raw record {needle}")
                await pilot.press("escape")
                await settle(pilot)
                assert not isinstance(app.screen, RawRecord)

            # findings: the IOC pack names the hostile user agent, so findings quote it
            app.action_goto("findings")
            await settle(pilot)
            labels = tree_labels(app.screen.query_one("#findings", Tree))
            for label in labels:
                assert_literal_text(label, "findings")
            assert any("[bold]ua[/bold]" in t.plain for t in labels), [t.plain for t in labels][:30]
            assert_clean_svg(app.export_screenshot(), "findings")

            # audit: the hostile file name and title in the chain's entries
            app.action_goto("audit")
            await settle(pilot)
            assert_clean_svg(app.export_screenshot(), "audit")
            assert app.is_running

    asyncio.run(drive())
    assert not failed_workers, failed_workers
    errors = [m for sev, m in notes if sev == "error"]
    assert not errors, errors
    for _sev, message in notes:
        assert ESC not in message and not any(ch in BIDI for ch in message), message
